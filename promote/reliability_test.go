package promote

import (
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrycd/ferry/store"
)

// TestConcurrentCalls makes 50 calls at once, mixing Promote, Approve
// (by several identities, some not allowed), Reject and Rollback on a
// three-stage pipeline, then reads the history: it is one consistent
// chain per environment, what runs is what it says, and no deployment
// into prod came in without two valid approvals, except rollbacks to a
// release prod ran before.
func TestConcurrentCalls(t *testing.T) {
	f := newFixture(t, nil)
	const pipeline = `spec:
  stages:
  - {name: dev, auto: true}
  - {name: staging, auto: true}
  - name: prod
    approval: {required: 2, approvers: [ann, bob, carol, dave]}
`
	messages := map[string]string{}
	var rels []store.Release
	for _, m := range []string{"cc 1", "cc 2", "cc 3", "cc 4"} {
		r := f.release(spec{message: m, pipeline: pipeline})
		messages[r.ID] = m
		rels = append(rels, r)
		f.pipelineDeploy(r)
		f.wait(f.promotion(r, "staging").ID, StatusSucceeded)
		if len(rels) == 1 {
			first := f.promotion(r, "prod")
			must[store.Promotion](t)(f.p.Approve(f.ctx, first.ID, ann, ""))
			must[store.Promotion](t)(f.p.Approve(f.ctx, first.ID, bob, ""))
			f.wait(first.ID, StatusSucceeded)
		}
	}
	// cc 1 is in prod; cc 4 waits there (automatic), cc 2 and 3 too (asked for).
	must[store.Promotion](t)(f.p.Promote(f.ctx, rels[1].ID, "prod", eve))
	must[store.Promotion](t)(f.p.Promote(f.ctx, rels[2].ID, "prod", ann))

	people := []Identity{ann, bob, carol, dave, eve, {Name: "mallory"}}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		done  = map[string]int{}
		fails []error
		start = make(chan struct{})
	)
	for i := range 50 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(i), 42))
			pick := func(n int) int { return rng.IntN(n) }
			who := people[pick(len(people))]
			env := []string{"staging", "prod"}[pick(2)]
			pending := func() (int64, bool) {
				ps, err := f.st.FindPromotions(f.ctx, store.PromotionQuery{Environment: "prod", Statuses: []string{StatusPending}})
				if err != nil || len(ps) == 0 {
					return 0, false
				}
				return ps[pick(len(ps))].ID, true
			}
			<-start
			// why: spread over 300 ms, the calls meet promotions at every
			// step (pending, deploying, verifying), not only the first.
			time.Sleep(time.Duration(pick(300)) * time.Millisecond)
			var op string
			var err error
			switch i % 12 {
			case 0, 1:
				op = "promote"
				_, err = f.p.Promote(f.ctx, rels[pick(len(rels))].ID, env, who)
			case 2, 3, 4, 5, 6, 7, 8:
				op = "approve"
				if id, ok := pending(); ok {
					_, err = f.p.Approve(f.ctx, id, who, "")
				} else {
					op = "approve (none pending)"
				}
			case 9:
				op = "reject"
				if id, ok := pending(); ok && pick(2) == 0 {
					_, err = f.p.Reject(f.ctx, id, people[pick(2)], "")
				} else {
					op = "reject (none)"
				}
			case 10, 11:
				op = "rollback"
				to := RollbackTarget{}
				if pick(2) == 0 {
					to.Release = rels[pick(len(rels))].ID
				}
				_, err = f.p.Rollback(f.ctx, env, to, Identity{Name: "ops"})
			}
			var refusal *Error
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				done[op]++
			case errors.As(err, &refusal):
				done[op+" refused"]++
			default:
				fails = append(fails, err)
			}
		})
	}
	close(start)
	wg.Wait()
	t.Logf("calls: %v", done)
	for _, err := range fails {
		t.Errorf("a call failed: %v", err)
	}

	// Wait until nothing runs or can run: every approved promotion left
	// waits for something (a hold).
	quiet := func() bool {
		ps := must[[]store.Promotion](t)(f.st.FindPromotions(f.ctx, store.PromotionQuery{Statuses: []string{StatusApproved, StatusDeploying, StatusVerifying}}))
		for _, p := range ps {
			if p.Status != StatusApproved || !strings.HasPrefix(p.Reason, "waiting:") {
				return false
			}
		}
		return true
	}
	f.eventually("the promotions to settle", func() bool {
		if !quiet() {
			return false
		}
		time.Sleep(300 * time.Millisecond)
		return quiet()
	}, func() string { return "" })

	allowed := []string{"ann", "bob", "carol", "dave"}
	for _, env := range []string{"staging", "prod"} {
		live := ""
		var ran []string
		for _, d := range f.deployments(env) {
			if d.Status == store.DeploymentFailed {
				continue
			}
			if d.Previous != live {
				t.Errorf("%s: deployment %d replaced %s, but %s was live", env, d.ID, store.Short(d.Previous), store.Short(live))
			}
			switch d.Kind {
			case "":
				p := must[store.Promotion](t)(f.st.GetPromotion(f.ctx, d.Promotion))
				if p.Release != d.Release || p.Environment != env {
					t.Errorf("%s: deployment %d of %s by promotion %+v", env, d.ID, store.Short(d.Release), p)
				}
				if env == "staging" {
					if ok := must[bool](t)(f.p.succeededIn(f.ctx, d.Release, "dev")); !ok {
						t.Errorf("staging: deployment %d of %s, which never succeeded in dev", d.ID, store.Short(d.Release))
					}
					break
				}
				var yes []string
				for _, a := range must[[]store.Approval](t)(f.st.ListApprovals(f.ctx, p.ID)) {
					switch {
					case a.At.After(d.At):
					case !a.Approve:
						t.Errorf("prod: deployment %d by promotion %d, which %s had rejected", d.ID, p.ID, a.Actor)
					case slices.Contains(allowed, a.Actor) && a.Actor != p.Requester && !slices.Contains(yes, a.Actor):
						yes = append(yes, a.Actor)
					}
				}
				if len(yes) < 2 {
					t.Errorf("prod: deployment %d by promotion %d (asked for by %s) had valid approvals from %v only", d.ID, p.ID, p.Requester, yes)
				}
			case store.DeploymentRollback, store.DeploymentAutoRollback:
				if env == "prod" && !slices.Contains(ran, d.Release) {
					t.Errorf("prod: rollback %d to %s, which prod never ran before", d.ID, store.Short(d.Release))
				}
			default:
				t.Errorf("%s: deployment %d of kind %q", env, d.ID, d.Kind)
			}
			live = d.Release
			ran = append(ran, d.Release)
		}
		if e := f.env(env); e.Release != live {
			t.Errorf("%s: the store says it runs %s, its history %s", env, store.Short(e.Release), store.Short(live))
		}
		st := must[*statusOf](t)(must[*envTarget](t)(f.targetOf(env)).status(f.ctx))
		if st.release != live {
			t.Errorf("%s runs %s, its history says %s", env, store.Short(st.release), store.Short(live))
		}
		f.answers(env, messages[live])
		t.Logf("%s: %d deployments, runs %q", env, len(ran), messages[live])
	}
}

