package promote

import (
	"strings"
	"testing"
	"time"

	"github.com/ferrycd/ferry/store"
)

func TestFreeze(t *testing.T) {
	f := newFixture(t, nil)
	r1 := f.release(spec{message: "freeze 1"})
	r2 := f.release(spec{message: "freeze 2"})

	refused(t, f.p.Freeze(f.ctx, "staging", " ", ann), Invalid, "give a reason")
	check(t, f.p.Freeze(f.ctx, "staging", "release party", ann))
	f.pipelineDeploy(r1)
	_, err := f.p.Promote(f.ctx, r1.ID, "staging", bob)
	refused(t, err, Conflict, "staging is frozen by ann", "release party")

	// An automatic promotion waits, pending, saying why; a newer release
	// supersedes it while it waits.
	auto1 := f.promotion(r1, "staging")
	f.pipelineDeploy(r2)
	auto2 := f.promotion(r2, "staging")
	if auto2.Status != StatusPending || !strings.Contains(auto2.Reason, "waiting: staging is frozen by ann") {
		t.Fatalf("automatic promotion into a frozen stage: %+v", auto2)
	}
	if got := must[store.Promotion](t)(f.st.GetPromotion(f.ctx, auto1.ID)); got.Status != StatusSuperseded {
		t.Errorf("the older waiting promotion: %+v", got)
	}
	if e := f.env("staging"); !e.Frozen || e.FreezeReason != "release party" || e.FrozenBy != "ann" || e.FrozenAt.IsZero() {
		t.Errorf("staging: %+v", e)
	}

	check(t, f.p.Unfreeze(f.ctx, "staging", ann))
	f.wait(auto2.ID, StatusSucceeded)
	f.answers("staging", "freeze 2")
	refused(t, f.p.Unfreeze(f.ctx, "staging", ann), Conflict, "staging is not frozen")

	var actions []string
	for _, e := range must[[]store.Event](t)(f.st.ListEvents(f.ctx, "env/staging", store.Page{})) {
		actions = append(actions, e.Actor+" "+e.Action+": "+e.Detail)
	}
	if !contains(actions, "ann freeze: release party") || !contains(actions, "ann unfreeze: was frozen by ann: release party") {
		t.Errorf("the audit log of staging: %q", actions)
	}
}

// TestFreezeWindow: a cron window of the configuration freezes prod at
// weekends; Unfreeze cannot end it.
func TestFreezeWindow(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.Environments[2].Freeze = []FreezeWindow{{Schedule: "0 18 * * 5", Duration: 62 * time.Hour, TimeZone: "Europe/Paris", Reason: "weekend"}}
		// why: the operator opens prod (no approval floor): this test is
		// about the window, and its prod takes releases when asked.
		c.Environments[2].Floor = &Floor{}
	})
	r := f.release(spec{message: "window", pipeline: "spec:\n  stages:\n  - {name: dev, auto: true}\n  - {name: prod, from: [dev]}\n"})
	f.pipelineDeploy(r)

	paris := must[*time.Location](t)(time.LoadLocation("Europe/Paris"))
	f.clock.set(time.Date(2031, 3, 8, 12, 0, 0, 0, paris)) // a Saturday
	_, err := f.p.Promote(f.ctx, r.ID, "prod", ann)
	refused(t, err, Conflict, `prod is in its freeze window "weekend"`, "0 18 * * 5", "until 2031-03-10T07:00:00Z")
	refused(t, f.p.Unfreeze(f.ctx, "prod", ann), Conflict, "ferry serve's configuration")
	// A repository whose first stage is prod: its new release waits for
	// the window's end, and then goes in by itself.
	first := f.release(spec{message: "window first", pipeline: "spec:\n  stages:\n  - {name: prod, auto: true}\n"})
	refused(t, Promoter(f.p).(Admitter).Admit(f.ctx, runs.Add(1), first.ID, "prod"), Conflict, `prod is in its freeze window "weekend"`, "waits for it")
	waiting := f.promotion(first, "prod")

	f.clock.set(time.Date(2031, 3, 10, 8, 30, 0, 0, paris)) // Monday morning
	f.wait(waiting.ID, StatusSucceeded)
	f.answers("prod", "window first")
	p := must[store.Promotion](t)(f.p.Promote(f.ctx, r.ID, "prod", ann))
	f.wait(p.ID, StatusSucceeded)
	f.answers("prod", "window")
}

