package promote

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ferrycd/ferry/internal/words"
	"github.com/ferrycd/ferry/manifests/v1alpha1"
	"github.com/ferrycd/ferry/store"
)

// Approve implements Promoter. The stage's policy decides: the actor must
// be an allowed approver (by name, or a member of a listed group), must
// not be the requester or the commit's author unless the policy allows
// self-approval, and counts once however often they approve. The
// promotion is approved once enough approvals are valid (not expired).
func (e *engine) Approve(ctx context.Context, id int64, actor Identity, comment string) (store.Promotion, error) {
	p, rel, stage, err := e.decision(ctx, id, actor)
	if err != nil {
		return store.Promotion{}, err
	}
	if p.Status != StatusPending {
		return store.Promotion{}, conflict("promotion %d is %s, not pending; there is nothing to approve", id, p.Status)
	}
	if err := e.loosens(rel, p.Environment); err != nil {
		return store.Promotion{}, forbidden("promotion %d may not be approved: release %s is refused in %s: %v", id, store.Short(p.Release), p.Environment, err)
	}
	pol := stage.Approval
	if pol == nil {
		return store.Promotion{}, conflict("promotion %d needs no approval (%s is not an approval stage): %s", id, p.Environment, p.Reason)
	}
	if err := e.mayApprove(ctx, p, rel, pol, actor); err != nil {
		return store.Promotion{}, err
	}
	as, err := e.st.ListApprovals(ctx, id)
	if err != nil {
		return store.Promotion{}, err
	}
	now := e.now()
	for _, a := range as {
		if a.Approve && a.Actor == actor.Name && !expired(a, pol, now) {
			return store.Promotion{}, conflict("%s approved promotion %d already (at %s); an approver counts once", actor.Name, id, a.At.Format(time.RFC3339))
		}
	}
	dctx := e.event(ctx, actor.Name, ActionPromotionApprove, promotionObject(id), decisionDetail(p, comment))
	_, err = e.st.Decide(dctx, store.Approval{Promotion: id, Actor: actor.Name, Approve: true, Comment: comment, At: now}, []string{StatusPending}, "", "")
	if errors.Is(err, store.ErrConflict) {
		cur, _ := e.st.GetPromotion(ctx, id)
		return store.Promotion{}, conflict("promotion %d is %s now, not pending; there is nothing to approve", id, cur.Status)
	}
	if err != nil {
		return store.Promotion{}, err
	}
	e.tell(Event{Kind: EventApproved, Environment: p.Environment, Release: p.Release, Promotion: id, Actor: actor.Name, Reason: comment})
	q, err := e.approveIfEnough(ctx, p, rel, pol)
	if err != nil {
		return store.Promotion{}, err
	}
	if q.Status == StatusApproved {
		// why not read again: the worker may have started it already,
		// and the approver is told what their approval did.
		return q, nil
	}
	return e.st.GetPromotion(ctx, id)
}

// Reject implements Promoter. An allowed approver, or the requester, may
// reject a promotion that has not started; it ends there.
func (e *engine) Reject(ctx context.Context, id int64, actor Identity, comment string) (store.Promotion, error) {
	p, _, stage, err := e.decision(ctx, id, actor)
	if err != nil {
		return store.Promotion{}, err
	}
	open := []string{StatusPending, StatusApproved}
	if !slices.Contains(open, p.Status) {
		return store.Promotion{}, conflict("promotion %d is %s; only a pending or approved promotion can be rejected%s", id, p.Status, rollbackHint(p))
	}
	if pol := stage.Approval; pol != nil && len(pol.Approvers) > 0 && !e.allowed(pol.Approvers, actor) && !strings.EqualFold(actor.Name, p.Requester) {
		return store.Promotion{}, forbidden("%s may not reject promotions into %s: its approvers are %s; ask one of them", actor.Name, p.Environment, strings.Join(pol.Approvers, ", "))
	}
	reason := "rejected by " + actor.Name
	if comment != "" {
		reason += ": " + comment
	}
	dctx := e.event(ctx, actor.Name, ActionPromotionReject, promotionObject(id), decisionDetail(p, comment))
	_, err = e.st.Decide(dctx, store.Approval{Promotion: id, Actor: actor.Name, Comment: comment, At: e.now()}, open, StatusRejected, reason)
	if errors.Is(err, store.ErrConflict) {
		cur, _ := e.st.GetPromotion(ctx, id)
		return store.Promotion{}, conflict("promotion %d is %s now; only a pending or approved promotion can be rejected%s", id, cur.Status, rollbackHint(cur))
	}
	if err != nil {
		return store.Promotion{}, err
	}
	e.tell(Event{Kind: EventRejected, Environment: p.Environment, Release: p.Release, Promotion: id, Actor: actor.Name, Reason: comment})
	return e.st.GetPromotion(ctx, id)
}

func rollbackHint(p store.Promotion) string {
	switch p.Status {
	case StatusDeploying, StatusVerifying, StatusSucceeded:
		return fmt.Sprintf("; to take it out, roll %s back", p.Environment)
	}
	return ""
}

func decisionDetail(p store.Promotion, comment string) string {
	d := fmt.Sprintf("release %s to %s", p.Release, p.Environment)
	if comment != "" {
		d += ": " + comment
	}
	return d
}

// decision reads what an approval or rejection needs.
func (e *engine) decision(ctx context.Context, id int64, actor Identity) (store.Promotion, *release, *v1alpha1.Stage, error) {
	if actor.Name == "" {
		return store.Promotion{}, nil, nil, invalid("no actor; ferry records who decides on each promotion")
	}
	p, err := e.st.GetPromotion(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Promotion{}, nil, nil, invalid("there is no promotion %d (ferry promotions lists them)", id)
	}
	if err != nil {
		return store.Promotion{}, nil, nil, err
	}
	rel, err := e.release(ctx, p.Release)
	if err != nil {
		return store.Promotion{}, nil, nil, fmt.Errorf("promotion %d: %w", id, err)
	}
	stage, ok := rel.stage(p.Environment)
	if !ok {
		stage = &v1alpha1.Stage{Name: p.Environment}
	}
	return p, rel, stage, nil
}

