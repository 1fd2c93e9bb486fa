package store

import (
	"context"
	"errors"
	"strings"
	"time"
)

// Store is ferry's durable state. Every method is safe for concurrent use;
// every change that writes more than one row happens in one transaction,
// so a crash leaves either all of it or none.
type Store interface {
	Sources
	Runs
	Releases
	Deployments
	Promotions
	Audit
	EnvSecrets
	Close() error
}

// ErrNotFound is returned for a record that does not exist.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned when a change would break a uniqueness rule
// (a source of that name exists already, say).
var ErrConflict = errors.New("conflict")

// ---- sources ---------------------------------------------------------------

// Source is a watched Git repository as configured.
//
// The secrets (WebhookSecret, Password, SSHKey) are stored as the server
// hands them over, which is never in the clear: sealed ("sealed:v1:…"),
// or, for a source of the configuration, a reference ("env:$VAR",
// "file:PATH"). The store neither seals nor reads them (see server's
// secrets.go and internal/seal).
type Source struct {
	Name     string
	URL      string // local path, file://, https:// or ssh:// (or user@host:path)
	Branch   string
	Interval time.Duration
	// Timeout bounds each fetch, connecting included; 0 is the
	// watcher's default.
	Timeout       time.Duration
	WebhookSecret string
	// Auth: Username and Password (or a token as the password) for HTTPS;
	// SSHKey (a PEM private key) for SSH.
	Username string
	Password string
	SSHKey   string
	// FromConfig marks a source of ferry serve's configuration file, which
	// the API cannot remove (the next start would add it again).
	FromConfig bool
	Created    time.Time
}

// SourceStatus is what the watcher last saw of a source.
type SourceStatus struct {
	Source     string
	LastCommit string    // the branch's head at the last successful fetch
	LastFetch  time.Time // the last successful fetch
	LastError  string    // "" after a success
	Failures   int       // fetches failed in a row
	NextFetch  time.Time
}

// SourceEvent records a change of a branch's head: a new commit, or a
// force-push (the new head does not descend from the old one).
type SourceEvent struct {
	ID       int64
	Source   string
	Branch   string
	Previous string // "" for the first commit seen
	Commit   string
	Forced   bool
	At       time.Time
}

// Sources keeps the watched repositories and what was seen of them.
type Sources interface {
	// PutSource adds a source or replaces the one of that name.
	PutSource(ctx context.Context, s Source) error
	// AddSource adds a source; ErrConflict when the name is taken.
	AddSource(ctx context.Context, s Source) error
	GetSource(ctx context.Context, name string) (Source, error)
	ListSources(ctx context.Context) ([]Source, error)
	// DeleteSource removes a source and its status; its runs and events
	// stay, as history.
	DeleteSource(ctx context.Context, name string) error

	PutSourceStatus(ctx context.Context, st SourceStatus) error
	GetSourceStatus(ctx context.Context, name string) (SourceStatus, error)
	// RecordSourceEvent stores ev and sets the source's LastCommit to
	// ev.Commit, in one transaction.
	RecordSourceEvent(ctx context.Context, ev SourceEvent) (SourceEvent, error)
	ListSourceEvents(ctx context.Context, source string, page Page) ([]SourceEvent, error)
}

// ---- pipeline runs -------------------------------------------------------------

// RunStatus is where a PipelineRun or one of its steps is.
type RunStatus string

const (
	StatusQueued     RunStatus = "queued"
	StatusRunning    RunStatus = "running"
	StatusSucceeded  RunStatus = "succeeded"
	StatusFailed     RunStatus = "failed"
	StatusSuperseded RunStatus = "superseded" // a newer commit came before it started
	StatusSkipped    RunStatus = "skipped"    // a step with nothing to do (no test command)
)

// Done reports whether s is final.
func (s RunStatus) Done() bool {
	return s == StatusSucceeded || s == StatusFailed || s == StatusSuperseded || s == StatusSkipped
}

// Run is a PipelineRun: the CI run for one commit of one source's branch.
type Run struct {
	ID      int64
	Source  string
	Branch  string
	Commit  string
	Status  RunStatus
	Reason  string // why it failed or was superseded
	Release string // the release id, once the release step made it
	Created time.Time
	Started time.Time // zero until it starts
	Ended   time.Time // zero until it ends
	// InfraFailed marks a failed run that failed because ferry's own
	// infrastructure failed, not on the repository's merits: the store
	// could not be written (a full disk), the registry did not answer or
	// could not be reached, or the source's tree could not be read. Such
	// a run is run again from its first unfinished step while its commit
	// is the branch head. (Its column is store_failed, the name of its
	// first case.)
	InfraFailed bool
	// PullRequest is the number of the pull (merge) request the run is
	// for, 0 for a run of the source's branch. Such a run's Branch is
	// PullBranch's (pull/N, merge-requests/N), and it deploys to the
	// preview PreviewName(Source, PullRequest), nowhere else.
	PullRequest int
	Steps       []Step // in order; filled by GetRun
}

