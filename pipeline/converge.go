package pipeline

import (
	"context"
	"fmt"
	"time"

	"github.com/ferrycd/ferry/store"
)

// Back-off between runs again of a branch head whose run failed because
// ferry's infrastructure did (a registry down, a full disk): soon at
// first, for a blip, then no more often than every five minutes, for an
// outage.
const (
	infraRetryMin = 5 * time.Second
	infraRetryMax = 5 * time.Minute
)

// headRetry is the back-off of one lane's head: its commit, and the wait
// before its next try.
type headRetry struct {
	commit string
	wait   time.Duration
}

// afterRun schedules the run id again, with back-off, when it failed
// because ferry's infrastructure did, so that the branch head converges
// without a restart once the registry or the disk is back.
func (e *embedded) afterRun(ctx context.Context, id int64) {
	run, err := e.cfg.Store.GetRun(context.WithoutCancel(ctx), id)
	if err != nil || !run.Status.Done() {
		return // the next start resumes it, or runs it again
	}
	key := laneKey{run.Source, run.Branch}
	if run.Status != store.StatusFailed || !run.InfraFailed {
		e.mu.Lock()
		if h := e.retries[key]; h != nil && h.commit == run.Commit {
			delete(e.retries, key)
		}
		e.mu.Unlock()
		return
	}
	e.retryLater(ctx, run)
}

// retryLater enqueues run's commit again after the lane's back-off, if
// it is still the branch head then. Run waits for it when it stops.
func (e *embedded) retryLater(ctx context.Context, run store.Run) {
	key := laneKey{run.Source, run.Branch}
	e.mu.Lock()
	if e.stopped || ctx.Err() != nil {
		e.mu.Unlock()
		return
	}
	h := e.retries[key]
	if h == nil || h.commit != run.Commit {
		h = &headRetry{commit: run.Commit, wait: infraRetryMin}
		e.retries[key] = h
	} else {
		h.wait = min(2*h.wait, infraRetryMax)
	}
	wait := h.wait
	// why under e.mu with stopped checked: Run's Wait must not miss it.
	e.workers.Add(1)
	e.mu.Unlock()
	e.cfg.Log("pipeline: run %d (commit %s of %s/%s) failed because ferry's infrastructure did; it runs again in %s if its commit is still the branch head",
		run.ID, store.Short(run.Commit), run.Source, run.Branch, wait)
	go func() {
		defer e.workers.Done()
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		head, err := e.headOf(ctx, run)
		if err == nil && head != run.Commit {
			// why "" too: a commit the store knows as no head is not run
			// again behind the watcher's back.
			e.cfg.Log("pipeline: run %d (commit %s of %s/%s) does not run again: the branch head is %q now",
				run.ID, store.Short(run.Commit), run.Source, run.Branch, store.Short(head))
			return
		}
		if _, err := e.again(ctx, run); err != nil && ctx.Err() == nil {
			e.cfg.Log("pipeline: run %d: running it again: %v", run.ID, err)
			e.retryLater(ctx, run)
		}
	}()
}

// mayDeployAgain reports whether run, done, could be deployed again when
// its commit is the branch head once more (headNotLive decides): it made
// a release, and succeeded or was superseded.
func mayDeployAgain(run store.Run) bool {
	return run.Release != "" && (run.Status == store.StatusSucceeded || run.Status == store.StatusSuperseded)
}

