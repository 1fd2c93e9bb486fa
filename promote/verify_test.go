package promote

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/ferrycd/ferry/environments"
	"github.com/ferrycd/ferry/manifests/v1alpha1"
	"github.com/ferrycd/ferry/store"
)

func TestJSONPath(t *testing.T) {
	var doc any
	check(t, json.Unmarshal([]byte(`{"a": {"b": [10, {"c d": true}]}, "s": "x", "n": null}`), &doc))
	for path, want := range map[string]string{
		`$`:               `{"a":{"b":[10,{"c d":true}]},"n":null,"s":"x"}`,
		`$.a.b[0]`:        `10`,
		`$.a.b[1]["c d"]`: `true`,
		`$["s"]`:          `"x"`,
		`$.n`:             `null`,
	} {
		got, err := JSONPath(doc, path)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		if b, _ := json.Marshal(got); string(b) != want {
			t.Errorf("%s = %s, want %s", path, b, want)
		}
	}
	for path, msg := range map[string]string{
		`$.x`:      `$ has no field "x"`,
		`$.a.b[2]`: `$.a.b has 2 items, so [2] selects nothing`,
		`$.s.t`:    `$.s is a string, not an object, so it has no field "t"`,
		`$.a[0]`:   `$.a is an object, not an array, so [0] selects nothing`,
		`a.b`:      `"a.b" does not start with $`,
		`$.a.b[x]`: `"[x]" after $.a.b is not an index`,
		`$.a..b`:   `an empty field name after $.a`,
		`$["a"`:    `has no closing "]`,
		`$a`:       `unexpected "a" after $`,
	} {
		if _, err := JSONPath(doc, path); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%s: got %v, want an error saying %s", path, err, msg)
		}
	}
}

