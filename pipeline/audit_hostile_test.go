package pipeline_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ferrycd/ferry/store"
)

// The disk fills the moment the store has kept a run's release, or its
// deployment, and stays full longer than StoreRetry: the run stops. Once
// the space is back the run is queued again and ends deployed. The audit
// log is never short: every release the store holds has its
// release.create entry, every deployment by the run its deploy entry,
// whatever moment the disk filled (a kill -9 between the two writes is
// the same case).
func TestDiskFullAfterARecordLeavesNoRecordWithoutItsEntry(t *testing.T) {
	for _, after := range []string{"release", "deployment"} {
		t.Run(after, func(t *testing.T) {
			f := newFixture(t)
			commit := f.newSource("demo", nil)
			flaky := &flakyStore{SQLite: f.st}
			full := false
			flaky.setRefuse(func(op string) bool {
				// Called with flaky.mu held, before the write of op: the
				// write of `after` goes through, and every one after it
				// fails.
				if full {
					return true
				}
				full = op == after
				return false
			})
			ex, queued := runUntilStoreStops(t, f, flaky, commit)
			flaky.setRefuse(nil)
			if run := wait(t, ex, queued.ID); run.Status != store.StatusFailed {
				t.Fatalf("run %s: %s; want failed for the store", run.Status, run.Reason)
			}
			if _, err := ex.Enqueue(context.Background(), "demo", "main", commit); err != nil {
				t.Fatal(err)
			}
			if run := wait(t, ex, queued.ID); run.Status != store.StatusSucceeded {
				t.Fatalf("run again: %s: %s", run.Status, run.Reason)
			}

			count := func(action, object string) int {
				evs, err := f.st.ListEvents(context.Background(), object, store.Page{})
				if err != nil {
					t.Fatal(err)
				}
				n := 0
				for _, e := range evs {
					if e.Action == action {
						n++
					}
				}
				return n
			}
			for _, rel := range f.releases("demo") {
				if n := count("release.create", "release/"+rel.ID); n != 1 {
					t.Errorf("release %s has %d release.create entries, want 1", rel.ID, n)
				}
			}
			deployed := 0
			for _, d := range f.deployments() {
				if d.Status == store.DeploymentSucceeded {
					deployed++
				}
			}
			if n := count("deploy", "env/dev"); deployed != 1 || n != deployed {
				t.Errorf("%d deployments to dev and %d deploy entries, want one of each", deployed, n)
			}
		})
	}
}

// The disk fills the moment the store has kept a run's end, and stays
// full longer than StoreRetry. The run did deploy: it stays succeeded,
// and its run.end entry is there once the space is back.
func TestDiskFullAfterTheRunEndsKeepsItsOutcomeAndEntry(t *testing.T) {
	f := newFixture(t)
	commit := f.newSource("demo", nil)
	flaky := &flakyStore{SQLite: f.st}
	var deployed, full bool
	flaky.onStep = func(s store.Step) {
		if s.Name == "deploy" && s.Status == store.StatusSucceeded {
			flaky.mu.Lock()
			deployed = true
			flaky.mu.Unlock()
		}
	}
	flaky.setRefuse(func(op string) bool {
		if full {
			return true
		}
		// The run's last write, its end, goes through; every write after
		// it fails.
		full = deployed && op == "run"
		return false
	})
	cfg := f.config()
	cfg.Store = flaky
	cfg.StoreRetry = 300 * time.Millisecond
	cfg.Log = func(format string, args ...any) { t.Logf("ferry: "+format, args...) }
	ex, _ := f.start(cfg)
	queued, err := ex.Enqueue(context.Background(), "demo", "main", commit)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the disk to fill after the run's end", func() bool {
		flaky.mu.Lock()
		defer flaky.mu.Unlock()
		return full
	})
	// Longer than StoreRetry, so that a write retried gives up.
	time.Sleep(3 * cfg.StoreRetry)
	flaky.setRefuse(nil)
	wait(t, ex, queued.ID)
	runEnds := func() []store.Event {
		evs, err := f.st.ListEvents(context.Background(), fmt.Sprintf("run/%d", queued.ID), store.Page{})
		if err != nil {
			t.Fatal(err)
		}
		var ends []store.Event
		for _, e := range evs {
			if e.Action == "run.end" {
				ends = append(ends, e)
			}
		}
		return ends
	}
	// The run's end is recorded, or ferry records something else of it,
	// once the space is back.
	waitFor(t, "the run's run.end entry", func() bool { return len(runEnds()) > 0 })
	run, err := f.st.GetRun(context.Background(), queued.ID)
	if err != nil {
		t.Fatal(err)
	}
	if run.Status != store.StatusSucceeded {
		t.Errorf("run %s: %s; it deployed, so it succeeded", run.Status, run.Reason)
	}
	if ds := f.deployments(); len(ds) != 1 {
		t.Errorf("deployments %+v, want one", ds)
	}
	ends := runEnds()
	if len(ends) != 1 || !strings.Contains(ends[0].Detail, " succeeded") {
		t.Errorf("run.end entries %+v, want one saying the run succeeded", ends)
	}
}
