package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrycd/ferry/store"
)

// The secret of GitHub's documented example, and its test vector:
// https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries
const (
	testSecret       = "It's a Secret to Everybody"
	githubDocPayload = "Hello, World!"
	githubDocSig     = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
)

// Commits of the test payloads. Nothing may ever pass them on.
const (
	beforeSHA = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
	afterSHA  = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"
	headSHA   = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
)

var testSources = map[string]WebhookSource{
	"app":      {Name: "app", URL: "https://github.com/octo-org/app.git", Branch: "main", Secret: testSecret},
	"other":    {Name: "other", URL: "https://github.com/octo-org/other.git", Branch: "main", Secret: testSecret},
	"nosecret": {Name: "nosecret", URL: "https://github.com/octo-org/nosecret.git", Branch: "main"},
	// No branch: the repository's default branch is watched.
	"default": {Name: "default", URL: "https://github.com/octo-org/default.git", Secret: testSecret},
}

// hookEnv is the webhook handler behind a real HTTP server configured by
// NewHTTPServer, with a recorder in place of the watcher.
type hookEnv struct {
	t     *testing.T
	url   string
	http  *http.Client
	clock *fakeClock

	mu    sync.Mutex
	syncs []string
	logs  []string
}

func newHookEnv(t *testing.T) *hookEnv { return newHookEnvWith(t, nil) }

// newHookEnvWith is newHookEnv with deliveries remembered in d (nil: in
// memory).
func newHookEnvWith(t *testing.T, d DeliveryLog) *hookEnv {
	t.Helper()
	return newHookEnvAdjusted(t, d, nil)
}

// newHookEnvAdjusted is newHookEnvWith with the configuration changed by
// adjust (nil: as is) before the handler is made.
func newHookEnvAdjusted(t *testing.T, d DeliveryLog, adjust func(*WebhookConfig)) *hookEnv {
	t.Helper()
	env := &hookEnv{t: t, clock: &fakeClock{}}
	cfg := WebhookConfig{
		Source: func(_ context.Context, name string) (WebhookSource, bool) {
			src, ok := testSources[name]
			return src, ok
		},
		Sync: func(name string) {
			env.mu.Lock()
			defer env.mu.Unlock()
			env.syncs = append(env.syncs, name)
		},
		Log: func(format string, args ...any) {
			env.mu.Lock()
			defer env.mu.Unlock()
			env.logs = append(env.logs, fmt.Sprintf(format, args...))
		},
		Now:        env.clock.now,
		Deliveries: d,
	}
	if adjust != nil {
		adjust(&cfg)
	}
	h := NewWebhooks(cfg)
	srv := httptest.NewUnstartedServer(h)
	srv.Config = NewHTTPServer("", h)
	srv.Start()
	t.Cleanup(srv.Close)
	env.url, env.http = srv.URL, srv.Client()
	return env
}

func (env *hookEnv) synced() []string {
	env.mu.Lock()
	defer env.mu.Unlock()
	return append([]string(nil), env.syncs...)
}

func (env *hookEnv) logged() string {
	env.mu.Lock()
	defer env.mu.Unlock()
	return strings.Join(env.logs, "\n")
}

func (env *hookEnv) wantSyncs(want ...string) {
	env.t.Helper()
	if got := env.synced(); !slices.Equal(got, want) {
		env.t.Fatalf("Sync calls = %q, want %q", got, want)
	}
}

// answer is a decoded response.
type answer struct {
	status int
	header http.Header
	body   string
	reply  map[string]any
}

func (env *hookEnv) do(req *http.Request) answer {
	env.t.Helper()
	res, err := env.http.Do(req)
	if err != nil {
		env.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		env.t.Fatalf("reading the answer to %s: %v", req.URL.Path, err)
	}
	a := answer{status: res.StatusCode, header: res.Header, body: string(body)}
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		env.t.Fatalf("%s answered %d with Content-Type %q, want application/json: %s", req.URL.Path, a.status, ct, body)
	}
	if err := json.Unmarshal(body, &a.reply); err != nil {
		env.t.Fatalf("%s answered %d with a body that is not a JSON object: %v: %s", req.URL.Path, a.status, err, body)
	}
	return a
}

func (a answer) want(t *testing.T, status int) answer {
	t.Helper()
	if a.status != status {
		t.Fatalf("status %d, want %d: %s", a.status, status, a.body)
	}
	if status >= 400 {
		if msg, _ := a.reply["error"].(string); msg == "" {
			t.Fatalf("error answer has no error message: %s", a.body)
		}
	} else if a.reply["ok"] != true {
		t.Fatalf(`answer lacks "ok": true: %s`, a.body)
	}
	return a
}

func (a answer) errorMessage() string { s, _ := a.reply["error"].(string); return s }

