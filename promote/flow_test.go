package promote

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferrycd/ferry/build"
	"github.com/ferrycd/ferry/store"
)

// TestAutoFlow: a release the pipeline deployed to dev moves on to
// staging by itself and waits in prod for an approval (the default
// pipeline); the history says who, what and how at every step.
func TestAutoFlow(t *testing.T) {
	f := newFixture(t, nil)
	r1 := f.release(spec{message: "hello from flow 1"})

	dev := f.pipelineDeploy(r1)
	if dev.Status != StatusSucceeded || dev.Requester != Actor || dev.Deployment == 0 {
		t.Fatalf("dev: %+v", dev)
	}
	staging := f.wait(f.promotion(r1, "staging").ID, StatusSucceeded)
	if staging.Parent != dev.ID || staging.Reason != "deployed; the stage has no checks" {
		t.Errorf("staging: %+v", staging)
	}
	f.answers("staging", "hello from flow 1")
	prod := f.promotion(r1, "prod")
	if prod.Status != StatusPending || prod.Parent != staging.ID || !strings.Contains(prod.Reason, "waiting for 1 approval") {
		t.Fatalf("prod: %+v", prod)
	}
	if got := f.answer("prod", "/hello"); !strings.Contains(got, "404") {
		t.Errorf("prod answers %q before any approval", got)
	}

	// Deployed again (a restart of the pipeline): nothing new.
	check(t, f.p.Deployed(f.ctx, dev.RunID, r1.ID, "dev"))
	if ps := f.promotions(r1, "dev"); len(ps) != 1 {
		t.Errorf("Deployed twice made %d promotions to dev", len(ps))
	}

	approved := must[store.Promotion](t)(f.p.Approve(f.ctx, prod.ID, bob, "ship it"))
	if approved.Status != StatusApproved || approved.Reason != "approved by bob" {
		t.Errorf("after the approval: %+v", approved)
	}
	prod = f.wait(prod.ID, StatusSucceeded)
	f.answers("prod", "hello from flow 1")

	// History: every deployment with its release, commit, actor,
	// promotion, time and verification.
	d := f.deployments("dev")
	if len(d) != 1 || d[0].RunID != dev.RunID || d[0].Commit != r1.Commit || d[0].Source != "demo" || d[0].Verification != store.VerificationNone || d[0].Verified.IsZero() {
		t.Errorf("dev's history: %+v", d)
	}
	for _, env := range []string{"staging", "prod"} {
		d := f.deployments(env)
		p := f.promotion(r1, env)
		if len(d) != 1 || d[0].Release != r1.ID || d[0].Commit != r1.Commit || d[0].Actor != Actor || d[0].Promotion != p.ID ||
			d[0].Status != store.DeploymentSucceeded || d[0].Verification != store.VerificationNone || d[0].At.IsZero() || p.Deployment != d[0].ID {
			t.Errorf("%s's history: %+v (promotion %+v)", env, d, p)
		}
	}
	as := must[[]store.Approval](t)(f.st.ListApprovals(f.ctx, prod.ID))
	if len(as) != 1 || as[0].Actor != "bob" || as[0].Comment != "ship it" || !as[0].Approve || as[0].At.IsZero() {
		t.Errorf("approvals: %+v", as)
	}
	var actions []string
	for _, e := range must[[]store.Event](t)(f.st.ListEvents(f.ctx, "", store.Page{Limit: store.MaxPageSize})) {
		actions = append(actions, e.Actor+" "+e.Action+" "+e.Object)
	}
	for _, want := range []string{
		"ferry promotion.create promotion/" + itoa(staging.ID),
		"ferry deploy env/staging",
		"ferry promotion.create promotion/" + itoa(prod.ID),
		"bob promotion.approve promotion/" + itoa(prod.ID),
		"ferry deploy env/prod",
	} {
		if !slices.Contains(actions, want) {
			t.Errorf("the audit log has no %q: %q", want, actions)
		}
	}
}

