package promote

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ferrycd/ferry/store"
)

// heard collects the promoter's events.
type heard struct {
	mu  sync.Mutex
	evs []Event
}

func (h *heard) Outcome(ev Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.evs = append(h.evs, ev)
}

func (h *heard) kinds(env string) []EventKind {
	h.mu.Lock()
	defer h.mu.Unlock()
	var ks []EventKind
	for _, ev := range h.evs {
		if ev.Environment == env {
			ks = append(ks, ev.Kind)
		}
	}
	return ks
}

func (h *heard) find(kind EventKind, env string) (Event, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, ev := range h.evs {
		if ev.Kind == kind && ev.Environment == env {
			return ev, true
		}
	}
	return Event{}, false
}

// TestEvents: each outcome of a release's way to prod is told once, in
// order, naming the environment, the release and who acted.
func TestEvents(t *testing.T) {
	h := &heard{}
	f := newFixture(t, func(c *Config) { c.Events = h })
	rel := f.release(spec{message: "tell me", pipeline: approvalPipeline})
	f.pipelineDeploy(rel)
	p := f.promotion(rel, "prod")
	w, ok := h.find(EventWaiting, "prod")
	if !ok || w.Approvals != 2 || w.Release != rel.ID || w.Promotion != p.ID {
		t.Fatalf("waiting in prod: %+v (heard %v)", w, h.kinds("prod"))
	}
	if _, ok := h.find(EventVerified, "dev"); !ok {
		t.Errorf("dev's verification was not told: %v", h.kinds("dev"))
	}
	check(t, f.p.Freeze(f.ctx, "prod", "audit week", ann))
	check(t, f.p.Unfreeze(f.ctx, "prod", ann))
	must[store.Promotion](t)(f.p.Approve(f.ctx, p.ID, ann, "fine"))
	must[store.Promotion](t)(f.p.Approve(f.ctx, p.ID, bob, ""))
	f.wait(p.ID, StatusSucceeded)
	want := []EventKind{EventWaiting, EventFrozen, EventUnfrozen, EventApproved, EventApproved, EventDeploying, EventDeployed, EventVerified}
	// why wait: an outcome is told just after the store records it, so
	// the promotion may read succeeded before its last event is heard.
	for deadline := time.Now().Add(30 * time.Second); len(h.kinds("prod")) < len(want) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if got := h.kinds("prod"); !slices.Equal(got, want) {
		t.Errorf("prod's events: %q, want %q", got, want)
	}
	if a, _ := h.find(EventApproved, "prod"); a.Actor != "ann" || a.Reason != "fine" {
		t.Errorf("the first approval: %+v", a)
	}
	if fr, _ := h.find(EventFrozen, "prod"); fr.Actor != "ann" || fr.Reason != "audit week" {
		t.Errorf("the freeze: %+v", fr)
	}
}