func hmacHex(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// githubRequest is a delivery with the headers GitHub documents, signed
// with secret ("" for no signature headers at all, as GitHub sends when the
// hook has no secret).
func (env *hookEnv) githubRequest(source, event, delivery string, body []byte, secret string) *http.Request {
	env.t.Helper()
	req, err := http.NewRequest(http.MethodPost, env.url+"/hooks/github/"+source, bytes.NewReader(body))
	if err != nil {
		env.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "GitHub-Hookshot/044aadd")
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-GitHub-Delivery", delivery)
	req.Header.Set("X-GitHub-Hook-ID", "292430182")
	req.Header.Set("X-GitHub-Hook-Installation-Target-ID", "79929171")
	req.Header.Set("X-GitHub-Hook-Installation-Target-Type", "repository")
	if secret != "" {
		mac := hmac.New(sha1.New, []byte(secret))
		mac.Write(body)
		req.Header.Set("X-Hub-Signature", "sha1="+hex.EncodeToString(mac.Sum(nil)))
		req.Header.Set("X-Hub-Signature-256", hmacHex(secret, body))
	}
	return req
}

// githubPush is a push payload as GitHub sends it, trimmed of fields no
// test reads but with those a receiver might be tempted to trust.
func githubPush(ref string, deleted bool) []byte {
	after := afterSHA
	if deleted {
		after = "0000000000000000000000000000000000000000"
	}
	return []byte(fmt.Sprintf(`{
  "ref": %q,
  "before": %q,
  "after": %q,
  "created": false,
  "deleted": %t,
  "forced": false,
  "base_ref": null,
  "compare": "https://github.com/octo-org/app/compare/6113728f27ae...0d1a26e67d8f",
  "commits": [
    {
      "id": %q,
      "tree_id": "f9d2a07e9488b91af2641b26b9407fe22a451433",
      "distinct": true,
      "message": "Update handler.go",
      "timestamp": "2026-03-01T12:00:00+01:00",
      "url": "https://github.com/octo-org/app/commit/0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
      "author": {"name": "Monalisa Octocat", "email": "mona@github.com", "username": "octocat"},
      "added": [], "removed": [], "modified": ["hello/handler.go"]
    }
  ],
  "head_commit": {"id": %q, "message": "Update handler.go"},
  "repository": {
    "id": 186853002,
    "node_id": "MDEwOlJlcG9zaXRvcnkxODY4NTMwMDI=",
    "name": "app",
    "full_name": "octo-org/app",
    "private": false,
    "clone_url": "https://github.com/octo-org/app.git",
    "default_branch": "main"
  },
  "pusher": {"name": "octocat", "email": "mona@github.com"},
  "sender": {"login": "octocat", "id": 583231, "type": "User"}
}`, ref, beforeSHA, after, deleted, afterSHA, afterSHA))
}

func githubPullRequest(action string, number int) []byte {
	return []byte(fmt.Sprintf(`{
  "action": %q,
  "number": %d,
  "pull_request": {
    "url": "https://api.github.com/repos/octo-org/app/pulls/%d",
    "number": %d,
    "state": "open",
    "title": "Say hello in French",
    "head": {"label": "octocat:bonjour", "ref": "bonjour", "sha": %q},
    "base": {"label": "octo-org:main", "ref": "main", "sha": %q},
    "merged": false
  },
  "repository": {"id": 186853002, "name": "app", "full_name": "octo-org/app", "default_branch": "main"},
  "sender": {"login": "octocat", "id": 583231, "type": "User"}
}`, action, number, number, number, headSHA, beforeSHA))
}

func TestGitHubSignatureMatchesGitHubsTestVector(t *testing.T) {
	h := http.Header{"X-Hub-Signature-256": {githubDocSig}}
	if !githubHooks.verify(h, []byte(githubDocPayload), testSecret) {
		t.Fatal("the signature GitHub documents for its example does not verify")
	}
	if githubHooks.verify(h, []byte(githubDocPayload+"\n"), testSecret) {
		t.Fatal("the documented signature verifies a different body")
	}
}

func TestGitHubPushSyncsOnce(t *testing.T) {
	env := newHookEnv(t)
	a := env.do(env.githubRequest("app", "push", "72d3162e-cc78-11e3-81ab-4c9367dc0958", githubPush("refs/heads/main", false), testSecret)).
		want(t, http.StatusAccepted)

	env.wantSyncs("app")
	for k, want := range map[string]any{"event": "push", "source": "app", "delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958", "sync": "requested"} {
		if a.reply[k] != want {
			t.Errorf("answer %s = %v, want %v: %s", k, a.reply[k], want, a.body)
		}
	}
}

// The commit always comes from Git: Sync takes nothing but the source's
// name, and nothing of the payload's commits comes back out.
func TestPayloadCommitIsNeverUsed(t *testing.T) {
	want := reflect.TypeFor[func(string)]()
	if got := reflect.TypeOf(WebhookConfig{}.Sync); got != want {
		t.Fatalf("WebhookConfig.Sync is %v, want %v: a webhook must not be able to say what to build", got, want)
	}

	env := newHookEnv(t)
	answers := []answer{
		env.do(env.githubRequest("app", "push", "d1", githubPush("refs/heads/main", false), testSecret)).want(t, http.StatusAccepted),
		env.do(env.githubRequest("app", "pull_request", "d2", githubPullRequest("synchronize", 2), testSecret)).want(t, http.StatusAccepted),
	}
	env.wantSyncs("app", "app")
	for _, a := range answers {
		for _, sha := range []string{beforeSHA, afterSHA, headSHA} {
			if strings.Contains(a.body, sha) {
				t.Errorf("answer repeats the payload's commit %s: %s", sha, a.body)
			}
		}
	}
	for _, sha := range []string{beforeSHA, afterSHA, headSHA} {
		if strings.Contains(env.logged(), sha) {
			t.Errorf("log repeats the payload's commit %s:\n%s", sha, env.logged())
		}
	}
}

func TestGitHubForgedDeliveriesAreRefused(t *testing.T) {
	env := newHookEnv(t)
	body := githubPush("refs/heads/main", false)
	tampered := githubPush("refs/heads/feature", false)
	good := hmacHex(testSecret, body)

	cases := []struct {
		name string
		edit func(*http.Request)
	}{
		{"no signature", func(r *http.Request) { r.Header.Del("X-Hub-Signature-256") }},
		{"wrong secret", func(r *http.Request) { r.Header.Set("X-Hub-Signature-256", hmacHex("guessed", body)) }},
		{"empty secret", func(r *http.Request) { r.Header.Set("X-Hub-Signature-256", hmacHex("", body)) }},
		{"signature of another body", func(r *http.Request) {
			r.Header.Set("X-Hub-Signature-256", hmacHex(testSecret, tampered))
		}},
		{"sha1 only", func(r *http.Request) { r.Header.Del("X-Hub-Signature-256") }},
		{"no prefix", func(r *http.Request) { r.Header.Set("X-Hub-Signature-256", strings.TrimPrefix(good, "sha256=")) }},
		{"other prefix", func(r *http.Request) {
			r.Header.Set("X-Hub-Signature-256", "sha512="+strings.TrimPrefix(good, "sha256="))
		}},
		{"not hex", func(r *http.Request) { r.Header.Set("X-Hub-Signature-256", "sha256=zz"+good[9:]) }},
		{"truncated", func(r *http.Request) { r.Header.Set("X-Hub-Signature-256", good[:len(good)-2]) }},
		{"upper-case prefix", func(r *http.Request) { r.Header.Set("X-Hub-Signature-256", "SHA256="+good[7:]) }},
	}
	var message string
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := env.githubRequest("app", "push", "forged-"+c.name, body, testSecret)
			c.edit(req)
			a := env.do(req).want(t, http.StatusUnauthorized)
			// One message for every way of failing, so a prober learns nothing.
			if message == "" {
				message = a.errorMessage()
			} else if a.errorMessage() != message {
				t.Errorf("message %q differs from %q", a.errorMessage(), message)
			}
		})
	}
	if !strings.Contains(message, "does not match") {
		t.Errorf("message %q does not say the signature does not match", message)
	}
	env.wantSyncs()
	if strings.Contains(env.logged(), testSecret) {
		t.Fatalf("the log shows the secret:\n%s", env.logged())
	}

	// A forged delivery must not poison its id: the genuine one still syncs.
	req := env.githubRequest("app", "push", "forged-wrong secret", body, testSecret)
	env.do(req).want(t, http.StatusAccepted)
	env.wantSyncs("app")
}

