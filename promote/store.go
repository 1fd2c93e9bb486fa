package promote

import (
	"context"

	"github.com/ferrycd/ferry/store"
)

// Store is what the promoter reads and writes of ferry's state: its
// promotions and their approvals, the deployments it makes, the
// environments' holds and freezes, and the releases and builds a
// rollback looks up. store.Store satisfies it; naming only these keeps a
// second store (or a wrapper) to what promotion uses.
type Store interface {
	store.LiveReader // what an environment runs (store.LiveIn)
	store.HeadReader // a branch's head (store.HeadOf)
	ListSources(ctx context.Context) ([]store.Source, error)

	PutRelease(ctx context.Context, rel store.Release) (stored store.Release, created bool, err error)
	BuildsWithDigest(ctx context.Context, source, digest string) ([]store.Build, error)

	HoldEnvironment(ctx context.Context, env string, held bool, reason string) error
	FreezeEnvironment(ctx context.Context, env string, f store.Freeze) error
	RecordDeployment(ctx context.Context, d store.Deployment) (store.Deployment, error)
	GetDeployment(ctx context.Context, id int64) (store.Deployment, error)
	UpdateDeployment(ctx context.Context, d store.Deployment) error
	ListDeployments(ctx context.Context, env string, page store.Page) ([]store.Deployment, error)
	FindDeployments(ctx context.Context, q store.DeploymentQuery) ([]store.Deployment, error)

	CreatePromotion(ctx context.Context, p store.Promotion) (store.Promotion, error)
	GetPromotion(ctx context.Context, id int64) (store.Promotion, error)
	UpdatePromotion(ctx context.Context, p store.Promotion, from string) error
	ChangePromotion(ctx context.Context, c store.PromotionChange) (store.Promotion, store.Deployment, error)
	FindPromotions(ctx context.Context, q store.PromotionQuery) ([]store.Promotion, error)
	Decide(ctx context.Context, a store.Approval, from []string, status, reason string) (store.Approval, error)
	ListApprovals(ctx context.Context, promotion int64) ([]store.Approval, error)
}

var _ Store = store.Store(nil)
