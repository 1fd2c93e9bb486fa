package embedded

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ferrycd/ferry/environments"
	"github.com/ferrycd/ferry/manifests"
	"github.com/ferrycd/ferry/manifests/v1alpha1"
)

// TestSecretsKeptOutOfTheLog: a function that fails on a secret's value
// says the value (Python: "invalid literal for int() with base 10:
// 'VALUE'"). Its log is served to viewers and written to a file, and a
// failed start's message quotes it, and that message is stored with the
// run, answered by the API and written to ferry's own log: none may hold
// the value. A plain variable's value is not hidden.
func TestSecretsKeptOutOfTheLog(t *testing.T) {
	const secret, plain = "s3cr3t-db-port-5f1c", "plain-value-77"
	r := newReleaser(t, "python")
	r.write("hello/main.py", "import os, sys\nprint('starting with', os.environ['LEVEL'], file=sys.stderr, flush=True)\nport = int(os.environ['DB_PORT'])\n")
	loud := r.release()

	imgs, err := newImages(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	logDir := t.TempDir()
	tg, err := New(Config{Environment: "local", Images: imgs, Gateway: newGateway(), GatewayURL: "http://127.0.0.1:1", LogDir: logDir,
		Env: func(_ context.Context, f *v1alpha1.Function) (map[string]string, []string, error) {
			return map[string]string{"DB_PORT": secret, "LEVEL": plain}, []string{secret, "ab"}, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tg.Delete(context.Background()) })

	err = tg.Apply(context.Background(), loud)
	if err == nil {
		t.Fatal("a function that raises at start was applied")
	}
	msg := err.Error()
	if strings.Contains(msg, secret) || !strings.Contains(msg, "invalid literal for int() with base 10: '"+redactedSecret+"'") {
		t.Errorf("the failed start's message holds the secret, or not the redacted line:\n%s", msg)
	}
	if !strings.Contains(msg, "starting with "+plain) {
		t.Errorf("a plain value was hidden too:\n%s", msg)
	}
	lines, err := tg.Logs("hello", LogQuery{})
	if err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	for _, l := range lines {
		all.WriteString(l.Text + "\n")
	}
	file, err := os.ReadFile(filepath.Join(logDir, "local", "hello.log"))
	if err != nil {
		t.Fatal(err)
	}
	for what, text := range map[string]string{"the log's lines": all.String(), "the log file": string(file)} {
		if strings.Contains(text, secret) || !strings.Contains(text, redactedSecret) {
			t.Errorf("%s hold the secret, or no redacted line:\n%s", what, text)
		}
	}
}

func TestSecretRedactor(t *testing.T) {
	if secretRedactor(nil) != nil || secretRedactor([]string{"", "abc"}) != nil {
		t.Error("a redactor with nothing long enough to hide")
	}
	r := secretRedactor([]string{"pass", "password-long", "pass"})
	if got := r.Replace("a password-long and a pass, passpass"); got != "a [secret] and a [secret], [secret][secret]" {
		t.Errorf("redacted: %q", got)
	}
	// A key of several lines is printed a line at a time.
	r = secretRedactor([]string{"-----BEGIN KEY-----\r\nMIIEvQIBADANBgkq\nhkiG9w0BAQEFAASC\nab\n-----END KEY-----\n"})
	for _, line := range []string{"MIIEvQIBADANBgkq", "key: hkiG9w0BAQEFAASC", "-----END KEY-----"} {
		if got := r.Replace(line); strings.ContainsAny(got, "MhE") {
			t.Errorf("a line of a key: %q redacted to %q", line, got)
		}
	}
}

// secretAnswer is a function that fails on its secret and says it in its
// answer, as Python's invoker answers {"error": str(exc)}.
type secretAnswer struct {
	url      string
	redactor *strings.Replacer
}

func (s *secretAnswer) acquire(context.Context) (string, bool, func(), error) {
	return s.url, false, func() {}, nil
}

func (s *secretAnswer) redact(text string) string {
	if s.redactor == nil {
		return text
	}
	return s.redactor.Replace(text)
}

// TestTriggerFailureHidesSecrets: a trigger's failed call is logged by
// ferry with the start of the function's answer; a secret in it is not.
func TestTriggerFailureHidesSecrets(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-in-an-answer-9d2e"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, `{"error": "invalid literal for int() with base 10: '`+secret+`'"}`)
	}))
	t.Cleanup(srv.Close)
	tr, l := newTestTriggers(t, "")
	set := &manifests.Set{
		Functions:    []*v1alpha1.Function{testFunction("report", nil)},
		CronTriggers: []*v1alpha1.CronTrigger{testCronTrigger("nightly", "report", "@every 1s", `{}`)},
	}
	b := &secretAnswer{url: srv.URL, redactor: secretRedactor([]string{secret})}
	if err := tr.apply(t.Context(), set, map[string]backend{"report": b}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, hang, "a failed tick logged", func() bool { return strings.Contains(l.String(), "answered 500") })
	if s := l.String(); strings.Contains(s, secret) || !strings.Contains(s, "base 10: '"+redactedSecret+"'") {
		t.Errorf("the log of a failed tick holds the secret, or not the answer redacted:\n%s", s)
	}
}