func TestSecretlessSourceRefusesEveryDelivery(t *testing.T) {
	env := newHookEnv(t)
	body := githubPush("refs/heads/main", false)

	unsigned := env.githubRequest("nosecret", "push", "n1", body, "")
	signedEmpty := env.githubRequest("nosecret", "push", "n2", body, "")
	signedEmpty.Header.Set("X-Hub-Signature-256", hmacHex("", body))
	ping := env.githubRequest("nosecret", "ping", "n3", []byte(`{"zen":"Keep it logically awesome.","hook_id":292430182}`), "")
	gitlab := env.gitlabRequest("nosecret", "Push Hook", gitlabPush("refs/heads/main", afterSHA), "")
	generic := env.genericRequest("nosecret", "n4", nil, "")
	generic.Header.Set("X-Ferry-Signature-256", hmacHex("", nil))

	for _, req := range []*http.Request{unsigned, signedEmpty, ping, gitlab, generic} {
		a := env.do(req).want(t, http.StatusUnauthorized)
		if !strings.Contains(a.errorMessage(), "set webhookSecret") {
			t.Errorf("%s: message %q does not say to set webhookSecret", req.URL.Path, a.errorMessage())
		}
	}
	env.wantSyncs()
}

// paddedPush is a signed-able push to main of exactly n bytes.
func paddedPush(t *testing.T, n int) []byte {
	head := `{"ref":"refs/heads/main","deleted":false,"pad":"`
	tail := `"}`
	if n < len(head)+len(tail) {
		t.Fatalf("cannot pad a push to %d bytes", n)
	}
	return []byte(head + strings.Repeat("x", n-len(head)-len(tail)) + tail)
}

func TestOversizedBodyIsRefused(t *testing.T) {
	env := newHookEnv(t)

	t.Run("exactly the limit is accepted", func(t *testing.T) {
		body := paddedPush(t, maxWebhookBody)
		env.do(env.githubRequest("app", "push", "at-limit", body, testSecret)).want(t, http.StatusAccepted)
	})

	t.Run("chunked", func(t *testing.T) {
		body := paddedPush(t, maxWebhookBody+1)
		req := env.githubRequest("app", "push", "chunked", nil, testSecret)
		req.Header.Set("X-Hub-Signature-256", hmacHex(testSecret, body))
		// A reader of unknown length makes the client send it chunked.
		req.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body)))
		req.ContentLength = -1
		req.GetBody = nil
		a := env.do(req).want(t, http.StatusRequestEntityTooLarge)
		if !strings.Contains(a.errorMessage(), "limit") {
			t.Errorf("message %q does not name the limit", a.errorMessage())
		}
	})

	// Content-Length announces it: the answer comes before a byte of the
	// body is sent, which only a raw connection can show.
	t.Run("Content-Length", func(t *testing.T) {
		conn, err := net.Dial("tcp", strings.TrimPrefix(env.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "POST /hooks/github/app HTTP/1.1\r\nHost: ferry.example\r\n"+
			"Content-Type: application/json\r\nX-GitHub-Event: push\r\nX-GitHub-Delivery: announced\r\n"+
			"X-Hub-Signature-256: %s\r\nContent-Length: %d\r\n\r\n", hmacHex(testSecret, nil), maxWebhookBody+1)
		conn.SetReadDeadline(time.Now().Add(30 * time.Second)) // a hang bound: the body never comes
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("no answer before the body was sent: %v", err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("status %d, want 413", res.StatusCode)
		}
	})
	env.wantSyncs("app") // only the one at the limit
}

