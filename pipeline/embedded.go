package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/ferrycd/ferry/store"
)

// embedded is the in-process executor. Each source's branch is a lane:
// its runs wait in order and one goroutine works them, one at a time.
type embedded struct {
	cfg Config
	// workers counts the goroutines working lanes.
	workers sync.WaitGroup

	// mu guards everything below.
	mu    sync.Mutex
	lanes map[laneKey]*lane
	// known holds the runs waiting in a lane or being executed, so a run
	// is never scheduled twice.
	known map[int64]bool
	// waiters are closed when their run's executor is done with it.
	waiters map[int64]chan struct{}
	// retries are the lanes whose head's run failed for ferry's
	// infrastructure and waits to run again (retryLater).
	retries map[laneKey]*headRetry
	// ctx is Run's context; nil until Run starts the lanes.
	ctx     context.Context
	started bool
	stopped bool // Run's ctx ended
}

var _ Executor = (*embedded)(nil)

func newEmbedded(cfg Config) *embedded {
	return &embedded{cfg: cfg, lanes: map[laneKey]*lane{}, known: map[int64]bool{}, waiters: map[int64]chan struct{}{}, retries: map[laneKey]*headRetry{}}
}

// laneKey names a lane: runs of one source's branch.
type laneKey struct{ source, branch string }

// lane is the runs of one branch that wait: the resumed running ones
// first, then the queued ones, each group by id (the order they were
// enqueued).
type lane struct {
	key    laneKey
	queue  []store.Run
	active bool // a goroutine works the lane
	// superseded are runs of the lane superseded in memory, for its
	// worker to record before it starts the next run.
	superseded []supersession
}

// Enqueue implements Executor.
func (e *embedded) Enqueue(ctx context.Context, source, branch, commit string) (store.Run, error) {
	return e.enqueue(ctx, store.Run{Source: source, Branch: branch, Commit: commit})
}

// EnqueuePull implements Executor.
func (e *embedded) EnqueuePull(ctx context.Context, source, branch, commit string, number int) (store.Run, error) {
	if number <= 0 {
		return store.Run{}, fmt.Errorf("pipeline: a pull request's number is positive, not %d", number)
	}
	if branch != store.PullBranch(store.PullPrefixGitHub, number) && branch != store.PullBranch(store.PullPrefixGitLab, number) {
		return store.Run{}, fmt.Errorf("pipeline: pull request %d's runs have the branch %s or %s, not %q",
			number, store.PullBranch(store.PullPrefixGitHub, number), store.PullBranch(store.PullPrefixGitLab, number), branch)
	}
	return e.enqueue(ctx, store.Run{Source: source, Branch: branch, Commit: commit, PullRequest: number})
}

// again enqueues run's commit again: a branch head, or a pull request's.
func (e *embedded) again(ctx context.Context, run store.Run) (store.Run, error) {
	return e.enqueue(ctx, store.Run{Source: run.Source, Branch: run.Branch, Commit: run.Commit, PullRequest: run.PullRequest})
}

