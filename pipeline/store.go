package pipeline

import (
	"context"

	"github.com/ferrycd/ferry/store"
)

// Store is what the pipeline reads and writes of ferry's state: its runs
// and their logs, the builds and releases they make, the deployments of
// their deploy steps and the events they tell. store.Store satisfies it;
// naming only these keeps a second store (or a wrapper, as server's
// metrics) to what a run uses.
type Store interface {
	store.LiveReader // what an environment runs (store.LiveIn)
	store.HeadReader // a branch's head (store.HeadOf)

	CreateRun(ctx context.Context, r store.Run, steps []string) (run store.Run, created bool, err error)
	ListRuns(ctx context.Context, source string, page store.Page) ([]store.Run, error)
	UnfinishedRuns(ctx context.Context) ([]store.Run, error)
	UpdateRun(ctx context.Context, r store.Run) error
	UpdateStep(ctx context.Context, s store.Step) error
	AppendLog(ctx context.Context, runID int64, step string, lines ...string) error

	PutBuilds(ctx context.Context, builds []store.Build) error
	ListBuilds(ctx context.Context, source, commit string) ([]store.Build, error)
	PutRelease(ctx context.Context, rel store.Release) (stored store.Release, created bool, err error)
	ReleaseForCommit(ctx context.Context, source, commit string) (store.Release, error)

	RecordDeployment(ctx context.Context, d store.Deployment) (store.Deployment, error)
	ListDeployments(ctx context.Context, env string, page store.Page) ([]store.Deployment, error)
	FindDeployments(ctx context.Context, q store.DeploymentQuery) ([]store.Deployment, error)

	AppendEvent(ctx context.Context, e store.Event) (store.Event, error)
}

var _ Store = store.Store(nil)
