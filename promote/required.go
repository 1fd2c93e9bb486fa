package promote

import (
	"context"
	"errors"

	"github.com/ferrycd/ferry/store"
)

// Requirements says how many approvals a promotion needs, so that a list
// of promotions can print "1/2" beside each.
type Requirements interface {
	// ApprovalsRequired is the number of approvals p's stage requires;
	// 0 when the stage takes none (or p's release is not in the records).
	ApprovalsRequired(ctx context.Context, p store.Promotion) (int, error)
}

var _ Requirements = (*engine)(nil)

// ApprovalsRequired implements Requirements from the policy of p's
// release, as Approve applies it.
func (e *engine) ApprovalsRequired(ctx context.Context, p store.Promotion) (int, error) {
	rel, err := e.release(ctx, p.Release)
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	stage, ok := rel.stage(p.Environment)
	if !ok || stage.Approval == nil {
		return 0, nil
	}
	return required(stage.Approval), nil
}