// TestTriggerDoesNotFollowRedirects: a function answers its trigger's
// event with 307 to a URL of the host's network; ferry must not send the
// event there (its data is the repository's), and counts the call failed.
func TestTriggerDoesNotFollowRedirects(t *testing.T) {
	t.Parallel()
	var reached atomic.Int32
	inside := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
	}))
	t.Cleanup(inside.Close)
	fn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, inside.URL+"/containers/create", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(fn.Close)
	tr, l := newTestTriggers(t, "")
	set := &manifests.Set{
		Functions:    []*v1alpha1.Function{testFunction("report", nil)},
		CronTriggers: []*v1alpha1.CronTrigger{testCronTrigger("nightly", "report", "@every 1s", `{"Image": "alpine"}`)},
	}
	if err := tr.apply(t.Context(), set, map[string]backend{"report": &secretAnswer{url: fn.URL, redactor: secretRedactor(nil)}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, hang, "a failed tick logged, or the redirect followed", func() bool {
		return strings.Contains(l.String(), "tick: failed") || reached.Load() > 0
	})
	if n := reached.Load(); n != 0 || !strings.Contains(l.String(), "answered 307") {
		t.Errorf("the redirect was followed %d times; the log:\n%s", n, l.String())
	}
}

// TestCallDoesNotFollowRedirects: ferry invoke without a server (ferry
// run's gateway) shows a function's redirect, and sends its data nowhere
// else.
func TestCallDoesNotFollowRedirects(t *testing.T) {
	t.Parallel()
	var reached atomic.Int32
	inside := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached.Add(1) }))
	t.Cleanup(inside.Close)
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, inside.URL+"/admin", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(gw.Close)
	status, _, err := Invoke(t.Context(), gw.URL, "local", "hello", []byte(`{"n":1}`))
	if err != nil || status != http.StatusTemporaryRedirect || reached.Load() != 0 {
		t.Errorf("a redirecting function: %d %v, followed %d times; want its 307, not followed", status, err, reached.Load())
	}
}

// TestTargetCallDoesNotFollowRedirects: verification calls a function
// through Target.Call and Deliver and quotes the answer; a function that
// redirects to a URL of the host's network must be answered by its
// redirect, never by what it points to.
func TestTargetCallDoesNotFollowRedirects(t *testing.T) {
	t.Parallel()
	var reached atomic.Int32
	inside := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		io.WriteString(w, `{"AccessKeyId": "AKIA-host-only-credential"}`)
	}))
	t.Cleanup(inside.Close)
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, inside.URL+"/latest/meta-data/iam", http.StatusFound)
	}))
	t.Cleanup(gw.Close)
	h, err := NewHost(HostConfig{DataDir: t.TempDir(), GatewayURL: gw.URL})
	if err != nil {
		t.Fatal(err)
	}
	tg, err := h.Target("dev", EnvironmentConfig{})
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodGet, "/hello", nil)
	if err != nil {
		t.Fatal(err)
	}
	call, err := tg.Call(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	call.Body.Close()
	deliver, err := tg.Deliver(t.Context(), "hello", &environments.Event{ID: "1", Source: "/test", Type: "test"})
	if err != nil {
		t.Fatal(err)
	}
	deliver.Body.Close()
	if call.StatusCode != http.StatusFound || deliver.StatusCode != http.StatusFound || reached.Load() != 0 {
		t.Errorf("a redirecting function: Call %d, Deliver %d, followed %d times; want its 302, not followed", call.StatusCode, deliver.StatusCode, reached.Load())
	}
}