func TestWindows(t *testing.T) {
	ws, err := parseWindows(Environment{Name: "prod", Freeze: []FreezeWindow{
		{Schedule: "0 18 * * 5", Duration: 62 * time.Hour},
		{Schedule: "@daily", Duration: time.Hour, TimeZone: "America/New_York"},
	}})
	check(t, err)
	for _, c := range []struct {
		at     time.Time
		window int // -1: none
		end    time.Time
	}{
		{time.Date(2031, 3, 7, 17, 59, 59, 0, time.UTC), -1, time.Time{}},
		{time.Date(2031, 3, 7, 18, 0, 0, 0, time.UTC), 0, time.Date(2031, 3, 10, 8, 0, 0, 0, time.UTC)},
		{time.Date(2031, 3, 9, 23, 0, 0, 0, time.UTC), 0, time.Date(2031, 3, 10, 8, 0, 0, 0, time.UTC)},
		{time.Date(2031, 3, 10, 8, 0, 0, 0, time.UTC), -1, time.Time{}},
		// Midnight in New York is 04:00 UTC in summer time.
		{time.Date(2031, 6, 3, 4, 30, 0, 0, time.UTC), 1, time.Date(2031, 6, 3, 5, 0, 0, 0, time.UTC)},
		{time.Date(2031, 6, 3, 0, 30, 0, 0, time.UTC), -1, time.Time{}},
	} {
		got := -1
		var end time.Time
		for i, w := range ws {
			if e, ok := w.covers(c.at); ok {
				got, end = i, e
				break
			}
		}
		if got != c.window || !end.Equal(c.end) {
			t.Errorf("at %s: window %d until %s, want %d until %s", c.at, got, end, c.window, c.end)
		}
	}
	for _, bad := range []FreezeWindow{
		{Schedule: "0 18 * *", Duration: time.Hour},
		{Schedule: "@every 1h", Duration: time.Hour},
		{Schedule: "0 18 * * 5"},
		{Schedule: "0 18 * * 5", Duration: time.Hour, TimeZone: "Mars/Olympus"},
	} {
		if _, err := parseWindows(Environment{Name: "prod", Freeze: []FreezeWindow{bad}}); err == nil || !strings.Contains(err.Error(), "environment prod: freeze window 1") {
			t.Errorf("%+v: got %v, want an error naming the window", bad, err)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestAdmit: the pipeline's question before it deploys to the first
// stage. A frozen or held first stage keeps the release out, and records
// a promotion that waits; a newer release supersedes it; the end of the
// freeze, or Resume, deploys the newest release.
func TestAdmit(t *testing.T) {
	f := newFixture(t, nil)
	a := Promoter(f.p).(Admitter)
	r1 := f.release(spec{message: "admit 1"})
	r2 := f.release(spec{message: "admit 2"})
	r3 := f.release(spec{message: "admit 3"})
	check(t, a.Admit(f.ctx, runs.Add(1), r1.ID, "dev"))
	if ps := f.promotions(r1, "dev"); len(ps) != 0 {
		t.Errorf("an open stage recorded promotions: %+v", ps)
	}

	check(t, f.p.Freeze(f.ctx, "dev", "migration", ann))
	run := runs.Add(1)
	refused(t, a.Admit(f.ctx, run, r1.ID, "dev"), Conflict, "waiting: dev is frozen by ann", "migration", "waits for it")
	// Asked again for the same run (a restart), nothing new is recorded.
	refused(t, a.Admit(f.ctx, run, r1.ID, "dev"), Conflict, "migration")
	waiting1 := f.promotion(r1, "dev")
	if n := len(f.promotions(r1, "dev")); n != 1 || waiting1.Status != StatusPending || waiting1.RunID != run {
		t.Fatalf("%d promotions; the waiting one: %+v", n, waiting1)
	}
	refused(t, a.Admit(f.ctx, runs.Add(1), r2.ID, "dev"), Conflict, "migration")
	if got := must[store.Promotion](t)(f.st.GetPromotion(f.ctx, waiting1.ID)); got.Status != StatusSuperseded {
		t.Errorf("the older waiting promotion: %+v", got)
	}
	check(t, f.p.Unfreeze(f.ctx, "dev", ann))
	f.wait(f.promotion(r2, "dev").ID, StatusSucceeded)
	f.answers("dev", "admit 2")

	// Held after a manual rollback: the next commit waits for Resume.
	check(t, f.st.HoldEnvironment(f.ctx, "dev", true, "ann rolled it back"))
	refused(t, a.Admit(f.ctx, runs.Add(1), r3.ID, "dev"), Conflict, "dev is held (ann rolled it back)", "ferry resume dev")
	waiting3 := f.promotion(r3, "dev")
	f.answers("dev", "admit 2")
	if got := must[store.Promotion](t)(f.st.GetPromotion(f.ctx, waiting3.ID)); got.Status != StatusPending {
		t.Fatalf("the promotion waiting for the hold: %+v", got)
	}
	check(t, f.p.Resume(f.ctx, "dev", ann))
	f.wait(waiting3.ID, StatusSucceeded)
	f.answers("dev", "admit 3")

	// A release that waited must not go in after a newer one that the
	// pipeline deploys once the stage is open. (Run is stopped, so that
	// it does not take the waiting one first.)
	f.stop()
	check(t, f.p.Freeze(f.ctx, "dev", "again", ann))
	refused(t, a.Admit(f.ctx, runs.Add(1), r1.ID, "dev"), Conflict, "again")
	var waiting store.Promotion
	for _, p := range f.promotions(r1, "dev") {
		if p.Status == StatusPending {
			waiting = p
		}
	}
	check(t, f.p.Unfreeze(f.ctx, "dev", ann))
	check(t, a.Admit(f.ctx, runs.Add(1), r2.ID, "dev"))
	if got := must[store.Promotion](t)(f.st.GetPromotion(f.ctx, waiting.ID)); got.Status != StatusSuperseded || !strings.Contains(got.Reason, "newer release") {
		t.Errorf("the older release that waited, once a newer one is admitted: %+v", got)
	}
}

// TestAdmitRefusesAGatedFirstStage: a Pipeline whose first stage is prod
// would put every commit into prod with no approval; the default floor
// refuses it, and the refusal is recorded.
func TestAdmitRefusesAGatedFirstStage(t *testing.T) {
	f := newFixture(t, nil)
	a := Promoter(f.p).(Admitter)
	r := f.release(spec{message: "straight to prod", pipeline: "spec:\n  stages:\n  - {name: prod, auto: true}\n"})
	run := runs.Add(1)
	refused(t, a.Admit(f.ctx, run, r.ID, "prod"), Forbidden, "environments[prod].approval.required is 1", "first stage", "never loosen")
	refused(t, a.Admit(f.ctx, run, r.ID, "prod"), Forbidden, "environments[prod].approval.required is 1")
	ps := f.promotions(r, "prod")
	if len(ps) != 1 || ps[0].Status != StatusRefused || !strings.Contains(ps[0].Reason, "environments[prod]") {
		t.Fatalf("promotions into prod: %+v", ps)
	}
}
