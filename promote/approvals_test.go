package promote

import (
	"strings"
	"testing"
	"time"

	"github.com/ferrycd/ferry/store"
)

// approvalPipeline: prod needs two approvals from ann, bob, carol or the
// ops group, and an approval counts for an hour.
const approvalPipeline = `spec:
  stages:
  - {name: dev, auto: true}
  - name: prod
    approval: {required: 2, approvers: [ann, bob, carol, "group:ops"], expireAfter: 1h}
`

func TestApprovals(t *testing.T) {
	f := newFixture(t, nil)
	s := spec{message: "approve me", pipeline: approvalPipeline}
	// The commit is carol's (by name), and bob's second address is hers.
	f.authors.Store(s.commit(), [2]string{"carol", "carol@example.com"})
	rel := f.release(s)
	f.pipelineDeploy(rel)
	p := f.promotion(rel, "prod")
	if p.Status != StatusPending || p.Requester != Actor || !strings.Contains(p.Reason, "waiting for 2 approvals") {
		t.Fatalf("prod: %+v", p)
	}

	_, err := f.p.Approve(f.ctx, p.ID, Identity{Name: "mallory"}, "")
	refused(t, err, Forbidden, "mallory may not approve", "ann, bob, carol, group:ops")
	_, err = f.p.Approve(f.ctx, p.ID, carol, "")
	refused(t, err, Forbidden, "carol wrote commit", "selfApproval")
	_, err = f.p.Approve(f.ctx, p.ID, Identity{Name: "bob", Email: "Carol@example.com"}, "")
	refused(t, err, Forbidden, "bob wrote commit")

	got := must[store.Promotion](t)(f.p.Approve(f.ctx, p.ID, ann, "first"))
	if got.Status != StatusPending {
		t.Fatalf("after one of two approvals: %+v", got)
	}
	_, err = f.p.Approve(f.ctx, p.ID, ann, "again")
	refused(t, err, Conflict, "ann approved promotion", "counts once")

	// An hour and more later ann's approval no longer counts: dave (in
	// ops by the configuration) makes one valid approval, not two.
	f.clock.advance(61 * time.Minute)
	got = must[store.Promotion](t)(f.p.Approve(f.ctx, p.ID, dave, "ops says yes"))
	if got.Status != StatusPending {
		t.Fatalf("an expired approval counted: %+v", got)
	}
	got = must[store.Promotion](t)(f.p.Approve(f.ctx, p.ID, ann, "still yes"))
	// why deploying too: the promoter may take the approved promotion on
	// before Approve reads it back.
	if !(got.Status == StatusApproved && got.Reason == "approved by dave, ann" || got.Status == StatusDeploying) {
		t.Fatalf("after two valid approvals: %+v", got)
	}
	f.wait(p.ID, StatusSucceeded)
	f.answers("prod", "approve me")
	_, err = f.p.Approve(f.ctx, p.ID, bob, "")
	refused(t, err, Conflict, "is succeeded, not pending")

	as := must[[]store.Approval](t)(f.st.ListApprovals(f.ctx, p.ID))
	if len(as) != 3 || as[0].Actor != "ann" || as[0].Comment != "first" || as[1].Actor != "dave" || as[2].Comment != "still yes" {
		t.Errorf("approvals recorded: %+v", as)
	}
	if as[1].At.Sub(as[0].At) < time.Hour {
		t.Errorf("approvals are recorded at the promoter's clock: %s then %s", as[0].At, as[1].At)
	}
}

func TestRejectAndSelfApproval(t *testing.T) {
	f := newFixture(t, nil)
	rel := f.release(spec{message: "reject me", pipeline: approvalPipeline})
	f.pipelineDeploy(rel)
	auto := f.promotion(rel, "prod")

	_, err := f.p.Reject(f.ctx, auto.ID, Identity{Name: "mallory"}, "")
	refused(t, err, Forbidden, "mallory may not reject")
	must[store.Promotion](t)(f.p.Approve(f.ctx, auto.ID, bob, ""))
	rejected := must[store.Promotion](t)(f.p.Reject(f.ctx, auto.ID, eve, "breaks the API"))
	if rejected.Status != StatusRejected || rejected.Reason != "rejected by eve: breaks the API" {
		t.Fatalf("rejected: %+v", rejected)
	}
	// A rejection blocks: no approval brings it back, nothing deploys.
	_, err = f.p.Approve(f.ctx, auto.ID, ann, "")
	refused(t, err, Conflict, "is rejected")
	if d := f.deployments("prod"); len(d) != 0 {
		t.Errorf("a rejected promotion deployed: %+v", d)
	}
	as := must[[]store.Approval](t)(f.st.ListApprovals(f.ctx, auto.ID))
	if len(as) != 2 || as[1].Approve || as[1].Actor != "eve" || as[1].Comment != "breaks the API" {
		t.Errorf("the rejection is not recorded: %+v", as)
	}

	// ann asks for it herself: she may not approve it; eve (in ops by
	// her token's groups) and bob may.
	asked := must[store.Promotion](t)(f.p.Promote(f.ctx, rel.ID, "prod", ann))
	_, err = f.p.Approve(f.ctx, asked.ID, ann, "")
	refused(t, err, Forbidden, "ann asked for promotion", "ask another approver")
	must[store.Promotion](t)(f.p.Approve(f.ctx, asked.ID, eve, ""))
	must[store.Promotion](t)(f.p.Approve(f.ctx, asked.ID, bob, ""))
	f.wait(asked.ID, StatusSucceeded)
	f.answers("prod", "reject me")
	_, err = f.p.Reject(f.ctx, asked.ID, bob, "")
	refused(t, err, Conflict, "only a pending or approved promotion can be rejected", "roll prod back")
}

// TestApprovalsExpireWhileWaiting: approvals that expire while an
// approved promotion waits (for a freeze to end) no longer let it in.
func TestApprovalsExpireWhileWaiting(t *testing.T) {
	f := newFixture(t, nil)
	rel := f.release(spec{message: "expire", pipeline: approvalPipeline})
	f.pipelineDeploy(rel)
	p := f.promotion(rel, "prod")
	check(t, f.p.Freeze(f.ctx, "prod", "audit week", carol))
	must[store.Promotion](t)(f.p.Approve(f.ctx, p.ID, ann, ""))
	must[store.Promotion](t)(f.p.Approve(f.ctx, p.ID, bob, ""))
	f.eventually("the approved promotion to say it waits", func() bool {
		got := must[store.Promotion](t)(f.st.GetPromotion(f.ctx, p.ID))
		return got.Status == StatusApproved && strings.Contains(got.Reason, "waiting: prod is frozen by carol") && strings.Contains(got.Reason, "audit week")
	}, func() string { return "" })
	f.clock.advance(2 * time.Hour)
	check(t, f.p.Unfreeze(f.ctx, "prod", carol))
	got := f.wait(p.ID, StatusPending)
	if !strings.Contains(got.Reason, "approvals expired") {
		t.Errorf("back to pending: %q", got.Reason)
	}
	if d := f.deployments("prod"); len(d) != 0 {
		t.Errorf("expired approvals let a release in: %+v", d)
	}
}