// mayApprove applies the policy to one approver.
func (e *engine) mayApprove(ctx context.Context, p store.Promotion, rel *release, pol *v1alpha1.ApprovalPolicy, actor Identity) error {
	if len(pol.Approvers) > 0 && !e.allowed(pol.Approvers, actor) {
		return forbidden("%s may not approve promotions into %s: its approvers are %s; ask one of them", actor.Name, p.Environment, strings.Join(pol.Approvers, ", "))
	}
	if pol.SelfApproval {
		return nil
	}
	if strings.EqualFold(actor.Name, p.Requester) {
		return forbidden("%s asked for promotion %d and may not approve it too; ask another approver", actor.Name, p.ID)
	}
	a, err := e.commitAuthor(ctx, rel.rec)
	if err != nil {
		return fmt.Errorf("checking that %s is not approving their own commit: %w; try again", actor.Name, err)
	}
	if a.name != "" && strings.EqualFold(actor.Name, a.name) || actor.Email != "" && strings.EqualFold(actor.Email, a.email) {
		return forbidden("%s wrote commit %s of release %s and may not approve it; ask another approver (approval.selfApproval in the stage allows it)",
			actor.Name, store.Short(rel.rec.Commit), store.Short(rel.rec.ID))
	}
	return nil
}

// allowed reports whether actor is one of approvers: by name, or as a
// member of a "group:<name>" entry (its token's groups, or Config.Groups,
// keyed by "group:<name>" or "<name>").
func (e *engine) allowed(approvers []string, actor Identity) bool {
	for _, a := range approvers {
		group, isGroup := strings.CutPrefix(a, "group:")
		switch {
		case !isGroup && a == actor.Name:
			return true
		case isGroup && (slices.Contains(actor.Groups, group) || slices.Contains(e.cfg.Groups[a], actor.Name) || slices.Contains(e.cfg.Groups[group], actor.Name)):
			return true
		}
	}
	return false
}

func expired(a store.Approval, pol *v1alpha1.ApprovalPolicy, now time.Time) bool {
	return pol.ExpireAfter != nil && now.Sub(a.At) > pol.ExpireAfter.Duration
}

func required(pol *v1alpha1.ApprovalPolicy) int {
	if pol.Required == nil {
		return 1
	}
	return int(*pol.Required)
}

func approvalsWanted(pol *v1alpha1.ApprovalPolicy) string {
	return words.Count(required(pol), "approval")
}

// validApprovals lists who approved p with an approval that counts now:
// unexpired, a yes, one per approver, and (unless the policy allows
// self-approval) neither by the requester nor by the commit's author. Who
// may approve was checked when they did.
func (e *engine) validApprovals(ctx context.Context, p store.Promotion, rel *release, pol *v1alpha1.ApprovalPolicy) ([]string, error) {
	as, err := e.st.ListApprovals(ctx, p.ID)
	if err != nil {
		return nil, err
	}
	var self author
	if !pol.SelfApproval {
		if self, err = e.commitAuthor(ctx, rel.rec); err != nil {
			return nil, err
		}
	}
	now := e.now()
	var names []string
	for _, a := range as {
		switch {
		case !a.Approve, expired(a, pol, now), slices.Contains(names, a.Actor):
		case !pol.SelfApproval && (strings.EqualFold(a.Actor, p.Requester) || self.name != "" && strings.EqualFold(a.Actor, self.name)):
		default:
			names = append(names, a.Actor)
		}
	}
	return names, nil
}

// approveIfEnough moves a pending p to approved when enough approvals
// count.
func (e *engine) approveIfEnough(ctx context.Context, p store.Promotion, rel *release, pol *v1alpha1.ApprovalPolicy) (store.Promotion, error) {
	names, err := e.validApprovals(ctx, p, rel, pol)
	if err != nil {
		return p, err
	}
	if len(names) < required(pol) {
		return p, nil
	}
	p.Status, p.Reason = StatusApproved, "approved by "+strings.Join(names, ", ")
	if err := e.st.UpdatePromotion(ctx, p, StatusPending); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return e.st.GetPromotion(ctx, p.ID) // another approval counted first
		}
		return p, err
	}
	e.signal()
	return p, nil
}

// stillApproved counts an approved promotion's approvals again before it
// starts: ones that expired while it waited (for a freeze to end, say) no
// longer let it in, and it goes back to pending.
func (e *engine) stillApproved(ctx context.Context, p store.Promotion) (bool, error) {
	rel, err := e.release(ctx, p.Release)
	if err != nil {
		return false, err
	}
	if err := e.loosens(rel, p.Environment); err != nil {
		_, err := e.refuse(ctx, p, err)
		return false, err
	}
	stage, ok := rel.stage(p.Environment)
	if !ok || stage.Approval == nil {
		return true, nil
	}
	names, err := e.validApprovals(ctx, p, rel, stage.Approval)
	if err != nil {
		return false, err
	}
	if n := required(stage.Approval); len(names) < n {
		p.Status = StatusPending
		p.Reason = fmt.Sprintf("its approvals expired while it waited (%d of %d still count); approve it again", len(names), n)
		if err := e.st.UpdatePromotion(ctx, p, StatusApproved); err != nil && !errors.Is(err, store.ErrConflict) {
			return false, err
		}
		return false, nil
	}
	return true, nil
}
