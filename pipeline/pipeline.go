package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/ferrycd/ferry/build"
	"github.com/ferrycd/ferry/environments"
	"github.com/ferrycd/ferry/internal/sandbox"
	"github.com/ferrycd/ferry/store"
)

// Executor runs PipelineRuns.
type Executor interface {
	// Enqueue records a queued run for commit of source's branch and
	// schedules it. It is idempotent: for a commit that has a run
	// already, queued, running or done, it returns that run, except that
	// a run that failed only because ferry's infrastructure did
	// (Run.InfraFailed) is queued again, to go on from its first
	// unfinished step, and a done run whose commit is the branch head
	// again (a force-push back) but whose release its environment no
	// longer runs deploys it again. commit is taken for the branch head:
	// the run goes before the other runs of its branch that still wait,
	// which end superseded. Runs start only while Run runs; Enqueue is safe for
	// concurrent use, before Run and during it.
	Enqueue(ctx context.Context, source, branch, commit string) (store.Run, error)
	// EnqueuePull is Enqueue for pull request number's head commit: the
	// run's branch is store.PullBranch's (pull/N or merge-requests/N),
	// its lane is the request's own, and its deploy step applies the
	// release to the preview store.PreviewName(source, number), with no
	// promotion onward (Config.OnPreviewDeployed hears of it, not
	// OnDeployed). A newer head of the same request supersedes it; the
	// source's branch head does not.
	EnqueuePull(ctx context.Context, source, branch, commit string, number int) (store.Run, error)
	// Run executes runs until ctx ends, then waits for the runs in
	// progress to stop and returns nil. At its start it resumes every
	// unfinished run of the store, each from its first step that is not
	// done, but for a run whose commit the branch has moved past (the
	// head the store knows is another commit, or a newer run of the
	// branch deployed while its commit is not the head), which ends
	// superseded with that reason. A run stopped by
	// ctx stays running in the store, for the next executor to resume.
	// Run may be called once.
	Run(ctx context.Context) error
	// Wait waits until run id is done (succeeded, failed or superseded)
	// and returns it with its steps, or until ctx ends.
	Wait(ctx context.Context, id int64) (store.Run, error)
}

// The steps of a run, in order.
const (
	StepCheckout = "checkout"
	StepValidate = "validate"
	StepBuild    = "build"
	StepTest     = "test"
	StepRelease  = "release"
	StepDeploy   = "deploy"
)

// Steps lists the step names of every run, in the order they run.
var Steps = []string{StepCheckout, StepValidate, StepBuild, StepTest, StepRelease, StepDeploy}

// Actor is who the audit log and the deployments name for what a run does.
const Actor = "ferry"

// Defaults of a Config.
const (
	// DefaultJobs functions build (and test) at once per run: builds are
	// CPU bound, and a run for each of several sources may be building at
	// the same time.
	DefaultJobs = 4
	// DefaultTestTimeout bounds a test whose manifest sets no timeout
	// (the manifest's own default is the same, so this matters only for
	// sets built in code).
	DefaultTestTimeout = 10 * time.Minute
	// DefaultStoreRetry is how long a run waits for a store that refuses
	// its writes (a full disk) before it stops, failed: long enough for
	// someone to free space, short enough that the run does not look
	// alive for long while it cannot go on.
	DefaultStoreRetry = 2 * time.Minute
)