// TestChecks runs each kind of check against a real HTTP server standing
// for the gateway, and reads what a failure says.
func TestChecks(t *testing.T) {
	var (
		mu        sync.Mutex // the handler runs on the server's goroutines
		event     http.Header
		eventBody string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/staging/ok":
			if r.Method != http.MethodPost || r.Header.Get("X-Probe") != "1" {
				http.Error(w, "bad request", http.StatusBadRequest)
				return
			}
			w.Write([]byte(`{"status": "up", "items": [{"n": 1.0}]}`))
		case "/staging/slow":
			time.Sleep(300 * time.Millisecond)
			w.Write([]byte("late"))
		case "/staging/deliver/hello":
			mu.Lock()
			if event == nil { // the first one, with data
				event = r.Header.Clone()
				b, _ := io.ReadAll(r.Body)
				eventBody = string(b)
			}
			mu.Unlock()
			w.WriteHeader(http.StatusAccepted)
			w.Write([]byte("got it"))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	e := &engine{cfg: Config{Target: serverTarget(srv.URL), CheckInterval: 50 * time.Millisecond}}
	raw := func(s string) *runtime.RawExtension { return &runtime.RawExtension{Raw: []byte(s)} }
	ms := func(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }
	ok := &v1alpha1.HTTPCheck{Path: "/ok", Method: "POST", Headers: map[string]string{"X-Probe": "1"}, ExpectStatus: 200,
		BodyContains: "up", JSONPath: "$.items[0].n", Equals: raw("1")}
	for _, c := range []struct {
		name  string
		check v1alpha1.Check
		err   string
	}{
		{"ok", v1alpha1.Check{HTTP: ok}, ""},
		{"status", v1alpha1.Check{HTTP: &v1alpha1.HTTPCheck{Path: "/nope"}}, "GET /nope answered 404, want 200: \"404 page not found\""},
		{"contains", v1alpha1.Check{HTTP: &v1alpha1.HTTPCheck{Path: "/ok", Method: "POST", Headers: map[string]string{"X-Probe": "1"}, BodyContains: "down"}}, `the answer does not contain "down"`},
		{"jsonpath", v1alpha1.Check{HTTP: &v1alpha1.HTTPCheck{Path: "/ok", Method: "POST", Headers: map[string]string{"X-Probe": "1"}, JSONPath: "$.status", Equals: raw(`"down"`)}}, `$.status is "up", want "down"`},
		{"latency", v1alpha1.Check{HTTP: &v1alpha1.HTTPCheck{Path: "/slow", MaxLatency: ms(100 * time.Millisecond)}}, "no answer within maxLatency 100ms"},
		{"event", v1alpha1.Check{Event: &v1alpha1.EventCheck{Function: "hello", Data: raw(`{"x":1}`), ExpectStatus: 202, BodyContains: "got"}}, ""},
		{"event status", v1alpha1.Check{Event: &v1alpha1.EventCheck{Function: "hello"}}, "invoking hello answered 202, want 200"},
	} {
		err := e.check(t.Context(), "staging", c.check)
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s: got %v, want %q", c.name, err, c.err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for k, want := range map[string]string{"Ce-Specversion": "1.0", "Ce-Source": CheckEventSource, "Ce-Type": "dev.ferry.verify", "Content-Type": "application/json"} {
		if got := event.Get(k); got != want {
			t.Errorf("the event's %s is %q, want %q", k, got, want)
		}
	}
	if event.Get("Ce-Id") == "" || event.Get("Ce-Time") == "" || eventBody != `{"x":1}` {
		t.Errorf("the event: %v %q", event, eventBody)
	}

	// Soak: the checks run again until it passed; a failure names the check.
	start := time.Now()
	v, err := e.verify(t.Context(), "staging", &v1alpha1.Stage{Soak: ms(300 * time.Millisecond), Verify: []v1alpha1.Check{{Name: "up", HTTP: ok}}})
	check(t, err)
	if v.result != store.VerificationPassed || time.Since(start) < 300*time.Millisecond || !strings.Contains(v.detail, "over a soak of 300ms") {
		t.Errorf("soak: %+v after %s", v, time.Since(start))
	}
	v, err = e.verify(t.Context(), "staging", &v1alpha1.Stage{Verify: []v1alpha1.Check{{Name: "up", HTTP: ok}, {Name: "gone", HTTP: &v1alpha1.HTTPCheck{Path: "/gone"}}}})
	check(t, err)
	if v.result != store.VerificationFailed || !strings.HasPrefix(v.detail, `check "gone" failed: GET `) {
		t.Errorf("a failing check: %+v", v)
	}
	v, err = e.verify(t.Context(), "staging", &v1alpha1.Stage{})
	check(t, err)
	if v.result != store.VerificationNone {
		t.Errorf("no checks: %+v", v)
	}
}

// TestFailedCheckHidesSecrets: a function that fails on its secret
// answers with it (Python's invoker: {"error": str(exc)}); the failed
// check's reason, which is stored, shown and logged, quotes the start of
// the answer with the environment's secrets hidden.
func TestFailedCheckHidesSecrets(t *testing.T) {
	const secret = "s3cr3t-in-a-check-41bd"
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, `{"error": "invalid literal for int() with base 10: '`+secret+`'"}`)
	}))
	defer gw.Close()
	var redactedIn string
	e := &engine{cfg: Config{Target: serverTarget(gw.URL), CheckInterval: 50 * time.Millisecond, Redact: func(_ context.Context, env, text string) string {
		redactedIn = env
		return strings.ReplaceAll(text, secret, "[secret]")
	}}}
	v, err := e.verify(t.Context(), "prod", &v1alpha1.Stage{Verify: []v1alpha1.Check{{Event: &v1alpha1.EventCheck{Function: "hello"}}}})
	check(t, err)
	if v.result != store.VerificationFailed || strings.Contains(v.detail, secret) || !strings.Contains(v.detail, "[secret]") || redactedIn != "prod" {
		t.Errorf("a failed check's reason: %+v (redacted for %q)", v, redactedIn)
	}
}

// serverTarget is Config.Target for targets whose Call and Deliver reach
// the HTTP server at base, as /<env>/<path> and /<env>/deliver/<function>.
func serverTarget(base string) func(env string) (environments.Target, error) {
	return func(env string) (environments.Target, error) { return &httpTarget{base: base, env: env}, nil }
}

// httpTarget is a target with nothing to run: only Call and Deliver, as
// the Target interface says (redirects are answers, not followed).
type httpTarget struct {
	environments.Target // the rest is not called by checks
	base, env           string
}

var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func (t *httpTarget) Call(ctx context.Context, req *http.Request) (*http.Response, error) {
	out := req.Clone(ctx)
	u, err := url.Parse(t.base + "/" + t.env + req.URL.RequestURI())
	if err != nil {
		return nil, err
	}
	out.URL, out.Host, out.RequestURI = u, "", ""
	return noRedirects.Do(out)
}

func (t *httpTarget) Deliver(ctx context.Context, function string, ev *environments.Event) (*http.Response, error) {
	req, err := ev.Request(ctx, t.base+"/"+t.env+"/deliver/"+function)
	if err != nil {
		return nil, err
	}
	return noRedirects.Do(req)
}
