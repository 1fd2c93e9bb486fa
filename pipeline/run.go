package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
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
	st  store.Store
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
}

// execute runs run from its first step that is not done. It returns an
// error only when the run could not be recorded, or ctx ended: the run is
// left as the store holds it then, for the next executor to resume.
func (e *embedded) execute(ctx context.Context, run store.Run) error {
	r := &runner{e: e, cfg: &e.cfg, st: e.cfg.Store}
	return r.execute(ctx, run.ID)
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
			return r.updateRun(rec)
		}
	}
	var failure, failedStep, firstError string

	resumed := run.Status == store.StatusRunning
	if resumed {
		r.e.audit(ctx, "run.resume", run.ID, fmt.Sprintf("%s/%s %s", run.Source, run.Branch, store.Short(run.Commit)))
		r.tell(Event{Kind: EventRunResumed})
	} else {
		r.run.Status = store.StatusRunning
		r.run.Started = time.Now()
		if err := r.updateRun(rec); err != nil {
			return err
		}
		r.e.audit(ctx, "run.start", run.ID, fmt.Sprintf("%s/%s %s", run.Source, run.Branch, store.Short(run.Commit)))
		r.tell(Event{Kind: EventRunStarted})
	}

	for i, s := range steps {
		sr := byName[s.name]
		sr.RunID, sr.Name, sr.Index = run.ID, s.name, i
		if failure != "" {
			if sr.Status.Done() {
				continue
			}
			sr.Status, sr.Reason, sr.Ended = store.StatusSkipped, "an earlier step failed", time.Now()
			if err := r.updateStep(rec, sr); err != nil {
				return err
			}
			continue
		}
		switch sr.Status {
		case store.StatusFailed:
			// ferry stopped between failing the step and failing the run.
			failure = fmt.Sprintf("%s failed: %s", s.name, sr.Reason)
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
				r.logErr(rec, s.name, fmt.Errorf("resuming after a restart: %w", err))
				failure = fmt.Sprintf("%s failed when the run resumed: %s", s.name, summary(err))
				failedStep, firstError = s.name, firstLine(err.Error())
			}
			continue
		}

		if resumed {
			r.log(rec, s.name, "resumed after ferry restarted; the steps done before are kept")
			resumed = false
		}
		sr.Status, sr.Reason, sr.Started, sr.Ended = store.StatusRunning, "", time.Now(), time.Time{}
		if err := r.updateStep(rec, sr); err != nil {
			return err
		}
		err := s.do(r, ctx)
		if err != nil && ctx.Err() != nil {
			// Stopped, not failed: the step stays running in the store
			// and runs again when the run resumes.
			return fmt.Errorf("stopped at step %s: %w", s.name, ctx.Err())
		}
		sr.Ended = time.Now()
		var sk *skip
		switch {
		case errors.As(err, &sk):
			sr.Status, sr.Reason = store.StatusSkipped, sk.reason
			r.log(rec, s.name, "skipped: "+sk.reason)
		case err != nil:
			sr.Status, sr.Reason = store.StatusFailed, summary(err)
			r.logErr(rec, s.name, err)
			failure = fmt.Sprintf("%s failed: %s", s.name, sr.Reason)
			failedStep, firstError = s.name, firstLine(err.Error())
		default:
			sr.Status = store.StatusSucceeded
		}
		if err := r.updateStep(rec, sr); err != nil {
			return err
		}
	}

	r.run.Status, r.run.Reason, r.run.Ended = store.StatusSucceeded, failure, time.Now()
	if failure != "" {
		r.run.Status = store.StatusFailed
	}
	if err := r.updateRun(rec); err != nil {
		return err
	}
	detail := fmt.Sprintf("%s/%s %s %s", run.Source, run.Branch, store.Short(run.Commit), r.run.Status)
	if failure != "" {
		detail += ": " + failure
	}
	r.e.audit(ctx, "run.end", run.ID, detail)
	r.tell(Event{Kind: EventRunFinished, Step: failedStep, Error: firstError})
	return nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimLeft(s, "\n"), "\n")
	return line
}

// updateRun records r.run without its steps.
func (r *runner) updateRun(ctx context.Context) error {
	run := r.run
	run.Steps = nil
	if err := r.st.UpdateRun(ctx, run); err != nil {
		return fmt.Errorf("recording the run: %w", err)
	}
	return nil
}

func (r *runner) updateStep(ctx context.Context, s store.Step) error {
	if err := r.st.UpdateStep(ctx, s); err != nil {
		return fmt.Errorf("recording step %s as %s: %w", s.Name, s.Status, err)
	}
	return nil
}

// log appends lines to step's log. A store that cannot take them is
// reported to Config.Log: a run does not fail for a lost log line.
func (r *runner) log(ctx context.Context, step string, lines ...string) {
	if len(lines) == 0 {
		return
	}
	if err := r.st.AppendLog(context.WithoutCancel(ctx), r.run.ID, step, lines...); err != nil {
		r.cfg.Log("pipeline: run %d: writing %d lines of step %s's log: %v", r.run.ID, len(lines), step, err)
	}
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
