package store

import (
	"context"
	"errors"
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
	Close() error
}

// ErrNotFound is returned for a record that does not exist.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned when a change would break a uniqueness rule
// (a source of that name exists already, say).
var ErrConflict = errors.New("conflict")

// ---- sources ---------------------------------------------------------------

// Source is a watched Git repository as configured.
type Source struct {
	Name          string
	URL           string // local path, file://, https:// or ssh:// (or user@host:path)
	Branch        string
	Interval      time.Duration
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
	Steps   []Step    // in order; filled by GetRun
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
	// UpdateRun sets a run's status, reason, release and times.
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
}

// Releases keeps builds and releases.
type Releases interface {
	PutBuilds(ctx context.Context, builds []Build) error
	ListBuilds(ctx context.Context, source, commit string) ([]Build, error)
	// PutRelease records rel. A release for the same (source, commit) or
	// the same ID exists already: that one is returned, with created false.
	PutRelease(ctx context.Context, rel Release) (stored Release, created bool, err error)
	GetRelease(ctx context.Context, id string) (Release, error)
	// ReleaseForCommit returns the release made for a commit, if any.
	ReleaseForCommit(ctx context.Context, source, commit string) (Release, error)
	ListReleases(ctx context.Context, source string, page Page) ([]Release, error)
}

// ---- environments and deployments ----------------------------------------------------

// Environment is a named target and what it runs.
type Environment struct {
	Name    string
	Target  string // "embedded", or a kubernetes target's name
	Release string // the live release id; "" before the first deployment
	// Held stops automatic promotion into the environment (after a manual
	// rollback) until someone resumes it.
	Held    bool
	Updated time.Time
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
	Status      string // succeeded, failed, rolled-back
	Reason      string
	At          time.Time
}

// Deployments keeps environments and their history.
type Deployments interface {
	PutEnvironment(ctx context.Context, e Environment) error
	GetEnvironment(ctx context.Context, name string) (Environment, error)
	ListEnvironments(ctx context.Context) ([]Environment, error)
	// RecordDeployment stores d and, when it succeeded, makes d.Release the
	// environment's live release, in one transaction.
	RecordDeployment(ctx context.Context, d Deployment) (Deployment, error)
	ListDeployments(ctx context.Context, env string, page Page) ([]Deployment, error)
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

// Promotions keeps promotions and approvals.
type Promotions interface {
	CreatePromotion(ctx context.Context, p Promotion) (Promotion, error)
	GetPromotion(ctx context.Context, id int64) (Promotion, error)
	// UpdatePromotion changes p's status and reason when its status is
	// still from; ErrConflict when someone changed it first.
	UpdatePromotion(ctx context.Context, p Promotion, from string) error
	ListPromotions(ctx context.Context, env string, page Page) ([]Promotion, error)
	AddApproval(ctx context.Context, a Approval) (Approval, error)
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
