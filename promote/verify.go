package promote

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/ferrycd/ferry/environments"
	"github.com/ferrycd/ferry/internal/words"
	"github.com/ferrycd/ferry/manifests"
	"github.com/ferrycd/ferry/manifests/v1alpha1"
	"github.com/ferrycd/ferry/store"
)

// Verification checks: what an event check sends.
const (
	// CheckEventSource is the ce-source of a verification event.
	CheckEventSource = "/ferry/verify"
	// maxCheckBody bounds the answer a check reads.
	maxCheckBody = 1 << 20
)

// verdict is what a stage's checks found.
type verdict struct {
	result string // store.VerificationPassed, VerificationNone or VerificationFailed
	detail string
}

// verify runs the stage's checks once right away and then every
// CheckInterval until the soak has passed; the first failure ends it,
// naming the check and what it saw. The soak is timed from now: after a
// restart it starts again, as the functions started again too. The error
// is ctx's only.
func (e *engine) verify(ctx context.Context, env string, stage *v1alpha1.Stage) (verdict, error) {
	if stage == nil || len(stage.Verify) == 0 {
		return verdict{result: store.VerificationNone, detail: "deployed; the stage has no checks"}, nil
	}
	var soak time.Duration
	if stage.Soak != nil {
		soak = stage.Soak.Duration
	}
	start := time.Now()
	end := start.Add(soak)
	for round := 1; ; round++ {
		for i, c := range stage.Verify {
			if err := e.check(ctx, env, c); err != nil {
				if ctx.Err() != nil {
					return verdict{}, ctx.Err()
				}
				when := ""
				if round > 1 {
					when = fmt.Sprintf(" after %s of soak", time.Since(start).Round(time.Millisecond))
				}
				detail := fmt.Sprintf("check %q failed%s: %v", checkName(c, i), when, err)
				if e.cfg.Redact != nil {
					detail = e.cfg.Redact(ctx, env, detail)
				}
				return verdict{result: store.VerificationFailed, detail: detail}, nil
			}
		}
		left := time.Until(end)
		if left <= 0 {
			detail := "verified: " + words.Count(len(stage.Verify), "check") + " passed"
			if soak > 0 {
				detail += fmt.Sprintf(", %s over a soak of %s", words.Count(round, "round"), soak)
			}
			return verdict{result: store.VerificationPassed, detail: detail}, nil
		}
		t := time.NewTimer(min(left, e.cfg.CheckInterval))
		select {
		case <-ctx.Done():
			t.Stop()
			return verdict{}, ctx.Err()
		case <-t.C:
		}
	}
}

func checkName(c v1alpha1.Check, i int) string {
	switch {
	case c.Name != "":
		return c.Name
	case c.HTTP != nil:
		return "http " + c.HTTP.Path
	case c.Event != nil:
		return "event " + c.Event.Function
	}
	return fmt.Sprintf("check %d", i+1)
}

// check runs one check against env, through env's target: HTTP checks as
// a client of its HTTP triggers, event checks straight to a function.
// Whatever the target, a function's redirect is its answer (Target.Call
// and Deliver do not follow it): followed, it would have ferry fetch any
// URL of its network and quote the answer in the verification's reason,
// for whoever pushed the function to read.
func (e *engine) check(ctx context.Context, env string, c v1alpha1.Check) error {
	t, err := e.cfg.Target(env)
	if err != nil {
		return fmt.Errorf("environment %s: %w", env, err)
	}
	switch {
	case c.HTTP != nil:
		return httpCheck(ctx, t, c.HTTP)
	case c.Event != nil:
		return eventCheck(ctx, t, c.Event)
	}
	return errors.New("the check says nothing to check")
}

// httpCheck requests a path as a client of the environment would: the
// status, the body and the latency must be as the check says.
func httpCheck(ctx context.Context, t environments.Target, h *v1alpha1.HTTPCheck) error {
	method := h.Method
	if method == "" {
		method = http.MethodGet
	}
	timeout := DefaultCheckTimeout
	if h.MaxLatency != nil && h.MaxLatency.Duration > 0 {
		timeout = h.MaxLatency.Duration
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	path := h.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	what := method + " " + path
	req, err := http.NewRequestWithContext(ctx, method, path, strings.NewReader(h.Body))
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	for k, v := range h.Headers {
		req.Header.Set(k, v)
	}
	start := time.Now()
	status, body, err := read(t.Call(ctx, req))
	took := time.Since(start)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && h.MaxLatency != nil {
			return fmt.Errorf("%s: no answer within maxLatency %s", what, h.MaxLatency.Duration)
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("%s: no answer within %s; give the check a maxLatency for a longer wait", what, timeout)
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := expect(what, status, body, h.ExpectStatus, h.BodyContains); err != nil {
		return err
	}
	if h.JSONPath != "" {
		want := []byte("null")
		if h.Equals != nil && len(h.Equals.Raw) > 0 {
			want = h.Equals.Raw
		}
		if err := jsonEquals(body, h.JSONPath, want); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	if h.MaxLatency != nil && took > h.MaxLatency.Duration {
		return fmt.Errorf("%s answered in %s, more than maxLatency %s", what, took.Round(time.Millisecond), h.MaxLatency.Duration)
	}
	return nil
}

// eventCheck sends a function a CloudEvent, as `ferry invoke` does.
func eventCheck(ctx context.Context, t environments.Target, ev *v1alpha1.EventCheck) error {
	ctx, cancel := context.WithTimeout(ctx, DefaultCheckTimeout)
	defer cancel()
	typ := ev.Type
	if typ == "" {
		typ = manifests.DefaultCheckEventType
	}
	event := &environments.Event{ID: eventID(), Source: CheckEventSource, Type: typ}
	if ev.Data != nil && len(ev.Data.Raw) > 0 {
		event.Data, event.ContentType = ev.Data.Raw, "application/json"
	}
	status, body, err := read(t.Deliver(ctx, ev.Function, event))
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("invoking %s: no answer within %s", ev.Function, DefaultCheckTimeout)
	}
	if err != nil {
		return fmt.Errorf("invoking %s: %w", ev.Function, err)
	}
	return expect("invoking "+ev.Function, status, body, ev.ExpectStatus, ev.BodyContains)
}

// read reads an answer's status and the start of its body, and closes it.
func read(resp *http.Response, err error) (int, []byte, error) {
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxCheckBody))
	return resp.StatusCode, body, err
}