func (e *embedded) enqueue(ctx context.Context, want store.Run) (store.Run, error) {
	source, branch, commit := want.Source, want.Branch, want.Commit
	if source == "" || branch == "" || commit == "" {
		return store.Run{}, fmt.Errorf("pipeline: a run needs a source, a branch and a commit (got %q, %q, %q)", source, branch, commit)
	}
	want.Status = store.StatusQueued
	run, created, err := e.cfg.Store.CreateRun(ctx, want, Steps)
	if err != nil {
		return store.Run{}, fmt.Errorf("pipeline: recording a run for commit %s of %s/%s: %w", store.Short(commit), source, branch, err)
	}
	if !created && run.Status.Done() && !run.InfraFailed && !mayDeployAgain(run) {
		return run, nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if !created && run.Status.Done() {
		// why: read again under e.mu, so that two Enqueues do not both
		// run it again.
		id := run.ID
		if run, err = e.cfg.Store.GetRun(ctx, id); err != nil {
			return store.Run{}, fmt.Errorf("pipeline: run %d: %w", id, err)
		}
		switch {
		case !run.Status.Done():
			// Queued again meanwhile: scheduled below, if not already.
		case run.InfraFailed:
			// why: it failed only because ferry's infrastructure did; its
			// commit is a head again (a restart, the watcher, or
			// retryLater), so it runs on from where it stopped.
			if run, err = e.rerun(ctx, run); err != nil {
				return store.Run{}, fmt.Errorf("pipeline: %w", err)
			}
		default:
			why, err := e.headNotLive(ctx, run)
			if err != nil {
				return store.Run{}, fmt.Errorf("pipeline: run %d: %w", run.ID, err)
			}
			if why == "" {
				return run, nil
			}
			if run, err = e.deployAgain(ctx, run, why); err != nil {
				return store.Run{}, fmt.Errorf("pipeline: %w", err)
			}
		}
	}
	// why head: Enqueue is given branch heads (the watcher's, ferry's
	// start, retryLater), so its run goes before every run queued in
	// its lane, whatever their ids: after a force-push back to an older
	// commit, the older commit's run is the one to run.
	return e.schedule(ctx, run, true), nil
}

// schedule puts run into its lane, unless it is there already, applying
// the rule that a queued run supersedes the older queued ones (every
// other queued one when run is the branch head), and starts the lane
// when Run runs. It returns run as it is now: superseded at once when a
// newer run waits already and run is not the head. e.mu is held.
func (e *embedded) schedule(ctx context.Context, run store.Run, head bool) store.Run {
	if e.known[run.ID] {
		return run
	}
	key := laneKey{run.Source, run.Branch}
	l := e.lanes[key]
	if l == nil {
		l = &lane{key: key}
		e.lanes[key] = l
	}
	if run.Status == store.StatusQueued {
		// A newer run waits already (two Enqueues raced, or a restart
		// found both): this one is superseded at once.
		for _, q := range l.queue {
			if !head && q.Status == store.StatusQueued && q.ID > run.ID {
				return e.supersede(ctx, run, q)
			}
		}
		keep := l.queue[:0]
		for _, q := range l.queue {
			if q.Status == store.StatusQueued && (q.ID < run.ID || head && q.ID != run.ID) {
				e.supersede(ctx, q, run)
				delete(e.known, q.ID)
				continue
			}
			keep = append(keep, q)
		}
		l.queue = keep
	}
	l.queue = append(l.queue, run)
	slices.SortStableFunc(l.queue, func(a, b store.Run) int {
		// why: a run that was running when ferry stopped goes before any
		// queued one, as it would have finished first.
		ar, br := a.Status == store.StatusRunning, b.Status == store.StatusRunning
		switch {
		case ar && !br:
			return -1
		case br && !ar:
			return 1
		}
		return cmpID(a.ID, b.ID)
	})
	e.known[run.ID] = true
	e.startLane(l)
	return run
}

func cmpID(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// supersede marks the queued run old superseded by newer and returns
// it so marked. The store hears of it from the lane's worker, before the
// lane's next run starts (writeSuperseded): not under e.mu, where a
// store that refuses the write would hold up every Enqueue. e.mu is held.
func (e *embedded) supersede(ctx context.Context, old, newer store.Run) store.Run {
	old.Status = store.StatusSuperseded
	old.Reason = "superseded by " + store.Short(newer.Commit)
	old.Ended = time.Now()
	old.Steps = nil
	key := laneKey{old.Source, old.Branch}
	l := e.lanes[key]
	if l == nil {
		l = &lane{key: key}
		e.lanes[key] = l
	}
	l.superseded = append(l.superseded, supersession{old: old, newer: newer})
	return old
}

// supersession is a queued run superseded by a newer one, for the store.
type supersession struct{ old, newer store.Run }

// writeSuperseded records the runs l's Enqueues superseded, each with its
// steps skipped and its audit entry, retrying while the store refuses
// (until ctx ends: the run stays queued in the store then, and the next
// start supersedes it again). Their waiters hear of them once written.
func (e *embedded) writeSuperseded(ctx context.Context, l *lane) {
	e.mu.Lock()
	list := l.superseded
	l.superseded = nil
	e.mu.Unlock()
	for _, s := range list {
		old, subject := s.old, fmt.Sprintf("run %d", s.old.ID)
		var err error
		// why the steps first: a run the store holds as done has its
		// steps done too, for whoever reads it.
		for i, name := range Steps {
			st := store.Step{RunID: old.ID, Name: name, Index: i, Status: store.StatusSkipped, Reason: old.Reason, Ended: old.Ended}
			if err = e.retry(ctx, subject, fmt.Sprintf("step %s as skipped", name), 0, func(ctx context.Context) error {
				return e.cfg.Store.UpdateStep(ctx, st)
			}); err != nil {
				break
			}
		}
		if err == nil {
			// why with the run's change: a crash between the two would
			// lose the entry for good.
			detail := fmt.Sprintf("%s/%s %s superseded by %s (run %d)", old.Source, old.Branch, store.Short(old.Commit), store.Short(s.newer.Commit), s.newer.ID)
			entry := store.Event{Actor: Actor, Action: "run.supersede", Object: fmt.Sprintf("run/%d", old.ID), Detail: detail}
			err = e.retry(ctx, subject, "the run as superseded", 0, func(ctx context.Context) error {
				return e.cfg.Store.UpdateRun(store.WithEvent(ctx, entry), old)
			})
		}
		if err != nil {
			e.cfg.Log("pipeline: %s (commit %s of %s/%s): %v", subject, store.Short(old.Commit), old.Source, old.Branch, err)
		}
		e.mu.Lock()
		e.notifyLocked(old.ID)
		e.mu.Unlock()
	}
}

// startLane starts a goroutine for l when Run runs, l has work and none
// works it yet. e.mu is held.
func (e *embedded) startLane(l *lane) {
	if e.ctx == nil || e.stopped || e.ctx.Err() != nil || l.active || len(l.queue) == 0 && len(l.superseded) == 0 {
		return
	}
	l.active = true
	e.workers.Add(1)
	go e.work(e.ctx, l)
}

// work executes l's runs one after the other until none waits or ctx
// ends.
func (e *embedded) work(ctx context.Context, l *lane) {
	defer e.workers.Done()
	for {
		e.writeSuperseded(ctx, l)
		e.mu.Lock()
		if ctx.Err() != nil || len(l.queue) == 0 && len(l.superseded) == 0 {
			l.active = false
			if len(l.queue) == 0 && len(l.superseded) == 0 && e.lanes[l.key] == l {
				delete(e.lanes, l.key)
			}
			e.mu.Unlock()
			return
		}
		if len(l.queue) == 0 {
			// Only supersessions came meanwhile: written at the loop's top.
			e.mu.Unlock()
			continue
		}
		run := l.queue[0]
		l.queue = l.queue[1:]
		e.mu.Unlock()

		if err := e.execute(ctx, run); err != nil {
			e.cfg.Log("pipeline: run %d (commit %s of %s/%s): %v", run.ID, store.Short(run.Commit), run.Source, run.Branch, err)
		}
		if ctx.Err() == nil {
			e.afterRun(ctx, run.ID)
		}
		e.mu.Lock()
		delete(e.known, run.ID)
		e.notifyLocked(run.ID)
		e.mu.Unlock()
	}
}

// Run implements Executor.
func (e *embedded) Run(ctx context.Context) error {
	e.mu.Lock()
	if e.started {
		e.mu.Unlock()
		return errors.New("pipeline: Run was called already; start a new executor")
	}
	e.started = true
	e.mu.Unlock()

	unfinished, err := e.cfg.Store.UnfinishedRuns(ctx)
	if err != nil {
		return fmt.Errorf("pipeline: listing the runs to resume: %w", err)
	}
	var resume []store.Run
	for _, run := range unfinished {
		// why: a run that stopped (a crash, a full disk) while its branch
		// moved on must not deploy its older commit when it resumes.
		reason, err := e.passed(ctx, run)
		if err != nil {
			e.cfg.Log("pipeline: run %d (commit %s of %s/%s): deciding whether its branch moved past it: %v; it resumes, and its deploy step checks again", run.ID, store.Short(run.Commit), run.Source, run.Branch, err)
		}
		if reason == "" {
			resume = append(resume, run)
			continue
		}
		if err := e.endSuperseded(ctx, run, reason); err != nil {
			// why: not resumed all the same; the next start tries again.
			e.cfg.Log("pipeline: %v", err)
		}
		e.mu.Lock()
		e.notifyLocked(run.ID)
		e.mu.Unlock()
	}
	e.mu.Lock()
	// why: every resumed run is in its lane before any lane starts, so a
	// run enqueued meanwhile cannot overtake a run that was running.
	for _, run := range resume {
		e.schedule(ctx, run, false)
	}
	e.ctx = ctx
	for _, l := range e.lanes {
		e.startLane(l)
	}
	e.mu.Unlock()

	<-ctx.Done()
	e.mu.Lock()
	// why: startLane checks this under e.mu, so no worker is added while
	// Wait waits.
	e.stopped = true
	e.mu.Unlock()
	e.workers.Wait()
	return nil
}

// Wait implements Executor.
func (e *embedded) Wait(ctx context.Context, id int64) (store.Run, error) {
	for {
		e.mu.Lock()
		ch := e.waiters[id]
		if ch == nil {
			ch = make(chan struct{})
			e.waiters[id] = ch
		}
		e.mu.Unlock()
		// why: the waiter is registered before the store is read, so a run
		// that ends in between closes ch and is not missed.
		run, err := e.cfg.Store.GetRun(ctx, id)
		if err != nil {
			return store.Run{}, fmt.Errorf("pipeline: run %d: %w", id, err)
		}
		if run.Status.Done() {
			return run, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return store.Run{}, ctx.Err()
		}
	}
}

// notifyLocked wakes the waiters of run id. e.mu is held.
func (e *embedded) notifyLocked(id int64) {
	if ch := e.waiters[id]; ch != nil {
		close(ch)
		delete(e.waiters, id)
	}
}

// audit appends an event about run id to the audit log, retrying while
// the store refuses it, as a step's record is: the audit log is not
// short of what a run did.
func (e *embedded) audit(ctx context.Context, action string, runID int64, detail string) error {
	return e.auditObject(ctx, action, fmt.Sprintf("run/%d", runID), detail)
}

func (e *embedded) auditObject(ctx context.Context, action, object, detail string) error {
	ev := store.Event{Actor: Actor, Action: action, Object: object, Detail: detail}
	return e.writeRetrying(ctx, object, fmt.Sprintf("%s in the audit log", action), func(ctx context.Context) error {
		_, err := e.cfg.Store.AppendEvent(ctx, ev)
		return err
	})
}

// passed returns why run, unfinished when ferry started, must not go on:
// the branch head the store knows descends from its commit and is not it,
// or a newer run of the branch deployed already. "" when it may go on.
func (e *embedded) passed(ctx context.Context, run store.Run) (string, error) {
	if run.PullRequest > 0 {
		// why not Git's history: a pull request is force-pushed often, and
		// its newest head is what its preview shows, whatever the order.
		head, err := e.headOf(ctx, run)
		if err != nil {
			return "", err
		}
		if head != "" && head != run.Commit {
			return fmt.Sprintf("the head of pull request %d of %s is %s now; ferry runs it instead of this run's commit %s",
				run.PullRequest, run.Source, store.Short(head), store.Short(run.Commit)), nil
		}
	}
	if e.cfg.IsAncestor != nil && run.PullRequest == 0 {
		st, err := e.cfg.Store.GetSourceStatus(ctx, run.Source)
		src, serr := e.cfg.Store.GetSource(ctx, run.Source)
		switch {
		case errors.Is(err, store.ErrNotFound), errors.Is(serr, store.ErrNotFound):
		case err != nil:
			return "", err
		case serr != nil:
			return "", serr
		case src.Branch == run.Branch && st.LastCommit == run.Commit:
			// why: the branch's head as the watcher last saw it goes on,
			// even when a newer run deployed a later commit: the branch
			// was force-pushed back to it.
			return "", nil
		case src.Branch == run.Branch && st.LastCommit != "":
			older, err := e.cfg.IsAncestor(ctx, run.Source, run.Commit, st.LastCommit)
			if err != nil {
				return "", err
			}
			if older {
				return fmt.Sprintf("the head of %s/%s is %s, which descends from this run's commit %s; ferry runs the head instead",
					run.Source, run.Branch, store.Short(st.LastCommit), store.Short(run.Commit)), nil
			}
			// why: the watcher records a head before its run is queued,
			// so a run's commit that is neither the head nor behind it
			// was left by a force-push: deploying it would undo that.
			return fmt.Sprintf("the head of %s/%s is %s, and this run's commit %s is not in its history (the branch was force-pushed); ferry runs the head instead",
				run.Source, run.Branch, store.Short(st.LastCommit), store.Short(run.Commit)), nil
		}
	}
	newer, err := e.cfg.Store.ListRuns(ctx, run.Source, store.Page{Limit: store.MaxPageSize})
	if err != nil {
		return "", err
	}
	for _, n := range newer {
		if n.ID <= run.ID || n.Branch != run.Branch || n.Commit == run.Commit {
			continue
		}
		ds, err := e.cfg.Store.FindDeployments(ctx, store.DeploymentQuery{RunID: n.ID})
		if err != nil {
			return "", err
		}
		for _, d := range ds {
			if d.Status == store.DeploymentSucceeded || d.Status == store.DeploymentRolledBack {
				return fmt.Sprintf("run %d deployed the newer commit %s of %s/%s already; this run's commit %s is older",
					n.ID, store.Short(n.Commit), run.Source, run.Branch, store.Short(run.Commit)), nil
			}
		}
	}
	return "", nil
}

// endSuperseded records run, unfinished, as superseded for reason, its
// unfinished steps skipped.
func (e *embedded) endSuperseded(ctx context.Context, run store.Run, reason string) error {
	now := time.Now()
	for _, s := range run.Steps {
		if s.Status.Done() {
			continue
		}
		s.Status, s.Reason, s.Ended = store.StatusSkipped, reason, now
		if err := e.writeRetrying(ctx, fmt.Sprintf("run %d", run.ID), fmt.Sprintf("step %s as skipped", s.Name), func(ctx context.Context) error {
			return e.cfg.Store.UpdateStep(ctx, s)
		}); err != nil {
			return err
		}
	}
	ended := run
	ended.Steps = nil
	ended.Status, ended.Reason, ended.Ended = store.StatusSuperseded, reason, now
	// why with the run's change: a crash between the two would lose the
	// entry for good.
	entry := store.Event{Actor: Actor, Action: "run.supersede", Object: fmt.Sprintf("run/%d", run.ID),
		Detail: fmt.Sprintf("%s/%s %s: %s", run.Source, run.Branch, store.Short(run.Commit), reason)}
	if err := e.writeRetrying(ctx, fmt.Sprintf("run %d", run.ID), "the run as superseded", func(ctx context.Context) error {
		return e.cfg.Store.UpdateRun(store.WithEvent(ctx, entry), ended)
	}); err != nil {
		return err
	}
	e.cfg.Log("pipeline: run %d (commit %s of %s/%s) is superseded: %s", run.ID, store.Short(run.Commit), run.Source, run.Branch, reason)
	return nil
}