// TestFailingCheckRollsBack: a release whose checks fail in staging is
// rolled back there automatically, the release before answers again,
// the promotion says why, and nothing goes on to prod.
func TestFailingCheckRollsBack(t *testing.T) {
	f := newFixture(t, nil)
	pipeline := func(want string) string {
		return `spec:
  stages:
  - name: dev
    auto: true
    verify:
    - {name: echo, event: {function: hello, data: {probe: 7}, bodyContains: probe}}
  - name: staging
    auto: true
    verify:
    - {name: greets, http: {path: /hello, bodyContains: "hello from"}}
    - {name: message, http: {path: /hello, jsonPath: $.message, equals: "` + want + `", maxLatency: 5s}}
  - {name: prod, approval: {required: 1}}
`
	}
	good := f.release(spec{message: "hello from good", pipeline: pipeline("hello from good")})
	bad := f.release(spec{message: "goodbye from bad", pipeline: pipeline("goodbye from bad")})

	f.pipelineDeploy(good)
	f.wait(f.promotion(good, "staging").ID, StatusSucceeded)
	f.answers("staging", "hello from good")

	dev := f.pipelineDeploy(bad)
	if dev.Status != StatusSucceeded {
		t.Fatalf("dev (the event check): %+v", dev)
	}
	p := f.wait(f.promotion(bad, "staging").ID, StatusRolledBack, StatusSucceeded, StatusFailed)
	if p.Status != StatusRolledBack || !strings.Contains(p.Reason, `check "greets" failed`) || !strings.Contains(p.Reason, "rolled back to release "+store.Short(good.ID)) {
		t.Fatalf("staging: %+v", p)
	}
	f.answers("staging", "hello from good")
	if ps := f.promotions(bad, "prod"); len(ps) != 0 {
		t.Errorf("a release that failed in staging went on to prod: %+v", ps)
	}
	if e := f.env("staging"); e.Release != good.ID || e.Held {
		t.Errorf("staging after the automatic rollback: %+v", e)
	}
	d := f.deployments("staging")
	if len(d) != 3 {
		t.Fatalf("staging's history: %+v", d)
	}
	if d[1].Release != bad.ID || d[1].Status != store.DeploymentRolledBack || d[1].Verification != store.VerificationFailed || !strings.Contains(d[1].Reason, "greets") {
		t.Errorf("the failed deployment: %+v", d[1])
	}
	if d[2].Release != good.ID || d[2].Kind != store.DeploymentAutoRollback || d[2].Actor != Actor || d[2].Promotion != p.ID || d[2].Previous != bad.ID || d[2].Status != store.DeploymentSucceeded {
		t.Errorf("the rollback: %+v", d[2])
	}
	if p.Deployment != d[1].ID {
		t.Errorf("the promotion's deployment is %d, want %d (its own, not the rollback)", p.Deployment, d[1].ID)
	}
}

// TestSupersede: a newer release supersedes the older ones pending for
// the same environment, except the ones someone asked for (pinned).
func TestSupersede(t *testing.T) {
	f := newFixture(t, nil)
	pipeline := "spec:\n  stages:\n  - {name: dev, auto: true}\n  - {name: prod, approval: {required: 1}}\n"
	r1 := f.release(spec{message: "s1", pipeline: pipeline})
	r2 := f.release(spec{message: "s2", pipeline: pipeline})
	r3 := f.release(spec{message: "s3", pipeline: pipeline})

	f.pipelineDeploy(r1)
	auto1 := f.promotion(r1, "prod")
	must[store.Promotion](t)(f.p.Reject(f.ctx, auto1.ID, bob, "not this one"))
	pinned := must[store.Promotion](t)(f.p.Promote(f.ctx, r1.ID, "prod", ann))
	if !pinned.Pinned || pinned.Status != StatusPending {
		t.Fatalf("asked for: %+v", pinned)
	}

	f.pipelineDeploy(r2)
	auto2 := f.promotion(r2, "prod")
	if auto2.Pinned || auto2.Status != StatusPending {
		t.Fatalf("automatic: %+v", auto2)
	}
	f.pipelineDeploy(r3)
	auto3 := f.promotion(r3, "prod")

	for _, c := range []struct {
		p      store.Promotion
		status string
	}{{pinned, StatusPending}, {auto2, StatusSuperseded}, {auto3, StatusPending}} {
		got := must[store.Promotion](t)(f.st.GetPromotion(f.ctx, c.p.ID))
		if got.Status != c.status {
			t.Errorf("promotion %d of %s: %s (%s), want %s", got.ID, store.Short(got.Release), got.Status, got.Reason, c.status)
		}
	}
	if got := must[store.Promotion](t)(f.st.GetPromotion(f.ctx, auto2.ID)); !strings.Contains(got.Reason, "superseded by promotion "+itoa(auto3.ID)) {
		t.Errorf("superseded: %q", got.Reason)
	}
}