// expect checks an answer's status (200 when want is 0) and body.
func expect(what string, status int, body []byte, want int32, contains string) error {
	if want == 0 {
		want = http.StatusOK
	}
	if status != int(want) {
		return fmt.Errorf("%s answered %d, want %d: %s", what, status, want, snippet(body))
	}
	if contains != "" && !bytes.Contains(body, []byte(contains)) {
		return fmt.Errorf("%s: the answer does not contain %q: %s", what, contains, snippet(body))
	}
	return nil
}

// snippet is the start of a body, quoted, for a message.
func snippet(body []byte) string {
	const max = 200
	s := strings.TrimSpace(string(body))
	if len(s) > max {
		s = s[:max] + "…"
	}
	return strconv.Quote(s)
}

func eventID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// jsonEquals evaluates path in the JSON body and compares what it selects
// with want, as JSON values (1 and 1.0 are equal, key order does not
// matter).
func jsonEquals(body []byte, path string, raw []byte) error {
	var doc any
	if err := json.Unmarshal(body, &doc); err != nil {
		return fmt.Errorf("the answer is not JSON, so %s selects nothing: %s", path, snippet(body))
	}
	got, err := JSONPath(doc, path)
	if err != nil {
		return err
	}
	var w any
	if err := json.Unmarshal(raw, &w); err != nil {
		return fmt.Errorf("equals is not a JSON value: %w", err)
	}
	if !reflect.DeepEqual(got, w) {
		g, _ := json.Marshal(got)
		return fmt.Errorf("%s is %s, want %s", path, g, raw)
	}
	return nil
}

// JSONPath selects a value of a decoded JSON document (as encoding/json
// decodes into any) with the subset of JSONPath the manifests accept: $
// followed by steps .name, ["name"] and [index], such as
// $.items[0]["first name"]. It says which step found nothing.
func JSONPath(doc any, path string) (any, error) {
	rest, ok := strings.CutPrefix(path, "$")
	if !ok {
		return nil, fmt.Errorf("%q does not start with $", path)
	}
	cur, at := doc, "$"
	for rest != "" {
		var key string
		index := -1
		switch {
		case rest[0] == '.':
			end := strings.IndexAny(rest[1:], ".[")
			if end < 0 {
				end = len(rest) - 1
			}
			key, rest = rest[1:1+end], rest[1+end:]
			if key == "" {
				return nil, fmt.Errorf("%q: an empty field name after %s", path, at)
			}
		case strings.HasPrefix(rest, `["`):
			end := strings.Index(rest[2:], `"]`)
			if end < 0 {
				return nil, fmt.Errorf("%q: [\" after %s has no closing \"]", path, at)
			}
			key, rest = rest[2:2+end], rest[4+end:]
		case rest[0] == '[':
			end := strings.IndexByte(rest, ']')
			if end < 0 {
				return nil, fmt.Errorf("%q: [ after %s has no closing ]", path, at)
			}
			n, err := strconv.Atoi(rest[1:end])
			if err != nil || n < 0 {
				return nil, fmt.Errorf("%q: %q after %s is not an index", path, rest[:end+1], at)
			}
			index, rest = n, rest[end+1:]
		default:
			return nil, fmt.Errorf("%q: unexpected %q after %s; use .name, [\"name\"] or [index]", path, rest, at)
		}
		if index >= 0 {
			arr, ok := cur.([]any)
			if !ok {
				return nil, fmt.Errorf("%s is %s, not an array, so [%d] selects nothing", at, kindOf(cur), index)
			}
			if index >= len(arr) {
				return nil, fmt.Errorf("%s has %d items, so [%d] selects nothing", at, len(arr), index)
			}
			cur, at = arr[index], fmt.Sprintf("%s[%d]", at, index)
			continue
		}
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s is %s, not an object, so it has no field %q", at, kindOf(cur), key)
		}
		v, ok := obj[key]
		if !ok {
			return nil, fmt.Errorf("%s has no field %q", at, key)
		}
		cur, at = v, at+"."+key
	}
	return cur, nil
}

func kindOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case string:
		return "a string"
	case float64:
		return "a number"
	case bool:
		return "a boolean"
	}
	return fmt.Sprintf("%T", v)
}
