package promote

import (
	"strings"
	"testing"
)

// TestNext: what happens next, as the answers to approve, freeze and
// unfreeze say it.
func TestNext(t *testing.T) {
	f := newFixture(t, nil)
	s := spec{message: "what next", pipeline: approvalPipeline}
	f.authors.Store(s.commit(), [2]string{"carol", "carol@example.com"})
	rel := f.release(s)
	f.pipelineDeploy(rel)
	p := f.promotion(rel, "prod")
	next := func(env string, id int64, want ...string) {
		t.Helper()
		got, err := f.p.Next(f.ctx, env, id)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range want {
			if !strings.Contains(got, w) {
				t.Errorf("Next(%s, %d) = %q, want it to say %q", env, id, got, w)
			}
		}
	}
	// carol wrote the commit: she is not among those who can approve.
	next("prod", p.ID, "is waiting for 2 more approvals from ann, bob or group:ops")
	must[any](t)(f.p.Approve(f.ctx, p.ID, ann, ""))
	next("prod", p.ID, "is waiting for 1 more approval from bob or group:ops", "(approved by ann)")
	next("prod", 0, "is waiting for 1 more approval")

	if err := f.p.Freeze(f.ctx, "prod", "audit", ann); err != nil {
		t.Fatal(err)
	}
	next("prod", 0, "frozen: promotions wait until `ferry unfreeze prod`", "1 promotion waits")
	next("prod", p.ID, "waiting for 1 more approval", "then frozen")
	if err := f.p.Unfreeze(f.ctx, "prod", ann); err != nil {
		t.Fatal(err)
	}
	must[any](t)(f.p.Approve(f.ctx, p.ID, bob, ""))
	f.wait(p.ID, StatusSucceeded)
	next("prod", p.ID, "succeeded", "is live in prod")
	next("prod", 0, "nothing waits to go into prod")
}
