package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ferrycd/ferry/build"
	"github.com/ferrycd/ferry/manifests"
	"github.com/ferrycd/ferry/store"
)

// step is one step of a run.
type step struct {
	name string
	// do runs the step. It returns a skip for a step with nothing to do.
	do func(r *runner, ctx context.Context) error
	// again, when set, restores what later steps need from the step when
	// the store says it is done already (a resumed run): results that are
	// cheap to get again, never a second release or deployment.
	again func(r *runner, ctx context.Context) error
}

// steps are a run's steps, in the order of Steps.
var steps = []step{
	{StepCheckout, (*runner).checkout, (*runner).checkoutAgain},
	{StepValidate, (*runner).validate, (*runner).validateAgain},
	{StepBuild, (*runner).build, nil},
	{StepTest, (*runner).test, nil},
	{StepRelease, (*runner).release, (*runner).releaseAgain},
	{StepDeploy, (*runner).deploy, (*runner).deployAgain},
}

// skip is what a step returns when it has nothing to do.
type skip struct{ reason string }

func (s *skip) Error() string { return s.reason }

// runner executes one run. Its fields after run are what the steps pass
// on to the ones after them.
type runner struct {
	e   *embedded
	cfg *Config
	st  Store
	run store.Run

	tree fs.FS
	info build.Info
	set  *manifests.Set
	// images maps each function to its image, once built.
	images map[string]string
	// artifact is the release artifact, when this process pushed or pulled
	// it; stored is its record.
	artifact *build.Release
	stored   store.Release

	// current is the step being run, as last recorded; failure is why the
	// run failed, superseded why it was not deployed ("" while neither).
	current    store.Step
	failure    string
	superseded string
	// infra is set when the failure is ferry's infrastructure's, not the
	// repository's (infraFault).
	infra bool

	// logMu guards the log lines the store did not take yet.
	logMu      sync.Mutex
	pending    []logBatch
	logRetryAt time.Time // no single try before, after a failed write
}

// execute runs run from its first step that is not done. It returns an
// error only when ctx ended, or the run could not be recorded even as
// failed: the run is left as the store holds it then, for the next
// executor to resume.
func (e *embedded) execute(ctx context.Context, run store.Run) error {
	r := &runner{e: e, cfg: &e.cfg, st: e.cfg.Store}
	err := r.execute(ctx, run.ID)
	if se := (*storeError)(nil); errors.As(err, &se) {
		// why: a run the store cannot follow stops there, failed, so that
		// nothing downstream of a step it could not record happens.
		return r.failForStore(ctx, se)
	}
	return err
}

