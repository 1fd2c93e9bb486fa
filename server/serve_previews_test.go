package server

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ferrycd/ferry/promote/preview"
	"github.com/ferrycd/ferry/store"
)

// The watcher tells a polled request holding the source's mirror lock,
// while a webhook's handling of the same request may hold the request's
// lock and wait for that mirror (FetchPull). So OnPull must return at
// once, whatever the manager is waiting for; the events are then handled
// in the order told.
func TestPolledPullDoesNotWaitForTheManager(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "ferry.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	release := make(chan struct{})
	var mu sync.Mutex
	var enqueued []string
	done := make(chan struct{}, 10)
	m, err := preview.New(preview.Config{
		Store: st,
		Enabled: func(ctx context.Context, source string) (bool, time.Duration, error) {
			<-release // a webhook's handling holds the request, say
			return true, time.Hour, nil
		},
		Fetch: func(ctx context.Context, source string, n int) (string, bool, error) { return "", true, nil },
		Enqueue: func(ctx context.Context, source string, n int, commit string) error {
			mu.Lock()
			enqueued = append(enqueued, commit)
			mu.Unlock()
			done <- struct{}{}
			return nil
		},
		Make:   func(ctx context.Context, env string) error { return nil },
		Remove: func(ctx context.Context, env, reason string) error { return nil },
		Forks:  true,
	})
	if err != nil {
		t.Fatal(err)
	}
	p := &previews{m: m, st: st, ctx: ctx, log: t.Logf, pulls: map[string]bool{}, wake: make(chan struct{}, 1)}
	go p.drain()

	told := make(chan struct{})
	go func() {
		p.handle(store.PullEvent{Source: "app", Number: 1, Action: store.PullOpened, Commit: "c1"})
		p.handle(store.PullEvent{Source: "app", Number: 1, Action: store.PullUpdated, Commit: "c2"})
		close(told)
	}()
	select {
	case <-told:
	case <-time.After(30 * time.Second): // only to catch the hang
		t.Fatal("OnPull waited for the manager: the watcher's mirror lock would be held meanwhile")
	}
	close(release)
	for range 2 {
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("the queued events were not handled")
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(enqueued) != 2 || enqueued[0] != "c1" || enqueued[1] != "c2" {
		t.Errorf("heads queued %q; want c1 then c2, in the order told", enqueued)
	}
}