// TestOneAtATime: promotions into one environment run one at a time, in
// the order they were approved, each to its end before the next starts.
func TestOneAtATime(t *testing.T) {
	f := newFixture(t, nil)
	// staging takes releases only when asked (neither auto nor approval),
	// and soaks each one.
	pipeline := `spec:
  stages:
  - {name: dev, auto: true}
  - name: staging
    soak: 600ms
    verify: [{http: {path: /hello}}]
`
	var rels []store.Release
	for _, m := range []string{"o1", "o2", "o3"} {
		r := f.release(spec{message: m, pipeline: pipeline})
		f.pipelineDeploy(r)
		rels = append(rels, r)
	}
	var ids []int64
	for _, r := range rels {
		ids = append(ids, must[store.Promotion](t)(f.p.Promote(f.ctx, r.ID, "staging", ann)).ID)
	}
	var ended []store.Promotion
	for _, id := range ids {
		ended = append(ended, f.wait(id, StatusSucceeded))
	}
	f.answers("staging", "o3")
	d := f.deployments("staging")
	if len(d) != 3 {
		t.Fatalf("staging's history: %+v", d)
	}
	for i := range d {
		if d[i].Release != rels[i].ID || d[i].Promotion != ids[i] {
			t.Errorf("deployment %d: release %s by promotion %d, want %s by %d", i, store.Short(d[i].Release), d[i].Promotion, store.Short(rels[i].ID), ids[i])
		}
		if i > 0 && d[i].At.Before(ended[i-1].Updated) {
			t.Errorf("deployment %d began at %s, before promotion %d ended at %s", i, d[i].At, ended[i-1].ID, ended[i-1].Updated)
		}
		if i > 0 && d[i].Previous != rels[i-1].ID {
			t.Errorf("deployment %d replaced %s, want %s", i, store.Short(d[i].Previous), store.Short(rels[i-1].ID))
		}
		if soaked := d[i].Verified.Sub(d[i].At); soaked < 600*time.Millisecond {
			t.Errorf("deployment %d was verified %s after it began, less than its soak", i, soaked)
		}
	}
}

// TestPromoteRefusals: what Promote refuses, and that it says what to do.
func TestPromoteRefusals(t *testing.T) {
	f := newFixture(t, nil)
	r := f.release(spec{message: "refusals"})
	_, err := f.p.Promote(f.ctx, r.ID, "staging", ann)
	refused(t, err, Conflict, "has not succeeded in dev", "promote it to dev first")
	_, err = f.p.Promote(f.ctx, r.ID, "qa", ann)
	refused(t, err, Invalid, `environment "qa" is not configured`, "dev, prod, staging")
	_, err = f.p.Promote(f.ctx, "sha256:"+strings.Repeat("0", 64), "dev", ann)
	refused(t, err, Invalid, "not known to ferry")
	_, err = f.p.Promote(f.ctx, r.ID, "dev", Identity{})
	refused(t, err, Invalid, "no actor")

	f.pipelineDeploy(r)
	f.wait(f.promotion(r, "staging").ID, StatusSucceeded)
	_, err = f.p.Promote(f.ctx, r.ID, "staging", ann)
	refused(t, err, Conflict, "staging runs release "+store.Short(r.ID)+" already")
	_, err = f.p.Promote(f.ctx, r.ID, "prod", ann)
	refused(t, err, Conflict, "brings release "+store.Short(r.ID)+" to prod already")
}