func (r *runner) execute(ctx context.Context, id int64) error {
	// why: what a step did is recorded even when ctx ends just after it,
	// so a resumed run does not do it again.
	rec := context.WithoutCancel(ctx)
	run, err := r.st.GetRun(ctx, id)
	if err != nil {
		return fmt.Errorf("reading the run: %w", err)
	}
	if run.Status.Done() {
		return nil
	}
	r.run = run
	byName := map[string]store.Step{}
	for _, s := range run.Steps {
		byName[s.Name] = s
	}
	for _, name := range Steps {
		if _, ok := byName[name]; !ok {
			// A run recorded by a ferry with other steps: it cannot be
			// resumed step by step.
			r.run.Status, r.run.Ended = store.StatusFailed, time.Now()
			r.run.Reason = fmt.Sprintf("the store holds no step %s for this run, so it cannot be resumed; push a new commit to run again", name)
			return r.updateRun(ctx)
		}
	}
	var failedStep, firstError string

	resumed := run.Status == store.StatusRunning
	if resumed {
		if err := r.e.audit(ctx, "run.resume", run.ID, fmt.Sprintf("%s/%s %s", run.Source, run.Branch, store.Short(run.Commit))); err != nil {
			return err
		}
		r.tell(Event{Kind: EventRunResumed})
	} else {
		r.run.Status = store.StatusRunning
		r.run.Started = time.Now()
		if err := r.updateRunWith(ctx, r.entry("run.start", fmt.Sprintf("%s/%s %s", run.Source, run.Branch, store.Short(run.Commit)))); err != nil {
			return err
		}
		r.tell(Event{Kind: EventRunStarted})
	}

	for i, s := range steps {
		sr := byName[s.name]
		sr.RunID, sr.Name, sr.Index = run.ID, s.name, i
		r.current = sr
		if r.failure != "" {
			if sr.Status.Done() {
				continue
			}
			sr.Status, sr.Reason, sr.Ended = store.StatusSkipped, "an earlier step failed", time.Now()
			if err := r.updateStep(ctx, sr); err != nil {
				return err
			}
			continue
		}
		switch sr.Status {
		case store.StatusFailed:
			// ferry stopped between failing the step and failing the run.
			r.failure = fmt.Sprintf("%s failed: %s", s.name, sr.Reason)
			failedStep, firstError = s.name, firstLine(sr.Reason)
			continue
		case store.StatusSucceeded, store.StatusSkipped:
			if s.again == nil {
				continue
			}
			if err := s.again(r, ctx); err != nil {
				if ctx.Err() != nil {
					return fmt.Errorf("stopped while resuming at step %s: %w", s.name, ctx.Err())
				}
				if se := (*storeError)(nil); errors.As(err, &se) {
					return err
				}
				r.logErr(rec, s.name, fmt.Errorf("resuming after a restart: %w", err))
				r.failure = fmt.Sprintf("%s failed when the run resumed: %s", s.name, summary(err))
				r.infra = infraFault(err)
				failedStep, firstError = s.name, firstLine(err.Error())
			}
			continue
		}

		if resumed {
			r.log(rec, s.name, "resumed after ferry restarted; the steps done before are kept")
			resumed = false
		}
		sr.Status, sr.Reason, sr.Started, sr.Ended = store.StatusRunning, "", time.Now(), time.Time{}
		if err := r.updateStep(ctx, sr); err != nil {
			return err
		}
		r.current = sr
		r.tell(Event{Kind: EventStepStarted, Step: s.name})
		err := s.do(r, ctx)
		if err != nil && ctx.Err() != nil {
			// Stopped, not failed: the step stays running in the store
			// and runs again when the run resumes.
			return fmt.Errorf("stopped at step %s: %w", s.name, ctx.Err())
		}
		if se := (*storeError)(nil); errors.As(err, &se) {
			return err
		}
		sr.Ended = time.Now()
		var (
			sk  *skip
			sup *supersededError
		)
		switch {
		case errors.As(err, &sup):
			sr.Status, sr.Reason = store.StatusSkipped, sup.reason
			r.log(rec, s.name, "not deployed: "+sup.reason)
			r.superseded = sup.reason
		case errors.As(err, &sk):
			sr.Status, sr.Reason = store.StatusSkipped, sk.reason
			r.log(rec, s.name, "skipped: "+sk.reason)
		case err != nil:
			sr.Status, sr.Reason = store.StatusFailed, summary(err)
			r.logErr(rec, s.name, err)
			r.failure = fmt.Sprintf("%s failed: %s", s.name, sr.Reason)
			r.infra = infraFault(err)
			failedStep, firstError = s.name, firstLine(err.Error())
		default:
			sr.Status = store.StatusSucceeded
		}
		if err := r.updateStep(ctx, sr); err != nil {
			return err
		}
		r.current = sr
		r.tell(Event{Kind: EventStepEnded, Step: s.name, StepStatus: sr.Status, Error: firstLine(sr.Reason)})
	}

	r.run.Status, r.run.Reason, r.run.Ended = store.StatusSucceeded, r.failure, time.Now()
	switch {
	case r.failure != "" && r.infra:
		r.run.Status, r.run.InfraFailed = store.StatusFailed, true
		r.run.Reason += "; ferry runs the branch head again, with back-off, while it is the head"
	case r.failure != "":
		r.run.Status = store.StatusFailed
	case r.superseded != "":
		r.run.Status, r.run.Reason = store.StatusSuperseded, r.superseded
	}
	detail := fmt.Sprintf("%s/%s %s %s", run.Source, run.Branch, store.Short(run.Commit), r.run.Status)
	if r.run.Reason != "" {
		detail += ": " + r.run.Reason
	}
	if err := r.updateRunWith(ctx, r.entry("run.end", detail)); err != nil {
		return err
	}
	r.tell(Event{Kind: EventRunFinished, Step: failedStep, Error: firstError})
	return nil
}

// infraError is a step's failure that comes from ferry's own
// infrastructure rather than the repository: the source's tree could not
// be read from ferry's mirror.
type infraError struct{ err error }

func (e *infraError) Error() string { return e.err.Error() }
func (e *infraError) Unwrap() error { return e.err }

// infraFault reports whether a step failed because ferry's infrastructure
// did (an infraError, a registry that did not answer or could not be
// reached), so that the run is run again later, rather than because of
// the repository's content (a manifest, the code, a test), which running
// again would not change. A joined error (one per function built) is
// infrastructure's only when each of its errors is.
func infraFault(err error) bool {
	if err == nil {
		return false
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs := j.Unwrap()
		for _, e := range errs {
			if !infraFault(e) {
				return false
			}
		}
		return len(errs) > 0
	}
	var ie *infraError
	var ue *build.UnavailableError
	return errors.As(err, &ie) || errors.As(err, &ue)
}

// supersededError is what the deploy step returns for a run whose commit
// is older than what its environment runs from the same branch: the run
// ends superseded, with reason.
type supersededError struct{ reason string }

func (e *supersededError) Error() string { return e.reason }

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimLeft(s, "\n"), "\n")
	return line
}