// Step is one step of a run.
type Step struct {
	RunID   int64
	Name    string // checkout, validate, build, test, release, deploy
	Index   int    // its place in the run
	Status  RunStatus
	Reason  string
	Started time.Time
	Ended   time.Time
}

// LogLine is one line a step logged.
type LogLine struct {
	Seq  int64 // increasing within a run: a follower asks for lines after one
	Step string
	At   time.Time
	Text string
}

// Runs keeps PipelineRuns, their steps and logs.
type Runs interface {
	// CreateRun records a queued run for (source, branch, commit) with its
	// steps, all queued, in one transaction. When a run for that commit
	// exists already it is returned with created false: a commit is run
	// once.
	CreateRun(ctx context.Context, r Run, steps []string) (run Run, created bool, err error)
	GetRun(ctx context.Context, id int64) (Run, error)
	// ListRuns lists runs newest first; source "" lists every source's.
	ListRuns(ctx context.Context, source string, page Page) ([]Run, error)
	// UnfinishedRuns lists runs queued or running, oldest first: after a
	// restart they are resumed.
	UnfinishedRuns(ctx context.Context) ([]Run, error)
	// UpdateRun sets a run's status, reason, release, times and
	// InfraFailed.
	UpdateRun(ctx context.Context, r Run) error
	// UpdateStep sets a step's status, reason and times.
	UpdateStep(ctx context.Context, s Step) error
	// AppendLog adds lines to a step's log; Seq and At are set by the
	// store when zero.
	AppendLog(ctx context.Context, runID int64, step string, lines ...string) error
	// Logs returns the run's lines with Seq > after, at most limit (0: all).
	Logs(ctx context.Context, runID int64, after int64, limit int) ([]LogLine, error)
}

// ---- builds and releases -----------------------------------------------------------

// Build is one function built at one commit.
type Build struct {
	Source   string
	Commit   string
	Function string
	Key      string // the content key of its inputs
	Image    string // the image reference, by digest
	Cached   bool   // the build cache had it
	At       time.Time
}

// Release is an immutable bundle pushed to the registry.
type Release struct {
	Seq      int64  // the store's row number: a Page's Before for releases
	ID       string // sha256:… of the canonical rendered manifest
	Source   string
	Commit   string
	Ref      string // where the artifact is: HOST/REPO@sha256:…
	Manifest []byte // the rendered manifest, as pushed
	RunID    int64
	Created  time.Time
	// Kind says what made the release: ReleasePipeline ("" is taken for
	// it), ReleasePinned or ReleasePulled. A commit has one pipeline
	// release; pinned and pulled releases share their commit with it.
	Kind string
	// BasedOn is, for a pinned release, the release it changed.
	BasedOn string
}

// Release kinds.
const (
	// ReleasePipeline: a pipeline run made it for its commit.
	ReleasePipeline = "pipeline"
	// ReleasePinned: a rollback made it from a live release by pinning one
	// function's image to another digest.
	ReleasePinned = "pinned"
	// ReleasePulled: a rollback pulled it from the registry by id.
	ReleasePulled = "pulled"
)

// Releases keeps builds and releases.
type Releases interface {
	PutBuilds(ctx context.Context, builds []Build) error
	ListBuilds(ctx context.Context, source, commit string) ([]Build, error)
	// BuildsWithDigest lists the builds of source whose image is pinned
	// to digest (sha256:…), newest first, any repository: whether ferry
	// built an image for a source is read from them.
	BuildsWithDigest(ctx context.Context, source, digest string) ([]Build, error)
	// PutRelease records rel. A release of the same ID exists already, or
	// rel is a pipeline release and one exists for the same (source,
	// commit): that one is returned, with created false.
	PutRelease(ctx context.Context, rel Release) (stored Release, created bool, err error)
	GetRelease(ctx context.Context, id string) (Release, error)
	// ReleaseForCommit returns the pipeline release made for a commit, if
	// any.
	ReleaseForCommit(ctx context.Context, source, commit string) (Release, error)
	ListReleases(ctx context.Context, source string, page Page) ([]Release, error)
	// ReleasesByPrefix lists at most limit releases whose id starts with
	// sha256:hex (MinPrefix to 64 lower-case hex characters), oldest first.
	ReleasesByPrefix(ctx context.Context, hex string, limit int) ([]Release, error)
	// BuildsByPrefix lists at most limit builds of source's function, one
	// per image (the newest), whose
	// image digest starts with sha256:hex, newest first.
	BuildsByPrefix(ctx context.Context, source, function, hex string, limit int) ([]Build, error)
}

