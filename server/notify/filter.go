package notify

import (
	"fmt"
	"path"
	"slices"
)

// Kinds are every kind, in the order of a run and a promotion.
var Kinds = []Kind{RunStarted, StepStarted, StepEnded, RunFailed, RunSucceeded, Deploying, Deployed, DeployFailed,
	VerificationFailed, RolledBack, WaitingForApproval, Approved, Rejected,
	PreviewBuilding, PreviewReady, PreviewFailed, PreviewTornDown, PreviewWaiting}

// DefaultKinds are what a chat or webhook hears when its filter names
// none: what a person acts on. Step events are never among them (a run
// makes a dozen); a filter that names them gets them.
var DefaultKinds = []Kind{RunFailed, Deployed, VerificationFailed, RolledBack,
	WaitingForApproval, Approved, Rejected, PreviewReady}

// Filter chooses the events a sink hears.
type Filter struct {
	// Events are the kinds heard (empty: DefaultKinds).
	Events []Kind
	// Environments are names or path.Match globs (pr-*) of the
	// environments heard (empty: all). An event about no environment (a
	// run's) is heard whatever they say.
	Environments []string
}

// Check says what is wrong with f, for the configuration.
func (f Filter) Check() error {
	for _, k := range f.Events {
		if !slices.Contains(Kinds, k) {
			return fmt.Errorf("events: %q is not an event; give some of %v", k, Kinds)
		}
	}
	for _, e := range f.Environments {
		if _, err := path.Match(e, ""); err != nil || e == "" {
			return fmt.Errorf("environments: %q is neither a name nor a glob such as pr-*", e)
		}
	}
	return nil
}

// Match reports whether ev passes f.
func (f Filter) Match(ev Event) bool {
	kinds := f.Events
	if len(kinds) == 0 {
		kinds = DefaultKinds
	}
	if !slices.Contains(kinds, ev.Kind) {
		return false
	}
	if len(f.Environments) == 0 || ev.Environment == "" {
		return true
	}
	for _, g := range f.Environments {
		if ok, _ := path.Match(g, ev.Environment); ok {
			return true
		}
	}
	return false
}