func TestMalformedPayloadWithValidSignature(t *testing.T) {
	env := newHookEnv(t)
	cases := map[string]*http.Request{
		"github push":          env.githubRequest("app", "push", "m1", []byte(`{"ref": "refs/heads/main",`), testSecret),
		"github pull_request":  env.githubRequest("app", "pull_request", "m2", []byte(`{"action": 7}`), testSecret),
		"github not an object": env.githubRequest("app", "push", "m3", []byte(`["refs/heads/main"]`), testSecret),
		"github empty":         env.githubRequest("app", "push", "m4", nil, testSecret),
		"gitlab push":          env.gitlabRequest("app", "Push Hook", []byte(`{"ref":`), testSecret),
		"gitlab merge request": env.gitlabRequest("app", "Merge Request Hook", []byte(`<xml/>`), testSecret),
		"generic":              env.genericRequest("app", "m5", []byte(`ref=main`), testSecret),
	}
	form := url.Values{"payload": {`{"ref": `}}.Encode()
	cases["github form"] = env.githubRequest("app", "push", "m6", []byte(form), testSecret)
	cases["github form"].Header.Set("Content-Type", "application/x-www-form-urlencoded")
	noPayload := url.Values{"ref": {"refs/heads/main"}}.Encode()
	cases["github form without payload"] = env.githubRequest("app", "push", "m7", []byte(noPayload), testSecret)
	cases["github form without payload"].Header.Set("Content-Type", "application/x-www-form-urlencoded")

	for name, req := range cases {
		t.Run(name, func(t *testing.T) { env.do(req).want(t, http.StatusBadRequest) })
	}
	env.wantSyncs()

	// A content type GitHub never sends is named as such.
	req := env.githubRequest("app", "push", "m8", githubPush("refs/heads/main", false), testSecret)
	req.Header.Set("Content-Type", "text/plain")
	a := env.do(req).want(t, http.StatusUnsupportedMediaType)
	if !strings.Contains(a.errorMessage(), "application/json") {
		t.Errorf("message %q does not say which content type to set", a.errorMessage())
	}
	env.wantSyncs()
}

func TestReplayedDeliveryIsIdempotent(t *testing.T) {
	env := newHookEnv(t)
	const id = "4a8e6d3c-1f2b-11f0-9a7e-2b1c3d4e5f60"
	body := githubPush("refs/heads/main", false)

	env.do(env.githubRequest("app", "push", id, body, testSecret)).want(t, http.StatusAccepted)
	a := env.do(env.githubRequest("app", "push", id, body, testSecret)).want(t, http.StatusOK)
	if a.reply["duplicate"] != true {
		t.Fatalf(`replay answer lacks "duplicate": true: %s`, a.body)
	}
	env.wantSyncs("app")

	// Ids are per source: the same id for another source is its own delivery.
	env.do(env.githubRequest("other", "push", id, body, testSecret)).want(t, http.StatusAccepted)
	env.wantSyncs("app", "other")

	// A day after it was last seen the id is forgotten: the replay syncs
	// once more, which is a harmless extra fetch.
	env.clock.advance(defaultDeliveryTTL)
	env.do(env.githubRequest("app", "push", id, body, testSecret)).want(t, http.StatusAccepted)
	env.wantSyncs("app", "other", "app")
}

func TestConcurrentIdenticalDeliveriesSyncOnce(t *testing.T) {
	env := newHookEnv(t)
	body := githubPush("refs/heads/main", false)
	const n = 10
	reqs := make([]*http.Request, n)
	for i := range reqs {
		reqs[i] = env.githubRequest("app", "push", "9c7b8e1a-0d2f-4e3a-b5c6-d7e8f9a0b1c2", body, testSecret)
	}

	var wg sync.WaitGroup
	var accepted, duplicates atomic.Int32
	start := make(chan struct{})
	for _, req := range reqs {
		wg.Go(func() {
			<-start
			res, err := env.http.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			defer res.Body.Close()
			var reply struct{ Duplicate bool }
			if err := json.NewDecoder(res.Body).Decode(&reply); err != nil {
				t.Error(err)
			}
			switch {
			case res.StatusCode == http.StatusAccepted:
				accepted.Add(1)
			case res.StatusCode == http.StatusOK && reply.Duplicate:
				duplicates.Add(1)
			default:
				t.Errorf("status %d, duplicate %v", res.StatusCode, reply.Duplicate)
			}
		})
	}
	close(start)
	wg.Wait()
	if accepted.Load() != 1 || duplicates.Load() != n-1 {
		t.Fatalf("%d accepted and %d duplicates, want 1 and %d", accepted.Load(), duplicates.Load(), n-1)
	}
	env.wantSyncs("app")
}

