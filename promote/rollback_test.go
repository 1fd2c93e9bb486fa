package promote

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrycd/ferry/store"
)

// TestRollback: back to the release before (twice goes two back), to a
// release id, to a release the store does not hold (pulled from the
// registry); each holds automatic promotion until Resume.
func TestRollback(t *testing.T) {
	f := newFixture(t, nil)
	var rels []store.Release
	for _, m := range []string{"rb 1", "rb 2", "rb 3"} {
		r := f.release(spec{message: m})
		f.pipelineDeploy(r)
		f.wait(f.promotion(r, "staging").ID, StatusSucceeded)
		rels = append(rels, r)
	}
	f.answers("staging", "rb 3")

	d := must[store.Deployment](t)(f.p.Rollback(f.ctx, "staging", RollbackTarget{}, ann))
	if d.Release != rels[1].ID || d.Previous != rels[2].ID || d.Kind != store.DeploymentRollback || d.Actor != "ann" || d.Status != store.DeploymentSucceeded || d.Commit != rels[1].Commit {
		t.Errorf("rollback: %+v", d)
	}
	f.answers("staging", "rb 2")
	if e := f.env("staging"); !e.Held || !strings.Contains(e.HoldReason, "ann pinned it to release "+store.Short(rels[1].ID)) {
		t.Errorf("staging after a rollback: %+v", e)
	}

	// A new release goes to dev, but waits for staging, which is held.
	r4 := f.release(spec{message: "rb 4"})
	f.pipelineDeploy(r4)
	waiting := f.promotion(r4, "staging")
	if waiting.Status != StatusPending || !strings.Contains(waiting.Reason, "waiting: staging is held") || !strings.Contains(waiting.Reason, "ferry resume staging") {
		t.Fatalf("an automatic promotion into a held stage: %+v", waiting)
	}
	f.answers("staging", "rb 2")

	// Again: two back, not forth to the release rolled back from.
	must[store.Deployment](t)(f.p.Rollback(f.ctx, "staging", RollbackTarget{}, ann))
	f.answers("staging", "rb 1")
	_, err := f.p.Rollback(f.ctx, "staging", RollbackTarget{}, ann)
	refused(t, err, Conflict, "ran no release before", "--to RELEASE")

	must[store.Deployment](t)(f.p.Rollback(f.ctx, "staging", RollbackTarget{Release: rels[2].ID}, bob))
	f.answers("staging", "rb 3")
	_, err = f.p.Rollback(f.ctx, "staging", RollbackTarget{Release: rels[2].ID}, bob)
	refused(t, err, Conflict, "staging runs release "+store.Short(rels[2].ID)+" already")
	_, err = f.p.Rollback(f.ctx, "staging", RollbackTarget{Release: "v1.2"}, bob)
	refused(t, err, Invalid, "not a release id")

	// A release in the registry that this store never recorded: pulled
	// only once ferry knows it built its images for the source.
	check(t, f.st.PutSource(f.ctx, store.Source{Name: "demo", URL: "https://git.example.com/demo", Branch: "main", Interval: time.Minute}))
	lost := artifact(t, spec{message: "rb lost"})
	_, err = f.p.Rollback(f.ctx, "staging", RollbackTarget{Release: lost.Digest.String()}, bob)
	refused(t, err, Forbidden, "function hello", "was never built by ferry for source demo", "allowedImages")
	f.answers("staging", "rb 3")
	f.built(spec{message: "rb lost"})
	must[store.Deployment](t)(f.p.Rollback(f.ctx, "staging", RollbackTarget{Release: lost.Digest.String()}, bob))
	f.answers("staging", "rb lost")
	rec := must[store.Release](t)(f.st.GetRelease(f.ctx, lost.Digest.String()))
	if rec.Kind != store.ReleasePulled || rec.Ref != lost.Ref || rec.Commit != lost.Revision || rec.Source != "demo" {
		t.Errorf("the pulled release's record: %+v", rec)
	}
	// Nor is a release pulled from a repository ferry does not use.
	_, err = f.p.Rollback(f.ctx, "staging", RollbackTarget{Release: "registry.example.com/evil@sha256:" + strings.Repeat("d", 64)}, bob)
	refused(t, err, Forbidden, "not in ferry's release repository "+shared.repo, "allowedImages")
	_, err = f.p.Rollback(f.ctx, "staging", RollbackTarget{Release: "sha256:" + strings.Repeat("e", 64)}, bob)
	refused(t, err, Invalid, "the store holds no release", "pulling it from "+shared.repo)

	// Resume lets the waiting release in.
	check(t, f.p.Resume(f.ctx, "staging", ann))
	f.wait(waiting.ID, StatusSucceeded)
	f.answers("staging", "rb 4")
	refused(t, f.p.Resume(f.ctx, "staging", ann), Conflict, "staging is not held")

	var actions []string
	for _, e := range must[[]store.Event](t)(f.st.ListEvents(f.ctx, "env/staging", store.Page{Limit: store.MaxPageSize})) {
		actions = append(actions, e.Actor+" "+e.Action)
	}
	if n := count(actions, "ann rollback") + count(actions, "bob rollback"); n != 4 || count(actions, "ann resume") != 1 {
		t.Errorf("the audit log of staging: %q", actions)
	}
}

