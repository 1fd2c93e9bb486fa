package promote

import (
	"context"

	"github.com/ferrycd/ferry/store"
)

// Event is one outcome of the promoter, told as it happens so that ferry
// serve can say it in one log line: people read it, log collectors parse
// it. The store's history says the same at length; an event is the news.
type Event struct {
	Kind        EventKind
	Environment string
	Release     string // release id, sha256:…
	Promotion   int64  // 0 when no promotion is involved (a manual rollback)
	// Actor is who did it: an approver, whoever froze, ferry itself.
	Actor string
	// Reason says why, in one line: the failed check, what a rollback
	// went back from, the freeze's reason.
	Reason string
	// Approvals is how many approvals a waiting promotion needs.
	Approvals int
}

// EventKind names an outcome.
type EventKind string

// The outcomes the promoter tells.
const (
	EventDeploying      EventKind = "deploying"
	EventDeployed       EventKind = "deployed"
	EventDeployFailed   EventKind = "deploy failed"
	EventVerified       EventKind = "verification passed"
	EventVerifyFailed   EventKind = "verification failed"
	EventRolledBack     EventKind = "rolled back"
	EventWaiting        EventKind = "waiting for approvals"
	EventApproved       EventKind = "approved"
	EventRejected       EventKind = "rejected"
	EventFrozen         EventKind = "frozen"
	EventUnfrozen       EventKind = "unfrozen"
	EventResumed        EventKind = "resumed"
	EventPromotionError EventKind = "promotion failed"
)

// Events hears the promoter's outcomes. Outcome must not block: the
// promoter calls it while it holds an environment.
type Events interface {
	Outcome(Event)
}

// EventsFunc makes a function an Events.
type EventsFunc func(Event)

func (f EventsFunc) Outcome(ev Event) { f(ev) }

// tell hands ev to Config.Events, if set.
func (e *engine) tell(ev Event) {
	if e.cfg.Events != nil {
		e.cfg.Events.Outcome(ev)
	}
}

// approvalsNeeded is how many approvals p's stage asks for; 0 when it is
// not an approval stage.
func (e *engine) approvalsNeeded(ctx context.Context, p store.Promotion) int {
	rel, err := e.release(ctx, p.Release)
	if err != nil {
		return 0
	}
	stage, ok := rel.stage(p.Environment)
	if !ok || stage.Approval == nil {
		return 0
	}
	return required(stage.Approval)
}