// Config wires an executor to the rest of ferry.
type Config struct {
	// Store keeps runs, steps, logs, builds, releases, deployments and
	// the audit log. Required.
	Store Store
	// Tree returns the repository tree of source at commit: the watcher's
	// Tree in production. It is called again when a run resumes, so it
	// must give the same files for the same commit. The fs.FS should
	// implement fs.ReadLinkFS, so that symlinks can be confined to the
	// tree. Required.
	Tree func(ctx context.Context, source, commit string) (fs.FS, error)
	// CommitTime, when set, returns the commit's time, which every file
	// of the images is stamped with (build.Info.Time). Without it images
	// are stamped with the Unix epoch. Either way one commit builds the
	// same bytes every time.
	CommitTime func(ctx context.Context, source, commit string) (time.Time, error)
	// SourceURL, when set, returns the source's repository URL for the
	// images' and releases' org.opencontainers.image.source annotation.
	SourceURL func(source string) string
	// Builder builds the functions' images. Required.
	Builder build.Builder
	// Repo is HOST[:PORT]/REPO, where release artifacts go: the builder's
	// repository. Required.
	Repo string
	// PushOptions are for build.PushRelease and build.PullRelease
	// (build.WithInsecure, build.WithKeychain).
	PushOptions []build.Option
	// Pull loads a release made before (by an earlier run of the commit,
	// or before a restart) by reference. Default: build.PullRelease with
	// PushOptions.
	Pull func(ctx context.Context, ref string) (*build.Release, error)
	// Target returns the target of an environment; the deploy step asks
	// for the Pipeline's first stage (dev unless the repository says
	// otherwise). Required.
	Target func(env string) (environments.Target, error)
	// Jobs bounds the functions built, and the tests run, at once in one
	// run (default DefaultJobs).
	Jobs int
	// TestTimeout, when positive, caps every test's timeout, whatever the
	// manifest's spec.test.timeout says (that is 10m by default, and at
	// most 2h).
	TestTimeout time.Duration
	// OnDeployed, when set, is called after a run deployed its release to
	// the first stage (run is still running then): promotion carries it
	// on from there. It may be called again for the same run after a
	// restart, so it must be idempotent.
	OnDeployed func(run store.Run, rel store.Release, env string)
	// OnPreviewDeployed, when set, is called after a pull request's run
	// deployed its release to the request's preview (run.PullRequest is
	// its number). Like OnDeployed it may be called again after a
	// restart. A preview is never promoted, so OnDeployed is not called
	// for it.
	OnPreviewDeployed func(run store.Run, rel store.Release, env string)
	// PullHead, when set, returns the head commit ferry knows of source's
	// pull request number ("" when it knows none): a pull request's run
	// whose commit is no longer its head is superseded when ferry starts,
	// and is not run again after an infrastructure failure. Without it a
	// pull request's run is taken for its head.
	PullHead func(ctx context.Context, source string, number int) (string, error)
	// Admit, when set, is asked before the deploy step changes the first
	// stage (not a preview: freezes and holds are the stages' own); an error (a freeze, a hold after a manual rollback, a gate
	// the release may not pass) skips the deploy with its reason: the
	// release is made all the same, and the promoter records what waits.
	Admit func(ctx context.Context, run store.Run, rel store.Release, env string) error
	// IsAncestor, when set, reports whether commit ancestor is an
	// ancestor of (or the same as) commit descendant in source's
	// repository: the watcher's mirror in production. With it a run never
	// deploys a commit older than the one its environment runs from the
	// same branch, and a resumed run whose commit the branch moved past
	// ends superseded.
	IsAncestor func(ctx context.Context, source, ancestor, descendant string) (bool, error)
	// StoreRetry bounds how long a run retries a write the store refuses
	// (its steps, logs, audit entries) before it stops and is recorded
	// failed, once the store takes that (default DefaultStoreRetry).
	StoreRetry time.Duration
	// Log hears what cannot be told through a run: a store that fails to
	// record a step, say. Default: nothing.
	Log func(format string, args ...any)
	// Events, when set, hears each run's outcomes: started, release made,
	// deployed, finished (events.go). It must not block.
	Events func(Event)
	// Sandbox runs test commands. Nil: the sandbox when bubblewrap is
	// there and works, else none.
	Sandbox *sandbox.Sandbox
}

// NewEmbedded returns the embedded executor: runs execute in this process,
// one goroutine per source and branch with work to do.
func NewEmbedded(cfg Config) (Executor, error) {
	var missing []string
	if cfg.Store == nil {
		missing = append(missing, "Store")
	}
	if cfg.Tree == nil {
		missing = append(missing, "Tree")
	}
	if cfg.Builder == nil {
		missing = append(missing, "Builder")
	}
	if cfg.Repo == "" {
		missing = append(missing, "Repo")
	}
	if cfg.Target == nil {
		missing = append(missing, "Target")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("pipeline: the executor needs %v in its Config", missing)
	}
	if cfg.Jobs < 0 {
		return nil, fmt.Errorf("pipeline: Jobs must not be negative, not %d", cfg.Jobs)
	}
	if cfg.Jobs == 0 {
		cfg.Jobs = DefaultJobs
	}
	if cfg.TestTimeout < 0 {
		return nil, errors.New("pipeline: TestTimeout must not be negative")
	}
	if cfg.StoreRetry < 0 {
		return nil, errors.New("pipeline: StoreRetry must not be negative")
	}
	if cfg.StoreRetry == 0 {
		cfg.StoreRetry = DefaultStoreRetry
	}
	if cfg.Log == nil {
		cfg.Log = func(string, ...any) {}
	}
	if cfg.Sandbox == nil {
		sb, err := sandbox.Find(context.Background(), sandbox.ModeAuto, sandbox.NetworkNone)
		if err != nil {
			return nil, fmt.Errorf("pipeline: %w", err)
		}
		cfg.Sandbox = sb
	}
	return newEmbedded(cfg), nil
}
