package environments

import (
	"context"
	"net/http"

	"github.com/ferrycd/ferry/build"
)

// Target runs releases in one environment.
type Target interface {
	// Apply converges the environment to exactly rel: functions that are
	// new or changed start, removed ones stop, triggers follow the
	// release. It is idempotent, and atomic as a user sees it: the old
	// version of a function serves until the new one is healthy, and if
	// the new one does not become healthy in time the old one keeps
	// serving and Apply returns the error with the function's log tail.
	Apply(ctx context.Context, rel *build.Release) error
	// Status says what runs: the live release and each function's state.
	Status(ctx context.Context) (*Status, error)
	// Delete stops everything the environment runs.
	Delete(ctx context.Context) error
	// URL is where a function of the live release answers.
	URL(function string) (string, error)
	// Call sends req to the environment as a client of its HTTP triggers
	// would: req.URL.Path is a trigger's path, without any prefix the
	// target puts in front of it. Redirects are not followed. The caller
	// closes the answer's body.
	Call(ctx context.Context, req *http.Request) (*http.Response, error)
	// Deliver sends ev to one function of the live release, not through a
	// trigger, and returns the function's answer (the caller closes its
	// body). Verification uses it; so does `ferry invoke`.
	Deliver(ctx context.Context, function string, ev *Event) (*http.Response, error)
}

// Status is what an environment runs.
type Status struct {
	Environment string
	// Release is the id (digest) of the live release; empty when none.
	Release   string
	Functions []FunctionStatus
}

// FunctionStatus is one function of the live release.
type FunctionStatus struct {
	Name  string
	Image string
	URL   string
	// State is starting, running, restarting, idle (scaled to zero),
	// stopped or failed.
	State    string
	Restarts int
	// Message says why, when the state is not running.
	Message string
}