func TestGitHubPushesThatDoNotSync(t *testing.T) {
	env := newHookEnv(t)
	for _, c := range []struct {
		name, source string
		body         []byte
		ignored      string
	}{
		{"another branch", "app", githubPush("refs/heads/feature", false), "not the watched branch"},
		{"a branch that starts like the watched one", "app", githubPush("refs/heads/main-old", false), "not the watched branch"},
		{"a tag", "app", githubPush("refs/tags/main", false), "not the watched branch"},
		{"the watched branch deleted", "app", githubPush("refs/heads/main", true), "deleted"},
		{"not the default branch", "default", githubPush("refs/heads/feature", false), "not the watched branch"},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := env.do(env.githubRequest(c.source, "push", "ignored-"+c.name, c.body, testSecret)).want(t, http.StatusOK)
			if ig, _ := a.reply["ignored"].(string); !strings.Contains(ig, c.ignored) {
				t.Errorf("ignored = %q, want it to say %q", ig, c.ignored)
			}
		})
	}
	env.wantSyncs()

	// A source without a branch watches the default branch the payload names.
	env.do(env.githubRequest("default", "push", "to-default", githubPush("refs/heads/main", false), testSecret)).want(t, http.StatusAccepted)
	env.wantSyncs("default")
}

func TestGitHubFormEncodedPayload(t *testing.T) {
	env := newHookEnv(t)
	body := []byte(url.Values{"payload": {string(githubPush("refs/heads/main", false))}}.Encode())

	req := env.githubRequest("app", "push", "form-1", body, testSecret)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	env.do(req).want(t, http.StatusAccepted)
	env.wantSyncs("app")

	// The signature is over the raw form body, not the JSON inside it.
	req = env.githubRequest("app", "push", "form-2", body, testSecret)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Hub-Signature-256", hmacHex(testSecret, githubPush("refs/heads/main", false)))
	env.do(req).want(t, http.StatusUnauthorized)
	env.wantSyncs("app")
}

func TestGitHubEvents(t *testing.T) {
	env := newHookEnv(t)

	ping := []byte(`{"zen":"Design for failure.","hook_id":292430182,"hook":{"type":"Repository","id":292430182,"active":true,"events":["push","pull_request"],"config":{"content_type":"json","insecure_ssl":"0","url":"https://ferry.example/hooks/github/app"}},"repository":{"full_name":"octo-org/app"}}`)
	a := env.do(env.githubRequest("app", "ping", "ping-1", ping, testSecret)).want(t, http.StatusOK)
	if a.reply["event"] != "ping" || a.reply["ignored"] != nil || a.reply["sync"] != nil {
		t.Errorf("ping answer = %s, want ok and event ping only", a.body)
	}

	a = env.do(env.githubRequest("app", "issues", "issues-1", []byte(`{"action":"opened"}`), testSecret)).want(t, http.StatusOK)
	if a.reply["ignored"] == nil {
		t.Errorf("issues event answer does not say it was ignored: %s", a.body)
	}
	env.wantSyncs()

	for action, syncs := range map[string]bool{
		"opened": true, "reopened": true, "synchronize": true, "closed": true,
		"labeled": false, "edited": false, "assigned": false,
	} {
		t.Run("pull_request "+action, func(t *testing.T) {
			before := len(env.synced())
			req := env.githubRequest("app", "pull_request", "pr-"+action, githubPullRequest(action, 2), testSecret)
			if syncs {
				env.do(req).want(t, http.StatusAccepted)
				if len(env.synced()) != before+1 {
					t.Fatal("no sync")
				}
				if !strings.Contains(env.logged(), "pull request #2 "+action) {
					t.Errorf("log does not name the pull request and action:\n%s", env.logged())
				}
			} else {
				env.do(req).want(t, http.StatusOK)
				if len(env.synced()) != before {
					t.Fatal("synced")
				}
			}
		})
	}

	// The headers GitHub always sends are required.
	noEvent := env.githubRequest("app", "push", "no-event", githubPush("refs/heads/main", false), testSecret)
	noEvent.Header.Del("X-GitHub-Event")
	env.do(noEvent).want(t, http.StatusBadRequest)
	noID := env.githubRequest("app", "push", "", githubPush("refs/heads/main", false), testSecret)
	a = env.do(noID).want(t, http.StatusBadRequest)
	if !strings.Contains(a.errorMessage(), "X-GitHub-Delivery") {
		t.Errorf("message %q does not name the missing header", a.errorMessage())
	}
}

// gitlabRequest is a delivery with the headers GitLab 17 documents; token
// "" leaves out X-Gitlab-Token, as GitLab does for a hook without one.
func (env *hookEnv) gitlabRequest(source, event string, body []byte, token string) *http.Request {
	env.t.Helper()
	req, err := http.NewRequest(http.MethodPost, env.url+"/hooks/gitlab/"+source, bytes.NewReader(body))
	if err != nil {
		env.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "GitLab/17.11.1-ee")
	req.Header.Set("X-Gitlab-Event", event)
	req.Header.Set("X-Gitlab-Instance", "https://gitlab.example.com")
	req.Header.Set("X-Gitlab-Webhook-UUID", newUUID())
	req.Header.Set("X-Gitlab-Event-UUID", newUUID())
	req.Header.Set("Idempotency-Key", newUUID())
	if token != "" {
		req.Header.Set("X-Gitlab-Token", token)
	}
	return req
}

var uuidCounter atomic.Uint64

func newUUID() string {
	return fmt.Sprintf("00000000-0000-4000-8000-%012x", uuidCounter.Add(1))
}