// TestRollbackFunction pins one function of the live release to another
// image: the other functions keep theirs.
func TestRollbackFunction(t *testing.T) {
	f := newFixture(t, nil)
	// The old release was built (its images are in the registry) but
	// never ran here.
	oldImage := artifact(t, spec{message: "pin old", bye: true}).Set.Function("hello").Spec.Image
	cur := f.release(spec{message: "pin new", bye: true})
	f.pipelineDeploy(cur)
	f.wait(f.promotion(cur, "staging").ID, StatusSucceeded)
	curBye := artifact(t, spec{message: "pin new", bye: true}).Set.Function("bye").Spec.Image
	_, digest, _ := strings.Cut(oldImage, "@")

	// Until the store records that ferry built it for demo, it is refused.
	_, err := f.p.Rollback(f.ctx, "staging", RollbackTarget{Function: "hello", Image: digest}, ann)
	refused(t, err, Forbidden, "image "+oldImage+" was never built by ferry for source demo", "allowedImages")
	f.answers("staging", "pin new")
	if f.env("staging").Held || len(f.deployments("staging")) != 1 {
		t.Errorf("a refused pin changed staging: %+v, %+v", f.env("staging"), f.deployments("staging"))
	}
	f.built(spec{message: "pin old", bye: true})

	d := must[store.Deployment](t)(f.p.Rollback(f.ctx, "staging", RollbackTarget{Function: "hello", Image: digest}, ann))
	if got := f.answer("staging", "/hello"); got != "pin old" {
		t.Errorf("hello answers %q, want the pinned image's", got)
	}
	if got := f.answer("staging", "/bye"); got != "pin new" {
		t.Errorf("bye answers %q, want its own image's", got)
	}
	target := must[*envTarget](t)(f.targetOf("staging"))
	st := must[*statusOf](t)(target.status(f.ctx))
	if st.images["hello"] != oldImage || st.images["bye"] != curBye || st.release != d.Release {
		t.Errorf("staging runs %+v; want hello %s, bye %s", st, oldImage, curBye)
	}
	pin := must[store.Release](t)(f.st.GetRelease(f.ctx, d.Release))
	if pin.Kind != store.ReleasePinned || pin.BasedOn != cur.ID || pin.Commit != cur.Commit || pin.Source != "demo" {
		t.Errorf("the pinned release: %+v", pin)
	}
	if !f.env("staging").Held {
		t.Error("a pin does not hold staging")
	}

	_, err = f.p.Rollback(f.ctx, "staging", RollbackTarget{Function: "nope", Image: digest}, ann)
	refused(t, err, Invalid, "has no function nope", "bye, hello")
	_, err = f.p.Rollback(f.ctx, "staging", RollbackTarget{Function: "hello", Image: "sha256:" + strings.Repeat("a", 64)}, ann)
	refused(t, err, Forbidden, "never built by ferry")
	_, err = f.p.Rollback(f.ctx, "staging", RollbackTarget{Function: "hello"}, ann)
	refused(t, err, Invalid, "give the image")
}

