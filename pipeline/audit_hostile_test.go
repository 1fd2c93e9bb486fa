package pipeline_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
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
			stopped := make(chan struct{})
			var once sync.Once
			cfg := f.config()
			cfg.Store = flaky
			cfg.StoreRetry = 300 * time.Millisecond
			cfg.Log = func(format string, args ...any) {
				line := fmt.Sprintf(format, args...)
				t.Log("ferry: " + line)
				if strings.Contains(line, " stops: ") {
					once.Do(func() { close(stopped) })
				}
			}
			ex, _ := f.start(cfg)
			queued, err := ex.Enqueue(context.Background(), "demo", "main", commit)
			if err != nil {
				t.Fatal(err)
			}
			select {
			case <-stopped:
			case <-time.After(2 * time.Minute):
				t.Fatal("the run did not stop for the store")
			}
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