func gitlabPush(ref, after string) []byte {
	return []byte(fmt.Sprintf(`{
  "object_kind": "push",
  "event_name": "push",
  "before": %q,
  "after": %q,
  "ref": %q,
  "ref_protected": true,
  "checkout_sha": %q,
  "user_id": 4,
  "user_name": "John Smith",
  "user_username": "jsmith",
  "project_id": 15,
  "project": {
    "id": 15,
    "name": "app",
    "web_url": "https://gitlab.example.com/octo-org/app",
    "git_http_url": "https://gitlab.example.com/octo-org/app.git",
    "path_with_namespace": "octo-org/app",
    "default_branch": "main"
  },
  "commits": [{"id": %q, "message": "Update handler.go", "timestamp": "2026-03-01T12:00:00+01:00", "author": {"name": "John Smith", "email": "[REDACTED]"}}],
  "total_commits_count": 1,
  "repository": {"name": "app", "url": "git@gitlab.example.com:octo-org/app.git", "homepage": "https://gitlab.example.com/octo-org/app"}
}`, beforeSHA, after, ref, after, after))
}

func TestGitLab(t *testing.T) {
	env := newHookEnv(t)

	env.do(env.gitlabRequest("app", "Push Hook", gitlabPush("refs/heads/main", afterSHA), testSecret)).want(t, http.StatusAccepted)
	env.wantSyncs("app")

	for name, token := range map[string]string{
		"wrong token":      "It's a Secret to Nobody",
		"longer token":     testSecret + "!",
		"prefix of secret": testSecret[:5],
		"no token":         "",
	} {
		t.Run(name, func(t *testing.T) {
			a := env.do(env.gitlabRequest("app", "Push Hook", gitlabPush("refs/heads/main", afterSHA), token)).want(t, http.StatusUnauthorized)
			if !strings.Contains(a.errorMessage(), "X-Gitlab-Token does not match") {
				t.Errorf("message %q", a.errorMessage())
			}
		})
	}
	env.wantSyncs("app")

	for name, body := range map[string][]byte{
		"another branch": gitlabPush("refs/heads/feature", afterSHA),
		"branch deleted": gitlabPush("refs/heads/main", "0000000000000000000000000000000000000000"),
		"a tag ref":      gitlabPush("refs/tags/v1", afterSHA),
	} {
		t.Run(name, func(t *testing.T) {
			env.do(env.gitlabRequest("app", "Push Hook", body, testSecret)).want(t, http.StatusOK)
		})
	}
	env.do(env.gitlabRequest("app", "Tag Push Hook", gitlabPush("refs/tags/v1", afterSHA), testSecret)).want(t, http.StatusOK)
	env.wantSyncs("app")

	mr := []byte(`{"object_kind":"merge_request","event_type":"merge_request","user":{"username":"jsmith"},"project":{"id":15,"path_with_namespace":"octo-org/app","default_branch":"main"},"object_attributes":{"id":99,"iid":7,"target_branch":"main","source_branch":"bonjour","state":"opened","action":"open","last_commit":{"id":"` + headSHA + `"}}}`)
	env.do(env.gitlabRequest("app", "Merge Request Hook", mr, testSecret)).want(t, http.StatusAccepted)
	env.wantSyncs("app", "app")
	if !strings.Contains(env.logged(), "merge request !7 open") {
		t.Errorf("log does not name the merge request:\n%s", env.logged())
	}

	noEvent := env.gitlabRequest("app", "", gitlabPush("refs/heads/main", afterSHA), testSecret)
	env.do(noEvent).want(t, http.StatusBadRequest)
	env.wantSyncs("app", "app")
}

// GitLab keeps Idempotency-Key when it retries a delivery and makes the
// other ids anew, so a retry is recognised by that key.
func TestGitLabRetryIsRecognisedByIdempotencyKey(t *testing.T) {
	env := newHookEnv(t)
	body := gitlabPush("refs/heads/main", afterSHA)

	first := env.gitlabRequest("app", "Push Hook", body, testSecret)
	env.do(first).want(t, http.StatusAccepted)
	retry := env.gitlabRequest("app", "Push Hook", body, testSecret)
	retry.Header.Set("Idempotency-Key", first.Header.Get("Idempotency-Key"))
	a := env.do(retry).want(t, http.StatusOK)
	if a.reply["duplicate"] != true {
		t.Fatalf("retry not recognised: %s", a.body)
	}
	env.wantSyncs("app")

	// Before GitLab 17.4 there is no Idempotency-Key; the event's id still
	// recognises a replay of the very same request.
	old := env.gitlabRequest("app", "Push Hook", body, testSecret)
	old.Header.Del("Idempotency-Key")
	replay := old.Clone(context.Background())
	replay.Body = io.NopCloser(bytes.NewReader(body))
	env.do(old).want(t, http.StatusAccepted)
	env.do(replay).want(t, http.StatusOK)
	env.wantSyncs("app", "app")
}