// TestCrashDuringVerification stops ferry while a promotion soaks: after
// the restart (new processes, a new gateway) it is verified again and
// succeeds, with one deployment.
func TestCrashDuringVerification(t *testing.T) {
	f := newFixture(t, nil)
	pipeline := `spec:
  stages:
  - {name: dev, auto: true}
  - {name: staging, auto: true, soak: 2s, verify: [{http: {path: /hello, bodyContains: "crash"}}]}
`
	r := f.release(spec{message: "crash 1", pipeline: pipeline})
	f.pipelineDeploy(r)
	p := f.wait(f.promotion(r, "staging").ID, StatusVerifying)
	time.Sleep(300 * time.Millisecond)
	f.restart()
	if got := must[store.Promotion](t)(f.st.GetPromotion(f.ctx, p.ID)); got.Status != StatusVerifying && got.Status != StatusSucceeded {
		t.Fatalf("after the crash: %+v", got)
	}
	p = f.wait(p.ID, StatusSucceeded, StatusRolledBack, StatusFailed)
	if p.Status != StatusSucceeded {
		t.Fatalf("after the restart: %+v", p)
	}
	f.answers("staging", "crash 1")
	d := f.deployments("staging")
	if len(d) != 1 || d[0].Promotion != p.ID || d[0].Verification != store.VerificationPassed {
		t.Errorf("staging's history: %+v", d)
	}
}

// TestCrashWhileDeploying: a promotion ferry died deploying is deployed
// again at the start, verified, and (its checks failing) rolled back; one
// whose failed verification was recorded before the crash is rolled back
// without verifying again.
func TestCrashWhileDeploying(t *testing.T) {
	f := newFixture(t, nil)
	pipeline := `spec:
  stages:
  - {name: dev, auto: true}
  - {name: staging, auto: true, verify: [{name: greets, http: {path: /hello, bodyContains: "hello from"}}]}
`
	good := f.release(spec{message: "hello from before the crash", pipeline: pipeline})
	bad := f.release(spec{message: "goodbye", pipeline: pipeline})
	f.pipelineDeploy(good)
	f.wait(f.promotion(good, "staging").ID, StatusSucceeded)

	f.stop()
	p := must[store.Promotion](t)(f.st.CreatePromotion(f.ctx, store.Promotion{Release: bad.ID, Environment: "staging", Status: StatusDeploying, Requester: "ann", Pinned: true}))
	f.restart()
	p = f.wait(p.ID, StatusRolledBack, StatusSucceeded, StatusFailed)
	if p.Status != StatusRolledBack || !strings.Contains(p.Reason, `check "greets" failed`) {
		t.Fatalf("after the restart: %+v", p)
	}
	f.answers("staging", "hello from before the crash")

	// Crashed after recording the failed verification, before rolling
	// back: the rollback goes on; bad is not applied again.
	f.stop()
	d := must[store.Deployment](t)(f.st.RecordDeployment(f.ctx, store.Deployment{Environment: "staging", Release: bad.ID, Actor: "ann",
		Status: store.DeploymentSucceeded, Verification: store.VerificationFailed, Reason: `check "greets" failed: recorded before the crash`}))
	q := must[store.Promotion](t)(f.st.CreatePromotion(f.ctx, store.Promotion{Release: bad.ID, Environment: "staging", Status: StatusVerifying, Requester: "ann", Deployment: d.ID}))
	f.restart()
	q = f.wait(q.ID, StatusRolledBack, StatusSucceeded, StatusFailed)
	if q.Status != StatusRolledBack || !strings.Contains(q.Reason, "recorded before the crash") {
		t.Fatalf("after the second restart: %+v", q)
	}
	f.answers("staging", "hello from before the crash")
	hist := f.deployments("staging")
	last := hist[len(hist)-1]
	if last.Kind != store.DeploymentAutoRollback || last.Release != good.ID || last.Promotion != q.ID {
		t.Errorf("the last deployment: %+v", last)
	}
	if got := must[store.Deployment](t)(f.st.GetDeployment(f.ctx, d.ID)); got.Status != store.DeploymentRolledBack {
		t.Errorf("the failed deployment: %+v", got)
	}
}
