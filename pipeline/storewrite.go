package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ferrycd/ferry/store"
)

// Back-off between tries of a write the store refused: a full disk is
// freed in seconds or minutes, so the first tries come quickly and the
// later ones no more often than every five seconds.
const (
	writeBackoffMin = 100 * time.Millisecond
	writeBackoffMax = 5 * time.Second
)

// storeError is a write the store refused for longer than
// Config.StoreRetry: the run cannot go on, and fails for it (not on its
// own merits) once the store takes that record.
type storeError struct {
	what string // what could not be written
	err  error  // the store's last error
}

// Error names what and the store's own words, once: the layers of the
// store's error name the record again.
func (e *storeError) Error() string {
	root := e.err
	for next := errors.Unwrap(root); next != nil; next = errors.Unwrap(root) {
		root = next
	}
	return fmt.Sprintf("ferry could not record %s: %v", e.what, root)
}

func (e *storeError) Unwrap() error { return e.err }

// writeRetrying calls write until it succeeds, waiting longer after each
// failure. It gives up with a *storeError once the store refused it for
// Config.StoreRetry, or with ctx's error when ctx ends first (the run
// stays as the store holds it, for the next executor). write gets a
// context that does not end with ctx: a write is never cut in half.
// The log lines name the record as subject's (a run, say) what.
func (e *embedded) writeRetrying(ctx context.Context, subject, what string, write func(context.Context) error) error {
	return e.retry(ctx, subject, what, e.cfg.StoreRetry, write)
}

// retry is writeRetrying with its bound; bound 0 tries until ctx ends.
func (e *embedded) retry(ctx context.Context, subject, what string, bound time.Duration, write func(context.Context) error) error {
	wctx := context.WithoutCancel(ctx)
	err := write(wctx)
	if err == nil || permanent(err) {
		return err
	}
	first, tries, wait := time.Now(), 1, writeBackoffMin
	e.cfg.Log("pipeline: %s: recording %s: %v; trying again with back-off", subject, what, err)
	for {
		if bound > 0 && time.Since(first) >= bound {
			return &storeError{what: what, err: err}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("recording %s: %w (stopped while trying again: %w)", what, err, ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, writeBackoffMax)
		tries++
		if err = write(wctx); err == nil {
			e.cfg.Log("pipeline: %s: recorded %s after %d tries", subject, what, tries)
			return nil
		}
		if permanent(err) {
			return err
		}
	}
}

// permanent reports whether the store refused a write for what it holds,
// not for the state of its disk: trying again gives the same answer.
func permanent(err error) bool {
	return errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict)
}

// storeReason is a run's reason when the store refused one of its writes
// for too long: the run is marked InfraFailed, so the executor runs the
// branch head again with back-off (converge.go) once the store takes it.
func storeReason(se *storeError) string {
	return se.Error() + "; free space on the data folder's disk; ferry runs the branch head again, with back-off, while it is the head"
}

// failForStore records the run failed because the store refused a write
// for too long, trying until the store takes it or ctx ends: nothing of
// the run goes on meanwhile. The step that was running is marked failed
// too, as far as the store takes it.
func (r *runner) failForStore(ctx context.Context, se *storeError) error {
	reason := storeReason(se)
	r.cfg.Log("pipeline: run %d (commit %s of %s/%s) stops: %s", r.run.ID, store.Short(r.run.Commit), r.run.Source, r.run.Branch, reason)
	r.run.Status, r.run.Ended = store.StatusFailed, time.Now()
	if r.failure != "" {
		// It failed on its own merits before; only the record was late.
		r.run.Reason = r.failure
	} else {
		r.run.Reason, r.run.InfraFailed = reason, true
	}
	run := r.run
	run.Steps = nil
	detail := fmt.Sprintf("%s/%s %s failed: %s", run.Source, run.Branch, store.Short(run.Commit), run.Reason)
	end := *r.entry("run.end", detail)
	if err := r.e.retry(ctx, r.subject(), "the run as failed", 0, func(ctx context.Context) error {
		return r.st.UpdateRun(store.WithEvent(ctx, end), run)
	}); err != nil {
		return err
	}
	if r.current.Name != "" && !r.current.Status.Done() {
		s := r.current
		s.Status, s.Reason, s.Ended = store.StatusFailed, reason, time.Now()
		if err := r.st.UpdateStep(context.WithoutCancel(ctx), s); err != nil {
			r.cfg.Log("pipeline: run %d: recording step %s as failed: %v", run.ID, s.Name, err)
		}
	}
	r.flushLogs(context.WithoutCancel(ctx))
	r.tell(Event{Kind: EventRunFinished, Step: r.current.Name, Error: firstLine(run.Reason)})
	return nil
}

// rerun makes a run that failed because ferry's infrastructure did (the
// store, the registry, the source's mirror: Run.InfraFailed) queued
// again, from its first unfinished step: the steps it did stay done; the
// one it stopped in, and those skipped after it, run again.
func (e *embedded) rerun(ctx context.Context, run store.Run) (store.Run, error) {
	again := false
	for _, s := range run.Steps {
		// why the steps after it too: they were skipped because it
		// failed, and are to do now.
		again = again || s.Status == store.StatusFailed || s.Status == store.StatusRunning
		if again && s.Status != store.StatusQueued {
			s.Status, s.Reason, s.Started, s.Ended = store.StatusQueued, "", time.Time{}, time.Time{}
			if err := e.cfg.Store.UpdateStep(ctx, s); err != nil {
				return run, fmt.Errorf("queueing step %s of run %d again: %w", s.Name, run.ID, err)
			}
		}
	}
	queued := run
	queued.Steps = nil
	queued.Status, queued.Reason, queued.InfraFailed = store.StatusQueued, "", false
	queued.Started, queued.Ended = time.Time{}, time.Time{}
	if err := e.cfg.Store.UpdateRun(ctx, queued); err != nil {
		return run, fmt.Errorf("queueing run %d again: %w", run.ID, err)
	}
	if err := e.audit(ctx, "run.rerun", run.ID, fmt.Sprintf("%s/%s %s: it failed because ferry's infrastructure did (%s)", run.Source, run.Branch, store.Short(run.Commit), run.Reason)); err != nil {
		return run, err
	}
	e.cfg.Log("pipeline: run %d (commit %s of %s/%s) runs again from its first unfinished step: it failed because ferry's infrastructure did", run.ID, store.Short(run.Commit), run.Source, run.Branch)
	return e.cfg.Store.GetRun(ctx, run.ID)
}

// subject names the run in log lines.
func (r *runner) subject() string { return fmt.Sprintf("run %d", r.run.ID) }
