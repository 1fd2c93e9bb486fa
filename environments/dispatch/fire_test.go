package dispatch

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrycd/ferry/environments"
)

// TestFire sends a CronTrigger's event as `ferry fire` does: the function
// gets it in binary mode with the data compacted, and its answer comes
// back, 2xx or not.
func TestFire(t *testing.T) {
	t.Parallel()
	fn := newTriggerRecorder(t)
	fn.status = func(n int) int {
		return map[bool]int{true: http.StatusOK, false: http.StatusInternalServerError}[n == 1]
	}
	f := Firing{URL: fn.srv.URL, Type: CronEventType, Source: "/ferry/prod/cron/nightly", Data: []byte(`{"full": true}`)}
	for i, want := range []int{http.StatusOK, http.StatusInternalServerError} {
		code, _, err := Fire(t.Context(), f)
		if err != nil || code != want {
			t.Fatalf("fire %d: %d %v, want %d", i, code, err, want)
		}
	}
	calls := fn.got()
	if len(calls) != 2 {
		t.Fatalf("%d calls, want 2", len(calls))
	}
	c := calls[0]
	for h, want := range map[string]string{"ce-specversion": "1.0", "ce-type": CronEventType, "ce-source": "/ferry/prod/cron/nightly"} {
		if c.ce[h] != want {
			t.Errorf("%s = %q, want %q", h, c.ce[h], want)
		}
	}
	if _, err := time.Parse(time.RFC3339Nano, c.ce["ce-time"]); err != nil || c.ce["ce-id"] == "" || c.ce["ce-id"] == calls[1].ce["ce-id"] {
		t.Errorf("ce-time %q (%v), ce-id %q then %q: want a time and a new id each time", c.ce["ce-time"], err, c.ce["ce-id"], calls[1].ce["ce-id"])
	}
	if c.body != `{"full":true}` || c.contentType != "application/json" || c.ce["bad-request"] != "" {
		t.Errorf("body %q as %q (%s), want the data compacted as application/json in a POST /", c.body, c.contentType, c.ce["bad-request"])
	}

	if _, _, err := Fire(t.Context(), Firing{URL: fn.srv.URL, Type: "t", Source: "s", Data: []byte("{")}); err == nil || !strings.Contains(err.Error(), "not JSON") {
		t.Errorf("data that is not JSON: %v", err)
	}
}

// TestHTTPInvokerBounds: a redirect is the function's answer, not followed;
// a function slower than its timeout is a failed call that says so; a
// function the plan lacks is an error.
func TestHTTPInvokerBounds(t *testing.T) {
	t.Parallel()
	var reached atomic.Int32
	inside := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached.Add(1) }))
	t.Cleanup(inside.Close)
	redirecting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, inside.URL+"/admin", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(redirecting.Close)
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-release }))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(release) })

	inv := NewHTTPInvoker(map[string]string{"redirecting": redirecting.URL, "slow": slow.URL},
		map[string]time.Duration{"slow": 50 * time.Millisecond})
	ev := &environments.Event{ID: "1", Type: "t", Source: "/s"}
	code, _, err := inv.Invoke(t.Context(), "redirecting", ev)
	if err != nil || code != http.StatusTemporaryRedirect || reached.Load() != 0 {
		t.Errorf("a redirecting function: %d %v, followed %d times; want its 307, not followed", code, err, reached.Load())
	}
	if _, _, err := inv.Invoke(t.Context(), "slow", ev); err == nil || !strings.Contains(err.Error(), "did not answer within 50ms") {
		t.Errorf("a function past its timeout: %v", err)
	}
	if _, _, err := inv.Invoke(t.Context(), "gone", ev); err == nil || !strings.Contains(err.Error(), "function gone has no URL") {
		t.Errorf("a function not in the plan: %v", err)
	}
}
