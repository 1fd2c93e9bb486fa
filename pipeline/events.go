package pipeline

import "github.com/ferrycd/ferry/store"

// Event is one outcome of a run, told as it happens so that ferry serve
// can say it in one log line. The run's record and its step logs say the
// same at length.
type Event struct {
	Kind EventKind
	Run  store.Run // its ID, Source, Branch, Commit; Status once finished
	// Step is the step that failed (EventRunFinished of a failed run),
	// or the step that started or ended (EventStepStarted, EventStepEnded).
	Step string
	// StepStatus is how the step ended (EventStepEnded): succeeded,
	// failed or skipped.
	StepStatus store.RunStatus
	// Error is the first line of what failed.
	Error       string
	Release     string // EventReleaseMade, EventDeploying, EventDeployed, EventDeployFailed
	Environment string // EventDeploying, EventDeployed, EventDeployFailed
}

// EventKind names an outcome.
type EventKind string

// The outcomes a run tells.
const (
	EventRunStarted  EventKind = "run started"
	EventRunResumed  EventKind = "run resumed"
	EventRunFinished EventKind = "run finished"
	EventReleaseMade EventKind = "release made"
	EventDeployed    EventKind = "deployed"
	// EventDeploying: the deploy step applies Release to Environment
	// now; EventDeployFailed: that failed (Error says why).
	EventDeploying    EventKind = "deploying"
	EventDeployFailed EventKind = "deploy failed"
	// Each step's start and end, for those who show a run step by step
	// (GitHub commit statuses).
	EventStepStarted EventKind = "step started"
	EventStepEnded   EventKind = "step ended"
)

// tell hands ev to Config.Events, if set.
func (r *runner) tell(ev Event) {
	if r.cfg.Events == nil {
		return
	}
	run := r.run
	run.Steps = nil
	ev.Run = run
	r.cfg.Events(ev)
}