// updateRun records r.run without its steps, after the log lines before
// it, retrying while the store refuses (writeRetrying).
func (r *runner) updateRun(ctx context.Context) error {
	return r.updateRunWith(ctx, nil)
}

// updateRunWith is updateRun that keeps entry, when not nil, in the same
// transaction as the run: a run recorded started or ended always has its
// entry, whenever the disk fills or ferry is killed.
func (r *runner) updateRunWith(ctx context.Context, entry *store.Event) error {
	if err := r.flushLogs(ctx); err != nil {
		return err
	}
	run := r.run
	run.Steps = nil
	return r.e.writeRetrying(ctx, r.subject(), fmt.Sprintf("the run as %s", run.Status), func(ctx context.Context) error {
		if entry != nil {
			ctx = store.WithEvent(ctx, *entry)
		}
		return r.st.UpdateRun(ctx, run)
	})
}

// entry is the audit entry of the run's action.
func (r *runner) entry(action, detail string) *store.Event {
	return &store.Event{Actor: Actor, Action: action, Object: fmt.Sprintf("run/%d", r.run.ID), Detail: detail}
}

// updateStep records s, after the log lines before it, retrying while the
// store refuses (writeRetrying).
func (r *runner) updateStep(ctx context.Context, s store.Step) error {
	if err := r.flushLogs(ctx); err != nil {
		return err
	}
	return r.e.writeRetrying(ctx, r.subject(), fmt.Sprintf("step %s as %s", s.Name, s.Status), func(ctx context.Context) error {
		return r.st.UpdateStep(ctx, s)
	})
}

// logBatch is lines of one step's log not written yet.
type logBatch struct {
	step  string
	lines []string
}

// log appends lines to step's log. Lines the store does not take stay in
// memory, in order, and go with the next write; updateStep and updateRun
// write them first, retrying, so a step's log is whole before its status.
func (r *runner) log(ctx context.Context, step string, lines ...string) {
	if len(lines) == 0 {
		return
	}
	r.logMu.Lock()
	defer r.logMu.Unlock()
	r.pending = append(r.pending, logBatch{step: step, lines: slices.Clone(lines)})
	if time.Now().Before(r.logRetryAt) {
		return
	}
	if err := r.flushLocked(context.WithoutCancel(ctx)); err != nil {
		if r.logRetryAt.IsZero() {
			r.cfg.Log("pipeline: run %d: writing step %s's log: %v; the lines wait in memory", r.run.ID, step, err)
		}
		// why: a full disk is not tried again for every line a test
		// prints.
		r.logRetryAt = time.Now().Add(time.Second)
	}
}

// flushLocked writes the pending lines in order, merging the batches of
// one step; what fails stays pending. r.logMu is held.
func (r *runner) flushLocked(ctx context.Context) error {
	for len(r.pending) > 0 {
		step, n := r.pending[0].step, 1
		lines := slices.Clone(r.pending[0].lines)
		for n < len(r.pending) && r.pending[n].step == step {
			lines = append(lines, r.pending[n].lines...)
			n++
		}
		if err := r.st.AppendLog(ctx, r.run.ID, step, lines...); err != nil {
			return err
		}
		r.pending = r.pending[n:]
	}
	r.pending, r.logRetryAt = nil, time.Time{}
	return nil
}

// flushLogs writes the pending lines, retrying while the store refuses.
func (r *runner) flushLogs(ctx context.Context) error {
	r.logMu.Lock()
	n := 0
	for _, b := range r.pending {
		n += len(b.lines)
	}
	r.logMu.Unlock()
	if n == 0 {
		return nil
	}
	return r.e.writeRetrying(ctx, r.subject(), fmt.Sprintf("%s of its log", count(n, "line")), func(ctx context.Context) error {
		r.logMu.Lock()
		defer r.logMu.Unlock()
		return r.flushLocked(ctx)
	})
}

// logf appends one formatted line to step's log.
func (r *runner) logf(ctx context.Context, step, format string, args ...any) {
	r.log(ctx, step, fmt.Sprintf(format, args...))
}

// logErr writes every line of err to step's log.
func (r *runner) logErr(ctx context.Context, step string, err error) {
	r.log(ctx, step, strings.Split(strings.TrimRight(err.Error(), "\n"), "\n")...)
}

// summary is err in one line, for a Reason: its first line, and how many
// more problems (for manifest errors) or lines the log holds.
func summary(err error) string {
	lines := strings.Split(strings.TrimRight(err.Error(), "\n"), "\n")
	if len(lines) == 1 {
		return lines[0]
	}
	more := count(len(lines)-1, "more line")
	if list := manifests.Errors(err); len(list) == len(lines) {
		more = count(len(lines)-1, "more problem")
	}
	return fmt.Sprintf("%s (and %s in the log)", lines[0], more)
}