// genericRequest is a delivery to ferry's own endpoint signed with secret
// ("" for no signature header).
func (env *hookEnv) genericRequest(source, delivery string, body []byte, secret string) *http.Request {
	env.t.Helper()
	req, err := http.NewRequest(http.MethodPost, env.url+"/hooks/generic/"+source, bytes.NewReader(body))
	if err != nil {
		env.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if delivery != "" {
		req.Header.Set("X-Ferry-Delivery", delivery)
	}
	if secret != "" {
		req.Header.Set("X-Ferry-Signature-256", hmacHex(secret, body))
	}
	return req
}

func TestGenericHMAC(t *testing.T) {
	env := newHookEnv(t)

	env.do(env.genericRequest("app", "g1", nil, testSecret)).want(t, http.StatusAccepted)
	env.do(env.genericRequest("app", "g2", []byte(`{"ref": "refs/heads/main"}`), testSecret)).want(t, http.StatusAccepted)
	env.do(env.genericRequest("app", "g3", []byte(`{"ref": "main"}`), testSecret)).want(t, http.StatusAccepted)
	env.do(env.genericRequest("app", "g4", []byte(`{}`), testSecret)).want(t, http.StatusAccepted)
	env.do(env.genericRequest("default", "g5", []byte(`{"ref": "refs/heads/anything"}`), testSecret)).want(t, http.StatusAccepted)
	env.wantSyncs("app", "app", "app", "app", "default")

	a := env.do(env.genericRequest("app", "g6", []byte(`{"ref": "refs/heads/feature"}`), testSecret)).want(t, http.StatusOK)
	if a.reply["ignored"] == nil {
		t.Errorf("answer does not say it was ignored: %s", a.body)
	}
	env.do(env.genericRequest("app", "g1", nil, testSecret)).want(t, http.StatusOK) // replay
	env.do(env.genericRequest("app", "g7", []byte(`{"ref": "refs/heads/main"}`), "not the secret")).want(t, http.StatusUnauthorized)
	env.do(env.genericRequest("app", "g8", []byte(`{"ref": "refs/heads/main"}`), "")).want(t, http.StatusUnauthorized)
	a = env.do(env.genericRequest("app", "", nil, testSecret)).want(t, http.StatusBadRequest)
	if !strings.Contains(a.errorMessage(), "X-Ferry-Delivery") {
		t.Errorf("message %q does not name the missing header", a.errorMessage())
	}
	env.wantSyncs("app", "app", "app", "app", "default")
}

func TestMethodsAndRoutes(t *testing.T) {
	env := newHookEnv(t)
	for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
		req, _ := http.NewRequest(method, env.url+"/hooks/github/app", nil)
		a := env.do(req).want(t, http.StatusMethodNotAllowed)
		if a.header.Get("Allow") != http.MethodPost {
			t.Errorf("%s: Allow = %q, want POST", method, a.header.Get("Allow"))
		}
	}
	env.do(env.githubRequest("nobody", "push", "r1", githubPush("refs/heads/main", false), testSecret)).want(t, http.StatusNotFound)
	env.do(env.gitlabRequest("nobody", "Push Hook", gitlabPush("refs/heads/main", afterSHA), testSecret)).want(t, http.StatusNotFound)
	env.do(env.genericRequest("nobody", "r2", nil, testSecret)).want(t, http.StatusNotFound)

	for _, path := range []string{"/hooks/bitbucket/app", "/hooks/github/app/extra", "/hooks/github/"} {
		req, _ := http.NewRequest(http.MethodPost, env.url+path, nil)
		env.do(req).want(t, http.StatusNotFound)
	}
	env.wantSyncs()
}

func TestNewWebhooksNeedsSourceAndSync(t *testing.T) {
	for name, cfg := range map[string]WebhookConfig{
		"no Source": {Sync: func(string) {}},
		"no Sync":   {Source: func(context.Context, string) (WebhookSource, bool) { return WebhookSource{}, false }},
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			NewWebhooks(cfg)
		})
	}
}

func TestNewHTTPServerTimeouts(t *testing.T) {
	srv := NewHTTPServer(":8080", http.NotFoundHandler())
	for name, c := range map[string][2]time.Duration{
		"ReadHeaderTimeout": {srv.ReadHeaderTimeout, 10 * time.Second},
		"ReadTimeout":       {srv.ReadTimeout, 30 * time.Second},
		"WriteTimeout":      {srv.WriteTimeout, 0},
		"IdleTimeout":       {srv.IdleTimeout, 2 * time.Minute},
	} {
		if c[0] != c[1] {
			t.Errorf("%s = %v, want %v", name, c[0], c[1])
		}
	}
	if srv.MaxHeaderBytes != 64<<10 || srv.Addr != ":8080" {
		t.Errorf("MaxHeaderBytes = %d, Addr = %q", srv.MaxHeaderBytes, srv.Addr)
	}
}

// A client that sends half a request line and stalls is cut off once
// ReadHeaderTimeout has passed: not before (the timeout is a real
// minimum), and not never (a minute's read deadline catches a hang).
func TestSlowHeaderClientIsCutOff(t *testing.T) {
	const timeout = 200 * time.Millisecond
	srv := newHTTPServer("", http.NotFoundHandler(), httpTimeouts{readHeader: timeout, read: time.Minute, idle: time.Minute})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	// why: the server's clock starts once it has the connection, so
	// starting ours before the dial keeps the lower bound true however
	// late this goroutine runs.
	start := time.Now()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "POST /hooks/gi"); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(time.Minute))
	_, err = io.ReadAll(conn)
	took := time.Since(start)
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		t.Fatalf("the server still held the connection after %v", took)
	}
	if took < timeout-50*time.Millisecond {
		t.Fatalf("connection closed after %v, before ReadHeaderTimeout %v", took, timeout)
	}
}

