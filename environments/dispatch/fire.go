package dispatch

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ferrycd/ferry/environments"
)

// fireAnswerLimit is how much of an answer Fire returns: enough to show
// why a function failed.
const fireAnswerLimit = 64 << 10

// Firing is one event `ferry fire` sends: what a Kubernetes CronJob runs
// for a CronTrigger's tick.
type Firing struct {
	URL          string
	Type, Source string
	// Data is the event's data, JSON; empty sends none.
	Data []byte
	// Timeout bounds the call; 0 is the functions' default.
	Timeout time.Duration
}

// Fire sends f's event once, with a new id, and returns the answer's
// status and the start of its body. A redirect is returned, not followed;
// err is a call that got no answer.
func Fire(ctx context.Context, f Firing) (int, []byte, error) {
	if f.URL == "" || f.Type == "" || f.Source == "" {
		return 0, nil, errors.New("an event needs a URL, a type and a source")
	}
	ev := &environments.Event{ID: rand.Text(), Type: f.Type, Source: f.Source}
	if len(f.Data) > 0 {
		var buf bytes.Buffer
		if err := json.Compact(&buf, f.Data); err != nil {
			return 0, nil, fmt.Errorf("the data is not JSON: %w", err)
		}
		ev.Data, ev.ContentType = buf.Bytes(), "application/json"
	}
	timeout := f.Timeout
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return send(cctx, newClient(), f.URL, ev, fireAnswerLimit, "the function at "+f.URL, timeout)
}
