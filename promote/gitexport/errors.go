package gitexport

import (
	"context"
	"errors"
	"strings"
)

// errRejected marks a push the remote refused because the branch moved:
// the one failure Export retries.
var errRejected = errors.New("the branch moved since it was fetched")

// stepError is a failure talking to the remote.
type stepError struct {
	step string // fetching or pushing
	err  error
}

func (e *stepError) Error() string { return e.step + ": " + e.err.Error() }
func (e *stepError) Unwrap() error { return e.err }

// exportError is a failed export, said so that the operator knows which
// repository and environment, what went wrong and what to do.
type exportError struct {
	env, url, branch, path string
	reason                 string // what went wrong
	advice                 string // what to do; "" when there is nothing to say
	err                    error
}

func (e *exportError) Error() string {
	msg := "gitexport: exporting " + e.env + " to " + e.url + " (" + e.path + " on branch " + e.branch + "): " + e.reason
	if e.advice != "" {
		msg += "; " + e.advice
	}
	return msg
}

func (e *exportError) Unwrap() error { return e.err }

// explain turns err from an attempt into one that says what to do: what
// only an export can tell, then what gitauth knows of the transport.
func (e *Exporter) explain(ctx context.Context, ch change, err error) error {
	ee := &exportError{env: ch.env, url: e.rem.URL(), branch: e.cfg.Branch, path: ch.path, reason: oneLine(err.Error()), err: err}
	var step *stepError
	if errors.As(err, &step) {
		ee.reason = step.step + ": " + oneLine(step.err.Error())
	}
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		ee.reason = "timed out"
		ee.advice = "check that the server answers; the export is tried again with the next deployment"
	case errors.Is(ctx.Err(), context.Canceled):
		ee.reason = "cancelled"
	case step == nil:
		// A local failure (the clone, the path in the repository):
		// the reason says it.
	default:
		reason, advice, known := e.rem.Explain(err)
		msg := err.Error()
		switch {
		case known:
			ee.reason, ee.advice = reason, advice
		case step.step == "pushing" && strings.Contains(msg, "command error on"):
			ee.reason = "the server refused the push: " + oneLine(msg[strings.Index(msg, "command error on"):])
			ee.advice = "check that the branch is not protected against ferry's pushes, or give ferry a branch it may push to"
		}
	}
	return ee
}