// FuzzWebhookPayloads sends arbitrary payloads with valid signatures: the
// receivers must answer every one with JSON and a status they document.
func FuzzWebhookPayloads(f *testing.F) {
	f.Add(uint8(0), "push", githubPush("refs/heads/main", false))
	f.Add(uint8(0), "pull_request", githubPullRequest("opened", 1))
	f.Add(uint8(0), "ping", []byte(`{"zen":"Non-blocking is better than blocking."}`))
	f.Add(uint8(1), "Push Hook", gitlabPush("refs/heads/main", afterSHA))
	f.Add(uint8(1), "Merge Request Hook", []byte(`{"object_attributes":{"iid":1,"action":"open"}}`))
	f.Add(uint8(2), "", []byte(`{"ref":"main"}`))
	f.Add(uint8(0), "push", []byte(`{"ref":null,"deleted":"yes"}`))
	f.Add(uint8(0), "issue_comment", []byte(`{"action":"created","issue":{"number":3,"pull_request":{}},"comment":{"id":1,"body":"/ferry approve prod","user":{"login":"octocat"}}}`))
	f.Add(uint8(0), "commit_comment", []byte(`{"action":"created","comment":{"id":1,"body":"/ferry reject prod no","commit_id":"`+afterSHA+`","user":{"login":"octocat"}}}`))
	f.Add(uint8(1), "Merge Request Hook", []byte(`{"object_attributes":{"iid":1,"action":"update"},"changes":{"labels":{"previous":[],"current":[{"title":"ferry/preview"}]}}}`))

	var n atomic.Uint64
	h := NewWebhooks(WebhookConfig{
		Source: func(_ context.Context, name string) (WebhookSource, bool) {
			src, ok := testSources[name]
			return src, ok
		},
		Sync: func(string) {},
		Log:  func(string, ...any) {},
		// What reaches the callbacks is whole, and carries no commit of a
		// pull request.
		Pull: func(_ context.Context, ev store.PullEvent) (string, error) {
			if ev.Source != "app" || ev.Number <= 0 || ev.Commit != "" || !ev.FromWebhook || ev.Action == "" {
				panic(fmt.Sprintf("Pull told %+v", ev))
			}
			return "", nil
		},
		Comment: func(_ context.Context, ev CommentEvent) (string, error) {
			if ev.Source != "app" || ev.CommentID == 0 || ev.Author == "" || !strings.HasPrefix(strings.TrimLeft(ev.Body, " \t\r\n"), "/ferry ") {
				panic(fmt.Sprintf("Comment told %+v", ev))
			}
			return "", nil
		},
	})
	f.Fuzz(func(t *testing.T, provider uint8, event string, body []byte) {
		id := fmt.Sprint(n.Add(1))
		var req *http.Request
		switch provider % 3 {
		case 0:
			req = httptest.NewRequest(http.MethodPost, "/hooks/github/app", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-GitHub-Event", event)
			req.Header.Set("X-GitHub-Delivery", id)
			req.Header.Set("X-Hub-Signature-256", hmacHex(testSecret, body))
		case 1:
			req = httptest.NewRequest(http.MethodPost, "/hooks/gitlab/app", bytes.NewReader(body))
			req.Header.Set("X-Gitlab-Event", event)
			req.Header.Set("X-Gitlab-Token", testSecret)
			req.Header.Set("Idempotency-Key", id)
		default:
			req = httptest.NewRequest(http.MethodPost, "/hooks/generic/app", bytes.NewReader(body))
			req.Header.Set("X-Ferry-Delivery", id)
			req.Header.Set("X-Ferry-Signature-256", hmacHex(testSecret, body))
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK, http.StatusAccepted, http.StatusBadRequest:
		default:
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		var reply map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &reply); err != nil {
			t.Fatalf("answer is not JSON: %v: %s", err, rec.Body)
		}
	})
}

func ExampleNewWebhooks() {
	const secret = "s3cret"
	h := NewWebhooks(WebhookConfig{
		Source: func(_ context.Context, name string) (WebhookSource, bool) {
			return WebhookSource{Name: name, Branch: "main", Secret: secret}, name == "app"
		},
		Sync: func(name string) { fmt.Println("sync", name) },
		Log:  func(string, ...any) {},
	})

	// A CI job asks ferry to fetch "app" now, signing the body with the
	// source's webhookSecret.
	body := `{"ref": "refs/heads/main"}`
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(body))
	req := httptest.NewRequest(http.MethodPost, "/hooks/generic/app", strings.NewReader(body))
	req.Header.Set("X-Ferry-Delivery", "deploy-42")
	req.Header.Set("X-Ferry-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	fmt.Print(rec.Code, " ", rec.Body)
	// Output:
	// sync app
	// 202 {"ok":true,"event":"sync","source":"app","delivery":"deploy-42","sync":"requested"}
}

// TestReplayAfterRestartIsStillADuplicate: deliveries remembered in the
// store survive a restart (here a new receiver on the reopened store), so
// a replay syncs nothing; a day later the id is forgotten.
func TestReplayAfterRestartIsStillADuplicate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ferry.db")
	st, err := store.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	const id = "9b2f0c1e-2a3b-11f0-8c7d-1a2b3c4d5e6f"
	body := githubPush("refs/heads/main", false)
	before := newHookEnvWith(t, st)
	before.do(before.githubRequest("app", "push", id, body, testSecret)).want(t, http.StatusAccepted)
	before.wantSyncs("app")
	st.Close()

	st, err = store.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	after := newHookEnvWith(t, st)
	a := after.do(after.githubRequest("app", "push", id, body, testSecret)).want(t, http.StatusOK)
	if a.reply["duplicate"] != true {
		t.Fatalf(`the replay after a restart lacks "duplicate": true: %s`, a.body)
	}
	after.wantSyncs() // nothing
	after.clock.advance(defaultDeliveryTTL)
	after.do(after.githubRequest("app", "push", id, body, testSecret)).want(t, http.StatusAccepted)
	after.wantSyncs("app")
}
