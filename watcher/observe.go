package watcher

import (
	"context"
	"errors"
	"time"

	"github.com/ferrycd/ferry/internal/gitauth"
	"github.com/ferrycd/ferry/store"
)

// timedFetch is fetchAndRecord, told to Config.OnFetch with the time it
// took.
func (w *watcher) timedFetch(ctx context.Context, s *source, src store.Source, rem *gitauth.Remote, last string) (string, error) {
	began := time.Now()
	head, err := w.fetchAndRecord(ctx, s, src, rem, last)
	// why: a context cancelled (not timed out) is Run stopping, which is
	// no fetch of the source's, good or bad.
	if w.cfg.OnFetch != nil && !errors.Is(ctx.Err(), context.Canceled) {
		w.cfg.OnFetch(src.Name, time.Since(began), err)
	}
	return head, err
}