// ---- environments and deployments ----------------------------------------------------

// Environment is a named target and what it runs.
type Environment struct {
	Name    string
	Target  string // "embedded", or a kubernetes target's name
	Release string // the live release id; "" before the first deployment
	// Held stops automatic promotion into the environment (after a manual
	// rollback) until someone resumes it; HoldReason says who held it and
	// why.
	Held       bool
	HoldReason string
	Updated    time.Time
	// Frozen refuses promotions into the environment until someone
	// unfreezes it: FreezeReason, FrozenBy and FrozenAt say why, who and
	// when. Only FreezeEnvironment changes them (PutEnvironment keeps
	// them), so a configuration reload cannot thaw an environment.
	Frozen       bool
	FreezeReason string
	FrozenBy     string
	FrozenAt     time.Time
}

// Freeze is an environment's manual freeze, as FreezeEnvironment sets it.
type Freeze struct {
	Frozen bool
	Reason string
	Actor  string
	At     time.Time
}

// Deployment records that a release became live (or failed to) in an
// environment.
type Deployment struct {
	ID          int64
	Environment string
	Release     string
	Previous    string // the release live before
	Actor       string
	Promotion   int64  // 0 when no promotion asked for it
	RunID       int64  // 0 when no pipeline run deployed it
	Status      string // DeploymentSucceeded, DeploymentFailed, DeploymentRolledBack
	Reason      string
	At          time.Time
	// Kind is what made it: "" a deploy (by a pipeline run or a
	// promotion), DeploymentRollback or DeploymentAutoRollback.
	Kind string
	// Verification is the result of the stage's checks after the deploy:
	// "" when none ran (a rollback, or no promoter), else one of the
	// Verification constants; Verified is when it ended.
	Verification string
	Verified     time.Time
	// Source and Commit are the release's, read from the releases when
	// the deployment is read ("" for a release the store does not hold).
	Source string
	Commit string
}

// Deployment statuses.
const (
	// DeploymentSucceeded: the release became live (the environment's
	// live release is set to it).
	DeploymentSucceeded = "succeeded"
	// DeploymentFailed: applying it failed; the release before stayed live.
	DeploymentFailed = "failed"
	// DeploymentRolledBack: it became live, then the environment was
	// rolled back from it.
	DeploymentRolledBack = "rolled-back"
)

// Deployment kinds.
const (
	// DeploymentRollback: someone rolled the environment back.
	DeploymentRollback = "rollback"
	// DeploymentAutoRollback: ferry rolled the environment back after the
	// release before failed its verification.
	DeploymentAutoRollback = "auto-rollback"
)

// Verification results of a deployment.
const (
	VerificationPending = "pending" // the checks are running
	VerificationPassed  = "passed"
	VerificationFailed  = "failed"
	VerificationNone    = "none" // the stage has no checks
)

// DeploymentQuery selects deployments: every field that is set must
// match. Limit 0 means all of them.
type DeploymentQuery struct {
	Environment string
	Release     string
	RunID       int64
	Promotion   int64
	Limit       int
}

// Deployments keeps environments and their history.
type Deployments interface {
	PutEnvironment(ctx context.Context, e Environment) error
	GetEnvironment(ctx context.Context, name string) (Environment, error)
	ListEnvironments(ctx context.Context) ([]Environment, error)
	// HoldEnvironment sets whether automatic promotion into env waits,
	// and why, adding env (target embedded) when missing.
	HoldEnvironment(ctx context.Context, env string, held bool, reason string) error
	// FreezeEnvironment sets env's manual freeze, adding env (target
	// embedded) when missing.
	FreezeEnvironment(ctx context.Context, env string, f Freeze) error
	// RecordDeployment stores d and, when it succeeded, makes d.Release the
	// environment's live release, in one transaction.
	RecordDeployment(ctx context.Context, d Deployment) (Deployment, error)
	GetDeployment(ctx context.Context, id int64) (Deployment, error)
	// UpdateDeployment sets d's Status, Reason, Verification and Verified;
	// it does not change what the environment runs.
	UpdateDeployment(ctx context.Context, d Deployment) error
	ListDeployments(ctx context.Context, env string, page Page) ([]Deployment, error)
	// FindDeployments lists the deployments q selects, newest first.
	FindDeployments(ctx context.Context, q DeploymentQuery) ([]Deployment, error)
}

