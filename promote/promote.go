package promote

import (
	"context"
	"errors"
	"time"

	"github.com/ferrycd/ferry/build"
	"github.com/ferrycd/ferry/environments"
	"github.com/ferrycd/ferry/store"
)

// Promoter moves releases between environments: the same release, the
// same digests, never rebuilt on the way.
type Promoter interface {
	// Deployed is told that a pipeline run deployed release rel to env
	// (the Pipeline's first stage). The promoter verifies it there with
	// the stage's checks, and once it succeeded carries it on to every
	// downstream stage: auto stages get an approved promotion, stages
	// with an approval policy a pending one. Idempotent: after a restart
	// the same call may come again. It returns once the verification is
	// recorded as to do (a promotion in status verifying); Run does it.
	Deployed(ctx context.Context, runID int64, releaseID, env string) error

	// Promote asks for release into env on behalf of actor (a deployer).
	// The stage's policy decides: an auto stage (or one with no policy)
	// deploys at once; a stage with an approval policy waits pending.
	// The release must have succeeded in the stages env comes from. A
	// promotion someone asked for is pinned: a newer release does not
	// supersede it.
	Promote(ctx context.Context, releaseID, env string, actor Identity) (store.Promotion, error)
	// Approve and Reject record actor's yes or no on a pending promotion.
	// The policy decides who may approve; a rejection ends the
	// promotion. Errors are *Error with a reason a user can act on.
	Approve(ctx context.Context, id int64, actor Identity, comment string) (store.Promotion, error)
	Reject(ctx context.Context, id int64, actor Identity, comment string) (store.Promotion, error)

	// Rollback puts env back on an earlier release, without building:
	// to.Release ("" means the release live before the current one, a
	// release id otherwise, which may be pulled from the registry), or,
	// with to.Function and to.Image, the live release with one
	// function's image pinned to another digest. A manual rollback holds
	// automatic promotion into env until Resume.
	Rollback(ctx context.Context, env string, to RollbackTarget, actor Identity) (store.Deployment, error)
	Resume(ctx context.Context, env string, actor Identity) error

	// Freeze refuses promotions into env (with reason) until Unfreeze;
	// freeze windows from the configuration do the same on a schedule.
	Freeze(ctx context.Context, env, reason string, actor Identity) error
	Unfreeze(ctx context.Context, env string, actor Identity) error

	// Run executes approved promotions, one at a time per environment
	// and in order, until ctx ends. At its start it takes up promotions a
	// crash left deploying or verifying: each ends succeeded or rolled
	// back, never stuck.
	Run(ctx context.Context) error
}

// Identity is who acts: an API token's name, its groups and roles, and
// the email that matches it to commit authors.
type Identity struct {
	Name   string
	Email  string
	Groups []string
}

// RollbackTarget is where a rollback goes; see Promoter.Rollback.
type RollbackTarget struct {
	Release  string // a release id (sha256:…); "" for the previous one
	Function string // with Image: pin this function only
	Image    string // sha256:… or HOST/REPO@sha256:…
}

// Deployment statuses, as store.Deployment.Status holds them.
const (
	DeploymentSucceeded  = store.DeploymentSucceeded
	DeploymentFailed     = store.DeploymentFailed
	DeploymentRolledBack = store.DeploymentRolledBack
)

// Promotion statuses, as store.Promotion.Status holds them.
const (
	StatusPending    = "pending"
	StatusApproved   = "approved"
	StatusDeploying  = "deploying"
	StatusVerifying  = "verifying"
	StatusSucceeded  = "succeeded"
	StatusFailed     = "failed"
	StatusRolledBack = "rolled-back"
	StatusRejected   = "rejected"
	StatusSuperseded = "superseded"
	// StatusRefused ends a promotion of a release whose Pipeline would
	// loosen the environment's floor; its reason names the key.
	StatusRefused = "refused"
)