// headNotLive returns why run, done, must deploy its release again: its
// commit is the branch head as the watcher last saw it (a force-push took
// the branch back to it), and the environment it deployed to runs another
// commit of its branch now, or it never deployed because a newer commit
// was live. "" when there is nothing to do, as at every start for a head
// that is live.
func (e *embedded) headNotLive(ctx context.Context, run store.Run) (string, error) {
	if !mayDeployAgain(run) {
		return "", nil
	}
	if run.PullRequest > 0 {
		return e.previewNotLive(ctx, run)
	}
	head, err := store.HeadOf(ctx, e.cfg.Store, run.Source, run.Branch)
	if err != nil || head != run.Commit {
		return "", err
	}
	ds, err := e.cfg.Store.FindDeployments(ctx, store.DeploymentQuery{RunID: run.ID})
	if err != nil {
		return "", err
	}
	env := ""
	for _, d := range ds {
		if d.Status == store.DeploymentSucceeded || d.Status == store.DeploymentRolledBack {
			env = d.Environment
			break
		}
	}
	if env == "" {
		if run.Status != store.StatusSuperseded {
			return "", nil // it deployed nowhere on purpose (a frozen stage, say)
		}
		return fmt.Sprintf("the head of %s/%s is back at %s, whose release %s was not deployed then (%s)",
			run.Source, run.Branch, store.Short(run.Commit), store.Short(run.Release), run.Reason), nil
	}
	live, err := store.LiveIn(ctx, e.cfg.Store, env)
	if err != nil {
		return "", err
	}
	if live.Release == run.Release || live.Source != run.Source || live.Branch != "" && live.Branch != run.Branch {
		// Live, or the environment runs what another source or branch
		// deployed since, or what an operator pinned: not this head's to
		// undo.
		return "", nil
	}
	return fmt.Sprintf("the head of %s/%s is back at %s, but %s runs %s (commit %s)",
		run.Source, run.Branch, store.Short(run.Commit), env, store.Short(live.Release), store.Short(live.Commit)), nil
}

// deployAgain queues run, done, again from its deploy step, for why
// (headNotLive). Its release is the commit's release, so deploying it
// again is deploying the commit; re-running the step rather than
// applying the release here keeps one path for every deployment a run
// makes: the stage's freezes and holds (Config.Admit), the record with
// actor ferry and its audit entry, and promotion from there
// (Config.OnDeployed). e.mu is held.
func (e *embedded) deployAgain(ctx context.Context, run store.Run, why string) (store.Run, error) {
	subject := fmt.Sprintf("run %d", run.ID)
	for _, s := range run.Steps {
		if s.Name != StepDeploy {
			continue
		}
		s.Status, s.Reason, s.Started, s.Ended = store.StatusQueued, "", time.Time{}, time.Time{}
		if err := e.cfg.Store.UpdateStep(ctx, s); err != nil {
			return run, fmt.Errorf("%s: queueing its deploy step again: %w", subject, err)
		}
	}
	again := run
	again.Steps = nil
	again.Status, again.Reason = store.StatusQueued, ""
	again.Started, again.Ended = time.Time{}, time.Time{}
	if err := e.cfg.Store.UpdateRun(ctx, again); err != nil {
		return run, fmt.Errorf("%s: queueing it again: %w", subject, err)
	}
	if err := e.audit(ctx, "run.redeploy", run.ID, fmt.Sprintf("%s/%s %s: %s", run.Source, run.Branch, store.Short(run.Commit), why)); err != nil {
		return run, err
	}
	e.cfg.Log("pipeline: run %d (commit %s of %s/%s) deploys its release again: %s", run.ID, store.Short(run.Commit), run.Source, run.Branch, why)
	return e.cfg.Store.GetRun(ctx, run.ID)
}

// headOf returns the head run converges to: its branch's head as the
// watcher last saw it, or, for a pull request's run, the request's head
// (Config.PullHead; without it the run's own commit, as a pull request's
// run is enqueued for its head). "" when the store knows none.
func (e *embedded) headOf(ctx context.Context, run store.Run) (string, error) {
	if run.PullRequest == 0 {
		return store.HeadOf(ctx, e.cfg.Store, run.Source, run.Branch)
	}
	if e.cfg.PullHead == nil {
		return run.Commit, nil
	}
	return e.cfg.PullHead(ctx, run.Source, run.PullRequest)
}

// previewNotLive is headNotLive for a pull request's run, done: its
// preview was torn down and made again (reopened, or evicted and pushed
// to), so it runs nothing, or it runs another head. The target is asked,
// not the store: a preview made again starts empty while the store still
// holds its last deployment.
func (e *embedded) previewNotLive(ctx context.Context, run store.Run) (string, error) {
	env := store.PreviewName(run.Source, run.PullRequest)
	target, err := e.cfg.Target(env)
	if err != nil {
		return "", fmt.Errorf("environment %s: %w", env, err)
	}
	st, err := target.Status(ctx)
	if err != nil {
		return "", fmt.Errorf("environment %s: %w", env, err)
	}
	if st.Release == run.Release {
		return "", nil
	}
	what := "nothing"
	if st.Release != "" {
		what = store.Short(st.Release)
	}
	return fmt.Sprintf("pull request %d of %s is at %s again, but its preview %s runs %s", run.PullRequest, run.Source, store.Short(run.Commit), env, what), nil
}