// ---- promotions and approvals (used by package promote) ----------------------------

// Promotion is a request to put a release into an environment.
type Promotion struct {
	ID          int64
	Release     string
	Environment string
	Status      string // pending, approved, deploying, verifying, succeeded, failed, rolled-back, superseded, rejected
	Requester   string
	Reason      string
	Pinned      bool
	Created     time.Time
	Updated     time.Time
	// RunID is the pipeline run whose deployment to the first stage the
	// promotion verifies; 0 for every other promotion.
	RunID int64
	// Parent is the promotion whose success made this one (the release
	// moving on to the next stage); 0 when someone asked for it.
	Parent int64
	// Deployment is the deployment the promotion made (or verifies); 0
	// before it deployed.
	Deployment int64
}

// Approval is one identity's yes or no on a promotion.
type Approval struct {
	ID        int64
	Promotion int64
	Actor     string
	Approve   bool // false: a rejection
	Comment   string
	At        time.Time
}

// PromotionQuery selects promotions: every field that is set must match,
// and the status must be one of Statuses when any are given.
type PromotionQuery struct {
	Environment string
	Release     string
	RunID       int64
	Parent      int64
	Statuses    []string
}

// PromotionChange moves a promotion on, with what it did, in one
// transaction: a crash leaves all of it or none.
type PromotionChange struct {
	// Promotion's Status and Reason (and Deployment, when not 0) are
	// set, when its status is still From.
	Promotion Promotion
	From      string
	// Record, when set, is recorded as RecordDeployment would, and
	// becomes the promotion's Deployment unless it has one (an automatic
	// rollback's deployment does not replace the one it undid).
	Record *Deployment
	// Update, when set, changes an earlier deployment as UpdateDeployment
	// would.
	Update *Deployment
}

// Promotions keeps promotions and approvals.
//
// At most one promotion per environment is deploying or verifying: the
// store refuses a second with ErrConflict. That row is the environment's
// lock, and it survives a restart.
type Promotions interface {
	CreatePromotion(ctx context.Context, p Promotion) (Promotion, error)
	GetPromotion(ctx context.Context, id int64) (Promotion, error)
	// UpdatePromotion changes p's status and reason (and deployment, when
	// not 0) when its status is still from; ErrConflict when someone
	// changed it first.
	UpdatePromotion(ctx context.Context, p Promotion, from string) error
	// ChangePromotion makes c and returns the promotion, and the
	// deployment recorded when c.Record was set. ErrConflict when the
	// promotion's status is no longer c.From.
	ChangePromotion(ctx context.Context, c PromotionChange) (Promotion, Deployment, error)
	ListPromotions(ctx context.Context, env string, page Page) ([]Promotion, error)
	// FindPromotions lists the promotions q selects, oldest first.
	FindPromotions(ctx context.Context, q PromotionQuery) ([]Promotion, error)
	AddApproval(ctx context.Context, a Approval) (Approval, error)
	// Decide records a on its promotion when the promotion's status is
	// one of from and, when status is not "", sets the promotion's status
	// and reason, in one transaction; ErrConflict when the promotion moved
	// on first.
	Decide(ctx context.Context, a Approval, from []string, status, reason string) (Approval, error)
	ListApprovals(ctx context.Context, promotion int64) ([]Approval, error)
}

// ---- audit -------------------------------------------------------------------

// Event is one entry of the append-only audit log.
type Event struct {
	ID     int64
	At     time.Time
	Actor  string // a token's name, "ferry" for ferry itself
	Action string // e.g. source.add, run.start, release.create, deploy
	Object string // e.g. source/demo, run/12, env/dev
	Detail string
}

// Audit is the append-only log of who did what.
type Audit interface {
	AppendEvent(ctx context.Context, e Event) (Event, error)
	// ListEvents lists events newest first; object "" lists all.
	ListEvents(ctx context.Context, object string, page Page) ([]Event, error)
}

// Page selects a slice of a list, newest first: up to Limit records
// (0 means DefaultPageSize, at most MaxPageSize) with an ID below Before
// (0 means from the newest). A caller pages on by passing the last ID it
// got as the next Before, so nothing is skipped or repeated while records
// are added.
type Page struct {
	Limit  int
	Before int64
}

const (
	DefaultPageSize = 50
	MaxPageSize     = 500
)

// Short is a release id or commit as people read it: without "sha256:",
// at most 12 characters.
func Short(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