// TestRollbackIntoApprovalStage: a rollback goes back only where the
// approvals let prod go before.
func TestRollbackIntoApprovalStage(t *testing.T) {
	f := newFixture(t, nil)
	r1 := f.release(spec{message: "ap 1", bye: true})
	r2 := f.release(spec{message: "ap 2", bye: true})
	r3 := f.release(spec{message: "ap 3", bye: true})
	for _, r := range []store.Release{r1, r2} {
		f.pipelineDeploy(r)
		f.wait(f.promotion(r, "staging").ID, StatusSucceeded)
		p := f.wait(f.promotion(r, "prod").ID, StatusPending)
		must[store.Promotion](t)(f.p.Approve(f.ctx, p.ID, bob, ""))
		f.wait(p.ID, StatusSucceeded)
	}
	f.pipelineDeploy(r3)
	f.wait(f.promotion(r3, "staging").ID, StatusSucceeded)

	_, err := f.p.Rollback(f.ctx, "prod", RollbackTarget{Release: r3.ID}, ann)
	refused(t, err, Forbidden, "never ran in prod", "promote this one instead")
	r3hello := artifact(t, spec{message: "ap 3", bye: true}).Set.Function("hello").Spec.Image
	_, err = f.p.Rollback(f.ctx, "prod", RollbackTarget{Function: "hello", Image: r3hello}, ann)
	refused(t, err, Forbidden, "never ran image")
	f.answers("prod", "ap 2")

	r1hello := artifact(t, spec{message: "ap 1", bye: true}).Set.Function("hello").Spec.Image
	must[store.Deployment](t)(f.p.Rollback(f.ctx, "prod", RollbackTarget{Function: "hello", Image: r1hello}, ann))
	f.answers("prod", "ap 1")
	must[store.Deployment](t)(f.p.Rollback(f.ctx, "prod", RollbackTarget{Release: r2.ID}, ann))
	f.answers("prod", "ap 2")
}

func count(list []string, s string) int {
	n := 0
	for _, x := range list {
		if x == s {
			n++
		}
	}
	return n
}

// refusingStore is the real store with RecordDeployment refused while
// refuse is set: a disk that fills between a rollback's apply and its
// record.
type refusingStore struct {
	Store
	refuse atomic.Bool
}

func (s *refusingStore) RecordDeployment(ctx context.Context, d store.Deployment) (store.Deployment, error) {
	if s.refuse.Load() {
		return d, errors.New("database or disk is full (13)")
	}
	return s.Store.RecordDeployment(ctx, d)
}

// TestRollbackNotRecordedIsUndone: a rollback applied but refused by the
// store puts the environment back on the release the store says it runs,
// and lifts the hold it set, so the next start has nothing to undo.
func TestRollbackNotRecordedIsUndone(t *testing.T) {
	rs := &refusingStore{}
	f := newFixture(t, func(c *Config) { rs.Store = c.Store; c.Store = rs })
	for _, m := range []string{"undo 1", "undo 2"} {
		r := f.release(spec{message: m})
		f.pipelineDeploy(r)
		f.wait(f.promotion(r, "staging").ID, StatusSucceeded)
	}
	f.answers("staging", "undo 2")
	rs.refuse.Store(true)
	_, err := f.p.Rollback(f.ctx, "staging", RollbackTarget{}, ann)
	if err == nil || !strings.Contains(err.Error(), "the store did not record it: database or disk is full (13)") || !strings.Contains(err.Error(), "runs release") {
		t.Fatalf("a rollback the store refused: %v", err)
	}
	f.answers("staging", "undo 2")
	if e := f.env("staging"); e.Held {
		t.Errorf("staging stays held after the rollback was undone: %+v", e)
	}
	rs.refuse.Store(false)
	must[store.Deployment](t)(f.p.Rollback(f.ctx, "staging", RollbackTarget{}, ann))
	f.answers("staging", "undo 1")
}