// Config wires a promoter.
type Config struct {
	Store Store
	// Target is an environment's target. Its error need not name env:
	// the promoter does.
	Target func(env string) (environments.Target, error)
	// Pull loads a release from the registry by reference (HOST/REPO@…),
	// verifying it: build.PullRelease with the registry's options.
	// Default: build.PullRelease with PushOptions.
	Pull func(ctx context.Context, ref string) (*build.Release, error)
	// Repo is HOST[:PORT]/REPO, where releases are: a rollback pulls a
	// release the store does not hold from Repo@<id>, and pushes a release
	// with a function pinned there. PushOptions are for that push.
	Repo        string
	PushOptions []build.Option
	// ImageExists checks that the registry holds an image (a rollback that
	// pins a function's image checks it before making a release). Default:
	// a HEAD of the manifest with the default keychain, which reaches
	// loopback registries over plain HTTP.
	ImageExists func(ctx context.Context, ref string) error
	// AllowedImages are registries and repositories (prefixes such as
	// registry.example.com/team/, see ImagePrefix) whose images and
	// releases a rollback may deploy although ferry did not build them.
	// Empty: only what ferry built for the release's source.
	AllowedImages []string
	// Environments are the configured environments with their freeze
	// windows. A promotion into an environment not listed is refused;
	// previews come and go at run time (Environments).
	Environments []Environment
	// Groups maps "group:<name>" approvers to member names.
	Groups map[string][]string
	// CommitAuthor returns the author of a source's commit (the watcher
	// reads it from the mirror); an approval by the author is a
	// self-approval.
	CommitAuthor func(ctx context.Context, source, commit string) (name, email string, err error)
	// IsAncestor, when set, reports whether commit ancestor is (or
	// precedes) commit descendant in source's repository: the watcher's
	// mirror. With it a release carried on automatically to the next
	// stage is not deployed over a newer commit of the same branch there
	// (it ends superseded); a person's promote or rollback is not checked.
	IsAncestor func(ctx context.Context, source, ancestor, descendant string) (bool, error)
	// Exporter, when set, is told of every deployment (GitOps export).
	Exporter Exporter
	// CheckInterval is how often a stage's checks run again while its
	// release soaks (default DefaultCheckInterval).
	CheckInterval time.Duration
	// Redact, when set, hides env's secrets in text: a failed check
	// quotes the start of the function's answer in the verification's
	// reason, and a function that fails on a secret may answer with it.
	Redact func(ctx context.Context, env, text string) string
	// Log hears what cannot go back to a caller.
	Log func(format string, args ...any)
	// Events, when set, hears each outcome: deployed, verified, rolled
	// back, waiting for approvals, approved, frozen (events.go).
	Events Events
	// Now is the clock of freeze windows and approval expiry (tests);
	// default time.Now. A soak is timed by the real clock.
	Now func() time.Time
}

// Environment is a configured environment's promotion settings.
type Environment struct {
	Name string
	// Freeze windows: each starts at its cron Schedule (robfig/cron
	// syntax, in TimeZone, default UTC) and lasts Duration.
	Freeze []FreezeWindow
	// Floor is the least policy of the environment; nil means
	// DefaultFloor (one approval for prod, nothing elsewhere).
	Floor *Floor
	// Preview marks an environment made at run time for a pull request
	// (Environments.AddEnvironment): no freeze, no floor, and never a
	// stage a release is carried on to.
	Preview bool
}

// FreezeWindow is a recurring period in which an environment refuses
// promotions.
type FreezeWindow struct {
	Schedule string
	Duration time.Duration
	TimeZone string
	Reason   string
}

// Exporter writes each deployment somewhere else as well: a Git
// repository that Flux or Argo CD watch, say. Export must be idempotent
// (the same deployment may be exported again after a restart).
type Exporter interface {
	Export(ctx context.Context, d store.Deployment, rel store.Release) error
}

// Error is a refusal a user can act on; Code says which kind, for the API
// to answer with.
type Error struct {
	Code    ErrorCode
	Message string
}

func (e *Error) Error() string { return e.Message }

// ErrorCode classes refusals.
type ErrorCode int

const (
	// Forbidden: the policy does not let this actor do it (self-approval,
	// not an allowed approver).
	Forbidden ErrorCode = iota + 1
	// Conflict: the state does not allow it (the promotion is no longer
	// pending, the environment is frozen or held).
	Conflict
	// Invalid: bad input (an unknown environment, a release that is not
	// a release).
	Invalid
)

// IsCode reports whether err is an *Error of code.
func IsCode(err error, code ErrorCode) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}
