package notify

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Kind names an outcome people may want to hear of.
type Kind string

// The outcomes. Filters in the configuration name them.
const (
	RunStarted         Kind = "run.started"
	StepStarted        Kind = "step.started"
	StepEnded          Kind = "step.ended"
	RunFailed          Kind = "run.failed"
	RunSucceeded       Kind = "run.succeeded"
	Deploying          Kind = "deploying"
	Deployed           Kind = "deployed"
	DeployFailed       Kind = "deploy.failed"
	VerificationFailed Kind = "verification.failed"
	RolledBack         Kind = "rolled.back"
	WaitingForApproval Kind = "approval.waiting"
	Approved           Kind = "approved"
	Rejected           Kind = "rejected"
	PreviewBuilding    Kind = "preview.building"
	PreviewReady       Kind = "preview.ready"
	PreviewFailed      Kind = "preview.failed"
	PreviewTornDown    Kind = "preview.torn_down"
	PreviewWaiting     Kind = "preview.waiting"
)

// Event is one outcome with what a receiver needs to show it. Fields a
// kind has nothing for stay empty.
type Event struct {
	Kind Kind
	At   time.Time
	// Source is the ferry source; Repository its Git URL.
	Source     string
	Repository string
	Branch     string
	Commit     string
	// PullRequest is the pull (merge) request's number, for a preview.
	PullRequest int
	Run         int64
	// RunURL is where a person sees the run (ferry's API or dashboard).
	RunURL string
	// Step and StepStatus (succeeded, failed, skipped) for step events.
	Step       string
	StepStatus string
	// Environment, and URL where its functions answer.
	Environment string
	Preview     bool
	URL         string
	Release     string
	// Functions maps each function's name to its image digest.
	Functions map[string]string
	// Actor is who did it (an approver, the one who rolled back).
	Actor string
	// Reason says why (the first error, a rejection's reason).
	Reason string
}

// Delivery is one notice a sink will send for an event.
type Delivery struct {
	// Key, when not "", names what the notice is about (a commit's
	// status for one step, one pull request's comment): a newer delivery
	// for the same key replaces one not yet sent.
	Key  string
	Body []byte
}

// Sink is a receiver outside ferry.
type Sink interface {
	// Name is unique among the sinks; the outbox files deliveries under it.
	Name() string
	// Plan returns what ev makes for this sink: nothing when the sink's
	// filters leave it out. It must not block: it only encodes.
	Plan(ev Event) ([]Delivery, error)
	// Deliver sends one planned body. A *RetryError says when to try
	// again (rate limits); a *PermanentError is given up at once;
	// anything else is retried with back-off.
	Deliver(ctx context.Context, body []byte) error
}

// RetryError asks for another try no sooner than After (a receiver's
// Retry-After or rate-limit reset).
type RetryError struct {
	After time.Duration
	Err   error
}

func (e *RetryError) Error() string {
	return fmt.Sprintf("%v (trying again in %s)", e.Err, e.After.Round(time.Second))
}
func (e *RetryError) Unwrap() error { return e.Err }

// PermanentError is a refusal that no retry changes (a malformed request,
// a receiver that no longer exists): the notice is dropped and logged.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// IsPermanent reports whether err is a *PermanentError.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}