// TestDeployedOverVerification: a pipeline run deploys to dev while the
// release before is still soaking there: that verification ends
// (superseded), the new release is verified, and only it moves on.
func TestDeployedOverVerification(t *testing.T) {
	f := newFixture(t, nil)
	pipeline := `spec:
  stages:
  - {name: dev, auto: true, soak: 30s, verify: [{http: {path: /hello}}]}
  - {name: staging, auto: true}
`
	r1 := f.release(spec{message: "over 1", pipeline: pipeline})
	r2 := f.release(spec{message: "over 2", pipeline: "spec:\n  stages:\n  - {name: dev, auto: true}\n  - {name: staging, auto: true}\n"})
	a1 := must[*build.Release](t)(build.PullRelease(f.ctx, r1.Ref))
	dev, _ := f.target("dev")
	check(t, dev.Apply(f.ctx, a1))
	must[store.Deployment](t)(f.st.RecordDeployment(f.ctx, store.Deployment{Environment: "dev", Release: r1.ID, Actor: Actor, RunID: 9001, Status: store.DeploymentSucceeded}))
	check(t, f.p.Deployed(f.ctx, 9001, r1.ID, "dev"))
	p1 := f.promotion(r1, "dev")
	f.eventually("r1 to soak in dev", func() bool {
		d := must[store.Deployment](t)(f.st.GetDeployment(f.ctx, p1.Deployment))
		return d.Verification == store.VerificationPending && f.answer("dev", "/hello") == "over 1"
	}, func() string { return "" })

	p2 := f.pipelineDeploy(r2)
	if p2.Status != StatusSucceeded {
		t.Fatalf("r2 in dev: %+v", p2)
	}
	p1 = must[store.Promotion](t)(f.st.GetPromotion(f.ctx, p1.ID))
	if p1.Status != StatusSuperseded || !strings.Contains(p1.Reason, "deployed release "+store.Short(r2.ID)+" over it") {
		t.Errorf("r1 in dev: %+v", p1)
	}
	f.wait(f.promotion(r2, "staging").ID, StatusSucceeded)
	if ps := f.promotions(r1, "staging"); len(ps) != 0 {
		t.Errorf("r1 went on to staging: %+v", ps)
	}
	f.answers("staging", "over 2")
}

// TestCarryOnNeverGoesBack: a release carried on by itself to staging,
// where a newer commit of its branch runs already, is not deployed there:
// its promotion ends superseded, saying which commit staging runs.
func TestCarryOnNeverGoesBack(t *testing.T) {
	older, newer := spec{message: "hello from the older commit"}, spec{message: "hello from the newer commit"}
	f := newFixture(t, func(c *Config) {
		c.IsAncestor = func(_ context.Context, source, ancestor, descendant string) (bool, error) {
			return source == "demo" && (ancestor == descendant || ancestor == older.commit() && descendant == newer.commit()), nil
		}
	})
	r1, r2 := f.release(older), f.release(newer)
	f.pipelineDeploy(r2)
	f.wait(f.promotion(r2, "staging").ID, StatusSucceeded)

	if dev := f.pipelineDeploy(r1); dev.Status != StatusSucceeded {
		t.Fatalf("dev: %+v", dev)
	}
	staging := f.wait(f.promotion(r1, "staging").ID, StatusSuperseded, StatusSucceeded, StatusFailed)
	want := fmt.Sprintf("staging already runs %s (newer); release %s's commit %s is older", store.Short(newer.commit()), store.Short(r1.ID), store.Short(older.commit()))
	if staging.Status != StatusSuperseded || staging.Reason != want {
		t.Fatalf("staging: %s %q; want superseded: %q", staging.Status, staging.Reason, want)
	}
	f.answers("staging", "hello from the newer commit")
	if env := f.env("staging"); env.Release != r2.ID {
		t.Errorf("staging runs %s; want %s", env.Release, r2.ID)
	}
}
