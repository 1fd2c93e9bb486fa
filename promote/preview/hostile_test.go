package preview_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/ferrycd/ferry/promote/preview"
	"github.com/ferrycd/ferry/store"
)

// Fifty pull requests opened at once, some closed and reopened over and
// over while the others open: the cap holds at every moment, every
// environment made is removed or still a preview, and none is made twice.
func TestCapHoldsUnderChurn(t *testing.T) {
	const limit, requests, churned = 5, 50, 10
	w := newWorld(t)
	var mu sync.Mutex
	live, most := map[string]bool{}, 0
	var twice []string
	m := w.manager(func(c *preview.Config) {
		c.Max = limit
		c.Make = func(ctx context.Context, env string) error {
			mu.Lock()
			defer mu.Unlock()
			if live[env] {
				twice = append(twice, env)
			}
			live[env] = true
			most = max(most, len(live))
			return nil
		}
		c.Remove = func(ctx context.Context, env, _ string) error {
			mu.Lock()
			defer mu.Unlock()
			delete(live, env)
			return nil
		}
	})
	for n := 1; n <= requests; n++ {
		w.push(n, fmt.Sprintf("c%d", n))
	}
	var wg sync.WaitGroup
	errs := make(chan error, requests*10)
	for n := 1; n <= requests; n++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rounds := 1
			if n <= churned {
				rounds = 5
			}
			for r := 0; r < rounds; r++ {
				ev := hook(n, store.PullOpened)
				ev.Source = "shop"
				if _, err := m.Handle(context.Background(), ev); err != nil {
					errs <- err
				}
				if n <= churned && r < rounds-1 {
					ev.Action = store.PullClosed
					if _, err := m.Handle(context.Background(), ev); err != nil {
						errs <- err
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if most > limit {
		t.Errorf("%d previews' environments at once; the cap is %d", most, limit)
	}
	if len(twice) > 0 {
		t.Errorf("environments made again while they existed: %v", twice)
	}
	all, err := m.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	kept := map[string]bool{}
	for _, p := range all {
		if p.State != store.PreviewTornDown {
			kept[p.Environment] = true
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(kept) != len(live) || len(kept) > limit {
		t.Errorf("the store keeps %d previews, %d environments exist; want the same, at most %d", len(kept), len(live), limit)
	}
	for env := range live {
		if !kept[env] {
			t.Errorf("environment %s exists but its preview is torn down: leaked", env)
		}
	}
}
