package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"html"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferrycd/ferry/environments"
	"github.com/ferrycd/ferry/server/ui"
	"github.com/ferrycd/ferry/store"
)

// Hostile tests of the dashboard: each tries a way in an outsider or a
// lesser role might take, and asserts it is shut. The ones that found a
// hole are named in their comments.

// hostileSSE splits an event stream as a browser's EventSource does: a
// line ends at CRLF, LF or CR, and an empty line ends an event.
func hostileSSE(raw string) []runsEvent {
	raw = strings.ReplaceAll(raw, "\r\n", "\n")
	raw = strings.ReplaceAll(raw, "\r", "\n")
	var out []runsEvent
	var ev runsEvent
	data := []string{}
	for _, line := range strings.Split(raw, "\n") {
		if line == "" {
			if len(data) > 0 || ev.name != "" {
				ev.data = strings.Join(data, "\n")
				out = append(out, ev)
			}
			ev, data = runsEvent{}, []string{}
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			ev.name = value
		case "data":
			data = append(data, value)
		case "id":
			ev.id = value
		}
	}
	return out
}

// hostileFirstEvent opens /live for path as b and returns the raw bytes
// of the server's first event (up to its "\n\n").
func hostileFirstEvent(t *testing.T, b *browser, path string) string {
	t.Helper()
	// A bound against a hang only: the first event comes at once.
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b.base+"/live?path="+url.QueryEscape(path), nil)
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("live %s: %d", path, resp.StatusCode)
	}
	var all []byte
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		all = append(all, buf[:n]...)
		if i := bytes.Index(all, []byte("\n\n")); i >= 0 {
			return string(all[:i+2])
		}
		if err != nil {
			t.Fatalf("the stream ended before its first event: %v\n%q", err, all)
		}
	}
}

// TestHostileLiveFraming: a run's reason holding bare CRs once split the
// live stream, since an EventSource also ends lines at CR: the reason
// below made the browser see a "signedout" event and a "live" event of
// the outsider's choosing. Now a live event is one event, whatever the
// page holds.
func TestHostileLiveFraming(t *testing.T) {
	f := newUIFixture(t)
	evil := "boom\r\revent: signedout\rdata: x\r\revent: live\rdata: owned\r\r"
	run := runsMakeRun(t, f.store, "demo", "0123456789abcdef", store.StatusFailed, "build")
	run.Reason = evil
	if err := f.store.UpdateRun(t.Context(), run); err != nil {
		t.Fatal(err)
	}
	if err := f.store.UpdateStep(t.Context(), store.Step{RunID: run.ID, Name: "build", Index: 0, Status: store.StatusFailed, Reason: "a\rb\r\nc"}); err != nil {
		t.Fatal(err)
	}
	b := f.signIn(t, viewerSecret)
	raw := hostileFirstEvent(t, b, fmt.Sprintf("/runs/%d", run.ID))
	evs := hostileSSE(raw)
	if len(evs) != 1 || evs[0].name != "live" {
		var names []string
		for _, e := range evs {
			names = append(names, e.name)
		}
		t.Fatalf("the first live event split into %d events %v:\n%q", len(evs), names, raw)
	}
	if !strings.Contains(evs[0].data, `id="run-reason"`) || !strings.Contains(evs[0].data, "event: signedout") {
		t.Errorf("the live event lacks the run's reason, as text:\n%s", evs[0].data)
	}
}

// TestHostileSigninNext: ?next= after sign-in stays on this site. A tab
// (or newline) in it once led off-site: browsers drop tabs from a URL, so
// a Location of "/<TAB>/evil.example" is "//evil.example".
func TestHostileSigninNext(t *testing.T) {
	f := newUIFixture(t)
	signed := f.signIn(t, viewerSecret)
	for _, next := range []string{
		"//evil.example/", "/\\evil.example/", "/\t/evil.example/", "/\n/evil.example", "/\r/evil.example",
		"\t//evil.example/", " //evil.example/", "/\x00/evil.example", "/\x7f/evil.example", "/\\/evil.example",
		"https://evil.example/", "javascript:alert(1)", "http:evil.example", "%2F%2Fevil.example", "",
	} {
		// Signed in already: GET /signin sends the browser on at once.
		req, _ := http.NewRequest(http.MethodGet, f.ui+"/signin?next="+url.QueryEscape(next), nil)
		hostileLocal(t, "GET /signin next="+fmt.Sprintf("%q", next), hostileRaw(t, signed, req))
		// Signing in.
		req, _ = http.NewRequest(http.MethodPost, f.ui+"/signin", strings.NewReader(url.Values{"token": {viewerSecret}, "next": {next}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		hostileLocal(t, "POST /signin next="+fmt.Sprintf("%q", next), hostileRaw(t, newBrowser(t, f.ui), req))
	}
	// A path here is kept, query and all.
	a := signed.get("/signin?next=" + url.QueryEscape("/runs?source=demo&page=2"))
	if a.header.Get("Location") != "/runs?source=demo&page=2" {
		t.Errorf("a local next was not kept: %q", a.header.Get("Location"))
	}
}

// hostileRaw sends req with b's cookies and returns the answer as sent:
// no Location is parsed, so one a client would refuse is seen too.
func hostileRaw(t *testing.T, b *browser, req *http.Request) uiAnswer {
	t.Helper()
	for _, c := range b.c.Jar.Cookies(req.URL) {
		req.AddCookie(c)
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return uiAnswer{resp.StatusCode, string(body), resp.Header}
}

// hostileLocal fails unless a is a redirect a browser follows on this
// site only.
func hostileLocal(t *testing.T, what string, a uiAnswer) {
	t.Helper()
	loc := a.header.Get("Location")
	if a.code != http.StatusSeeOther {
		t.Errorf("%s: %d, want 303", what, a.code)
		return
	}
	// As a browser reads it: tabs and newlines dropped, leading and
	// trailing controls and spaces trimmed, \ as /.
	seen := strings.Map(func(r rune) rune {
		switch r {
		case '\t', '\n', '\r':
			return -1
		case '\\':
			return '/'
		}
		return r
	}, strings.Trim(loc, "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f "))
	for _, r := range loc {
		if r < 0x20 || r == 0x7f {
			t.Errorf("%s: Location %q holds a control character", what, loc)
			return
		}
	}
	if !strings.HasPrefix(seen, "/") || strings.HasPrefix(seen, "//") {
		t.Errorf("%s: Location %q leaves the site (a browser reads %q)", what, loc, seen)
	}
}

// hostileOpenLive opens /live?path=/ as b and returns the answer, open;
// cancel closes it.
func hostileOpenLive(t *testing.T, b *browser) (*http.Response, context.CancelFunc) {
	t.Helper()
	// A bound against a hang only.
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b.base+"/live?path=/", nil)
	resp, err := b.c.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); resp.Body.Close() })
	return resp, func() { cancel(); resp.Body.Close() }
}

// TestHostileLiveStreamsBounded: one session could open any number of
// live streams, each rendering its page every Poll. Now past
// maxLiveStreams it is told to close some; other sessions are not
// affected, and a closed stream frees its place.
func TestHostileLiveStreamsBounded(t *testing.T) {
	f := newUIFixture(t)
	b := f.signIn(t, viewerSecret)
	var closers []context.CancelFunc
	for i := range maxLiveStreams {
		resp, cancel := hostileOpenLive(t, b)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("stream %d: %d", i, resp.StatusCode)
		}
		closers = append(closers, cancel)
	}
	resp, _ := hostileOpenLive(t, b)
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("stream %d of one session: %d, want 429", maxLiveStreams+1, resp.StatusCode)
	}
	if resp, _ := hostileOpenLive(t, f.signIn(t, viewerSecret)); resp.StatusCode != http.StatusOK {
		t.Fatalf("another session's stream: %d", resp.StatusCode)
	}
	closers[0]()
	// The server sees the close at its next poll; wait for that, bounded
	// only against a hang.
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, _ := hostileOpenLive(t, b)
		if resp.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a closed stream never freed its place: %d", resp.StatusCode)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// hostileText is what an outsider writes into field: markup that would
// run, and break out of a quoted attribute, if drawn as HTML. Each page
// must show it as text.
func hostileText(field string) string {
	return `"'><b id=pwn-` + field + `>` + `<script>alert(1)</script><img src=x onerror=alert(2)>`
}

// hostileYAML quotes s for YAML.
func hostileYAML(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// hostileMarkers are what the markup of hostileText looks like drawn
// unescaped anywhere in a page.
var hostileMarkers = []string{"<b id=pwn-", "<script>alert", "<img src=x", `href="javascript:`, `href="data:`}

// hostileCheck fails when page drew an outsider's markup as markup, and
// returns the fields it shows as text.
func hostileCheck(t *testing.T, page string, a uiAnswer) []string {
	t.Helper()
	for _, m := range hostileMarkers {
		if i := strings.Index(a.body, m); i >= 0 {
			t.Errorf("%s drew %q as markup: …%s…", page, m, a.body[max(0, i-200):min(len(a.body), i+200)])
		}
	}
	for _, h := range []string{"Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options"} {
		if a.header.Get(h) == "" {
			t.Errorf("%s: no %s header", page, h)
		}
	}
	var shown []string
	for rest := a.body; ; {
		i := strings.Index(rest, "&lt;b id=pwn-")
		if i < 0 {
			break
		}
		rest = rest[i+len("&lt;b id=pwn-"):]
		j := strings.Index(rest, "&gt;")
		if j < 0 {
			break
		}
		shown = append(shown, rest[:j])
	}
	return shown
}

// TestHostileStoredMarkup: every field an outsider controls (a commit; a run's reasons and log; a release's
// manifest; hold and freeze reasons; who deployed and why; a promotion's
// reason and its approvals' comments) is text on every page, and a
// javascript: link is no link. This held: html/template escapes by
// context; the test keeps it so.
func TestHostileStoredMarkup(t *testing.T) {
	f := newPromosFixture(t)
	ctx := t.Context()
	st := f.st
	run, _, err := st.CreateRun(ctx, store.Run{Source: "demo", Branch: hostileText("run-branch"), Commit: hostileText("run-commit"), Status: store.StatusQueued, Created: time.Now()}, []string{"build"})
	if err != nil {
		t.Fatal(err)
	}
	run.Status, run.Reason = store.StatusFailed, hostileText("run-reason")
	if err := st.UpdateRun(ctx, run); err != nil {
		t.Fatal(err)
	}
	if err := st.UpdateStep(ctx, store.Step{RunID: run.ID, Name: "build", Index: 0, Status: store.StatusFailed, Reason: hostileText("step-reason")}); err != nil {
		t.Fatal(err)
	}
	runsLog(t, st, run.ID, "build", hostileText("log-line"))

	manifest := `apiVersion: ferry.dev/v1alpha1
kind: Function
metadata: {name: hello, labels: {app: ` + hostileYAML(hostileText("label")) + `}}
spec: {runtime: python, handler: main.handle, image: 'reg.example/demo/hello@sha256:` + strings.Repeat("1", 64) + `'}
---
apiVersion: ferry.dev/v1alpha1
kind: HTTPTrigger
metadata: {name: hello}
spec: {function: hello, path: ` + hostileYAML("/"+hostileText("trigger-path")) + `, methods: [GET]}
`
	good := putUIRelease(t, st, store.Release{ID: relUIID('a'), Source: hostileText("release-source"), Commit: hostileText("release-commit"),
		Ref: "javascript:alert(1)//" + hostileText("release-ref"), RunID: run.ID, Manifest: []byte(manifest)})
	bad := putUIRelease(t, st, store.Release{ID: relUIID('b'), Source: "demo", Commit: strings.Repeat("2", 40),
		Manifest: []byte("kind: Function\nmetadata: {name: " + hostileYAML(hostileText("manifest-error")) + "}\n")})
	if err := st.PutEnvironment(ctx, store.Environment{Name: "prod", Target: "embedded", Release: good.ID, Held: true, HoldReason: hostileText("hold-reason")}); err != nil {
		t.Fatal(err)
	}
	if err := st.FreezeEnvironment(ctx, "prod", store.Freeze{Frozen: true, Reason: hostileText("freeze-reason"), Actor: hostileText("frozen-by"), At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	for _, rel := range []string{bad.ID, good.ID} {
		if _, err := st.RecordDeployment(ctx, store.Deployment{Environment: "prod", Release: rel, Actor: hostileText("actor"), Status: store.DeploymentSucceeded,
			Reason: hostileText("deploy-reason"), At: time.Now(), Source: hostileText("deploy-source"), Commit: hostileText("deploy-commit")}); err != nil {
			t.Fatal(err)
		}
	}
	p, err := st.CreatePromotion(ctx, store.Promotion{Release: good.ID, Environment: "prod", Status: "pending", Requester: hostileText("requester"), Reason: hostileText("promotion-reason")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.AddApproval(ctx, store.Approval{Promotion: p.ID, Actor: hostileText("approver"), Approve: true, Comment: hostileText("comment"), At: time.Now()}); err != nil {
		t.Fatal(err)
	}

	seen := map[string]bool{}
	for _, secret := range []string{promosAnnSecret, promosDanSecret} {
		b := signInAt(t, f.ui, secret)
		for _, page := range []string{
			"/", "/runs", fmt.Sprintf("/runs/%d", run.ID), "/environments", "/environments/prod",
			"/environments/prod/rollback", "/environments/prod/rollback?to=" + url.QueryEscape(bad.ID),
			"/releases", "/releases/" + good.ID, "/releases/" + bad.ID, "/diff?from=" + bad.ID + "&to=" + good.ID,
			"/diff?from=dev&to=prod", "/promotions", fmt.Sprintf("/promotions/%d", p.ID),
			// What a page echoes of its own URL.
			"/" + url.PathEscape(hostileText("url-path")), "/runs?source=" + url.QueryEscape(hostileText("url-query")),
			"/releases/" + url.PathEscape(hostileText("url-release")), "/environments/" + url.PathEscape(hostileText("url-env")),
			"/diff?from=" + url.QueryEscape(hostileText("url-from")) + "&to=prod",
		} {
			a := b.get(page)
			for _, field := range hostileCheck(t, page, a) {
				seen[field] = true
			}
		}
	}
	// The test shows each field somewhere, or it tests nothing for it.
	for _, field := range []string{"run-commit", "run-branch", "run-reason", "step-reason", "log-line",
		"hold-reason", "freeze-reason", "actor", "promotion-reason", "comment", "approver", "release-ref", "release-source"} {
		if !seen[field] {
			t.Errorf("no page showed %s: this test no longer reaches it", field)
		}
	}
	var all []string
	for k := range seen {
		all = append(all, k)
	}
	t.Logf("fields shown as text: %v", all)
}

// hostileSources is a source manager whose watcher saw hostile things.
type hostileSources struct{}

func (hostileSources) Add(context.Context, store.Source) error { return nil }
func (hostileSources) Remove(context.Context, string) error    { return nil }
func (hostileSources) Sync(context.Context, string) error      { return nil }
func (hostileSources) Status(name string) (store.SourceStatus, error) {
	return store.SourceStatus{Source: name, LastCommit: hostileText("source-commit"), LastError: hostileText("source-error"), Failures: 3, LastFetch: time.Now()}, nil
}

// TestHostileTargetAndPullMarkup: what a target says of its functions
// (name, image, URL, state, message), what the watcher says of a source,
// and what a pull request's webhook said (title, author, link) are text;
// a javascript: or data: link is no link. This held.
func TestHostileTargetAndPullMarkup(t *testing.T) {
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "ferry.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx := t.Context()
	if err := st.PutSource(ctx, store.Source{Name: "demo", URL: "https://git.example/" + hostileText("source-url"), Branch: hostileText("source-branch"), Interval: time.Minute}); err != nil {
		t.Fatal(err)
	}
	rel := putUIRelease(t, st, store.Release{ID: relUIID('a'), Source: "demo", Commit: strings.Repeat("1", 40), Manifest: []byte(relUIManifest('1', '2'))})
	if _, err := st.RecordDeployment(ctx, store.Deployment{Environment: "prod", Release: rel.ID, Actor: "ci", Status: store.DeploymentSucceeded, At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	api, err := NewAPI(APIConfig{
		Store:   st,
		Tokens:  fixtureTokens,
		Sources: hostileSources{},
		Environments: func(ctx context.Context, env string) (*environments.Status, error) {
			return &environments.Status{Environment: env, Release: rel.ID, Functions: []environments.FunctionStatus{
				{Name: "hello", Image: `reg.example/hello@sha256:` + strings.Repeat("1", 64) + hostileText("image"), URL: "javascript:alert(1)", State: hostileText("state"), Message: hostileText("fn-message")},
				{Name: hostileText("fn-name"), Image: "data:text/html,<script>alert(1)</script>", URL: "data:text/html,x", State: "failed", Message: hostileText("fn-message2")},
			}}, nil
		},
		Previews: previewList{{Source: "demo", Number: 7, Environment: "pr-7-demo", State: hostileText("preview-state"), URL: "javascript:alert(1)",
			Reason: hostileText("preview-reason"), Title: hostileText("pull-title"), Author: hostileText("pull-author"), PullURL: "javascript:alert(1)", Head: hostileText("pull-head")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	b := signInAt(t, serveUI(t, api, fixtureTokens), adminSecret)
	seen := map[string]bool{}
	for _, page := range []string{"/", "/environments", "/environments/prod", "/previews"} {
		a := b.get(page)
		if a.code != http.StatusOK {
			t.Errorf("%s: %d\n%s", page, a.code, a.body)
		}
		for _, field := range hostileCheck(t, page, a) {
			seen[field] = true
		}
	}
	for _, field := range []string{"source-error", "source-branch", "fn-message", "pull-title", "pull-author", "preview-reason"} {
		if !seen[field] {
			t.Errorf("no page showed %s: this test no longer reaches it", field)
		}
	}
	var all []string
	for k := range seen {
		all = append(all, k)
	}
	t.Logf("fields shown as text: %v", all)
}

// hostileActions are the dashboard's form targets: every u.action route.
// TestHostileForgedActions checks this list against the code.
var hostileActions = []string{
	"POST /signout",
	"POST /environments/{name}/rollback",
	"POST /promotions/{id}/approve",
	"POST /promotions/{id}/reject",
}

// hostileFixture is the promotions fixture with a promotion into prod
// pending, and two deployments in prod's history.
type hostileFixture struct {
	*promosFixture
	promotion int64
	paths     map[string]string // an action's pattern → a path of it here
	form      map[string]url.Values
}

func newHostileFixture(t *testing.T) *hostileFixture {
	t.Helper()
	f := &hostileFixture{promosFixture: newPromosFixture(t)}
	ctx := t.Context()
	a := putUIRelease(t, f.st, store.Release{ID: relUIID('a'), Source: "demo", Commit: strings.Repeat("1", 40), Manifest: []byte(relUIManifest('1', '2'))})
	b := putUIRelease(t, f.st, store.Release{ID: relUIID('b'), Source: "demo", Commit: strings.Repeat("2", 40), Manifest: []byte(relUIManifest('3', '2'))})
	for _, rel := range []string{a.ID, b.ID} {
		if _, err := f.st.RecordDeployment(ctx, store.Deployment{Environment: "prod", Release: rel, Actor: "ci", Status: store.DeploymentSucceeded, At: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	p, err := f.st.CreatePromotion(ctx, store.Promotion{Release: b.ID, Environment: "prod", Status: "pending", Requester: "dan"})
	if err != nil {
		t.Fatal(err)
	}
	f.promotion = p.ID
	f.paths = map[string]string{
		"POST /signout":                      "/signout",
		"POST /environments/{name}/rollback": "/environments/prod/rollback",
		"POST /promotions/{id}/approve":      fmt.Sprintf("/promotions/%d/approve", p.ID),
		"POST /promotions/{id}/reject":       fmt.Sprintf("/promotions/%d/reject", p.ID),
	}
	f.form = map[string]url.Values{
		"POST /environments/{name}/rollback": {"release": {a.ID}},
		"POST /promotions/{id}/approve":      {"comment": {"ok"}},
		"POST /promotions/{id}/reject":       {"comment": {"no"}},
	}
	return f
}

// unchanged fails unless the promotion is still pending with no
// decisions, and prod's history still holds its two deployments, as the
// API tells it.
func (f *hostileFixture) unchanged(t *testing.T, what string) {
	t.Helper()
	c := f.client(promosVeraSecret)
	p, err := c.Promotion(t.Context(), f.promotion)
	if err != nil {
		t.Fatal(err)
	}
	if p.Status != "pending" || len(p.Approvals) != 0 {
		t.Errorf("%s: the promotion is %s with %d decisions", what, p.Status, len(p.Approvals))
	}
	h, err := c.History(t.Context(), "prod", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Items) != 2 {
		t.Errorf("%s: prod's history has %d deployments, want 2", what, len(h.Items))
	}
}

// hostileSend sends a request as b, made by mod from a same-origin form
// post of form to path.
func hostileSend(b *browser, method, path string, form url.Values, mod func(*http.Request)) uiAnswer {
	b.t.Helper()
	req, _ := http.NewRequest(method, b.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", b.base)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	if mod != nil {
		mod(req)
	}
	return b.do(req)
}

// TestHostileForgedActions: no action is taken without the session's own
// CSRF token in the form's body, from another site's page, by GET, or by
// a method override; every refusal leaves the promotion and prod's
// history as they were and the session signed in. This held.
func TestHostileForgedActions(t *testing.T) {
	// Every action route is in hostileActions.
	var code []string
	for _, file := range []string{"ui.go", "ui_environments.go", "ui_promotions.go", "ui_releases.go", "ui_runs.go", "ui_overview.go"} {
		b, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		for _, m := range regexp.MustCompile(`u\.action\("([^"]+)"`).FindAllStringSubmatch(string(b), -1) {
			code = append(code, m[1])
		}
	}
	slices.Sort(code)
	listed := slices.Sorted(slices.Values(hostileActions))
	if !slices.Equal(code, listed) {
		t.Fatalf("the dashboard's actions %v; this test checks %v: add the new ones", code, listed)
	}

	f := newHostileFixture(t)
	ann := signInAt(t, f.ui, promosAnnSecret)
	other := signInAt(t, f.ui, promosAnnSecret)
	token, otherToken := ann.csrf("/"), other.csrf("/")
	if token == otherToken {
		t.Fatal("two sessions share a CSRF token")
	}
	for _, action := range hostileActions {
		path := f.paths[action]
		with := func(csrf string) url.Values {
			v := url.Values{}
			for k, vs := range f.form[action] {
				v[k] = vs
			}
			if csrf != "" {
				v.Set("csrf", csrf)
			}
			return v
		}
		cases := []struct {
			name   string
			method string
			form   url.Values
			mod    func(*http.Request)
		}{
			{"no token", "POST", with(""), nil},
			{"a wrong token", "POST", with(token + "x"), nil},
			{"another session's token", "POST", with(otherToken), nil},
			{"the token in the URL, not the form", "POST", with(""), func(r *http.Request) { r.URL.RawQuery = "csrf=" + url.QueryEscape(token) }},
			{"a text/plain body", "POST", with(token), func(r *http.Request) { r.Header.Set("Content-Type", "text/plain") }},
			{"another site's page", "POST", with(token), func(r *http.Request) { r.Header.Set("Origin", "https://evil.example"); r.Header.Del("Sec-Fetch-Site") }},
			{"an opaque origin", "POST", with(token), func(r *http.Request) { r.Header.Set("Origin", "null") }},
			{"a cross-site fetch", "POST", with(token), func(r *http.Request) { r.Header.Del("Origin"); r.Header.Set("Sec-Fetch-Site", "cross-site") }},
			{"a same-site fetch", "POST", with(token), func(r *http.Request) { r.Header.Set("Sec-Fetch-Site", "same-site") }},
			{"GET", "GET", nil, func(r *http.Request) { r.URL.RawQuery = with(token).Encode() }},
			{"GET with a method override", "GET", nil, func(r *http.Request) {
				r.URL.RawQuery = with(token).Encode() + "&_method=POST"
				r.Header.Set("X-HTTP-Method-Override", "POST")
			}},
			{"PUT", "PUT", with(token), nil},
		}
		for _, c := range cases {
			a := hostileSend(ann, c.method, path, c.form, c.mod)
			// A GET may draw a page (the rollback's confirmation), never act:
			// an action answers with a redirect.
			if a.code < 400 && (c.method != "GET" || a.code == http.StatusSeeOther) {
				t.Errorf("%s with %s: %d, want a refusal\n%s", action, c.name, a.code, a.body)
			}
			if strings.Contains(a.header.Get("Set-Cookie"), sessionCookie) {
				t.Errorf("%s with %s touched the session cookie", action, c.name)
			}
			f.unchanged(t, action+" with "+c.name)
		}
	}
	if a := ann.get("/"); a.code != http.StatusOK {
		t.Fatalf("the session did not survive the forgeries: %d", a.code)
	}
	// The control: the same request, as the page sends it, is taken.
	a := ann.post(f.paths["POST /promotions/{id}/approve"], url.Values{"csrf": {token}, "comment": {"fine"}})
	if a.code != http.StatusSeeOther {
		t.Fatalf("a real approval: %d\n%s", a.code, a.body)
	}
	p, err := f.client(promosVeraSecret).Promotion(t.Context(), f.promotion)
	if err != nil || len(p.Approvals) != 1 || p.Approvals[0].Actor != "ann" {
		t.Fatalf("a real approval was not recorded: %+v %v", p, err)
	}
}

// TestHostileRolesRefused: a role posting an action it lacks, with a
// valid CSRF token, is refused with 403 and nothing changes. This held.
func TestHostileRolesRefused(t *testing.T) {
	f := newHostileFixture(t)
	for _, c := range []struct {
		secret, action, role string
	}{
		{promosVeraSecret, "POST /promotions/{id}/approve", "approver"},
		{promosVeraSecret, "POST /promotions/{id}/reject", "approver"},
		{promosVeraSecret, "POST /environments/{name}/rollback", "deployer"},
		{promosDanSecret, "POST /promotions/{id}/approve", "approver"},
		{promosDanSecret, "POST /promotions/{id}/reject", "approver"},
		{promosAnnSecret, "POST /environments/{name}/rollback", "deployer"},
	} {
		b := signInAt(t, f.ui, c.secret)
		form := url.Values{"csrf": {b.csrf("/")}}
		for k, vs := range f.form[c.action] {
			form[k] = vs
		}
		a := b.post(f.paths[c.action], form)
		if a.code != http.StatusForbidden || !strings.Contains(a.body, "lacks the "+c.role+" role") {
			t.Errorf("%s by a token without %s: %d\n%s", c.action, c.role, a.code, a.body)
		}
		f.unchanged(t, c.action+" without "+c.role)
		// Nor is it offered.
		page := b.get(fmt.Sprintf("/promotions/%d", f.promotion)).body + b.get("/environments/prod").body
		if c.role == "approver" && (strings.Contains(page, `id="approve"`) || strings.Contains(page, `id="reject"`)) {
			t.Errorf("a token without approver is offered approve or reject")
		}
		if c.role == "deployer" && strings.Contains(page, `id="rollback"`) {
			t.Errorf("a token without deployer is offered a rollback")
		}
	}
}

// TestHostileLinksEscapedOnce: a release id in a link's query was escaped
// twice (the template's query func, then html/template's own escaping of
// a URL's query), so "Full diff" and "Diff" asked for "sha256%3A…" and
// found nothing. Every link on these pages now leads to a page that is
// there.
func TestHostileLinksEscapedOnce(t *testing.T) {
	f := newHostileFixture(t)
	b := signInAt(t, f.ui, promosDanSecret)
	hrefRe := regexp.MustCompile(`href="(/[^"]*)"`)
	for _, page := range []string{"/environments/prod", "/environments/prod/rollback", "/promotions", fmt.Sprintf("/promotions/%d", f.promotion)} {
		a := b.get(page)
		if a.code != http.StatusOK {
			t.Fatalf("%s: %d", page, a.code)
		}
		for _, m := range hrefRe.FindAllStringSubmatch(a.body, -1) {
			link := html.UnescapeString(m[1])
			if strings.HasPrefix(link, "/assets/") || !strings.Contains(link, "?") {
				continue
			}
			if strings.Contains(link, "%25") {
				t.Errorf("%s links to %s: escaped twice", page, link)
				continue
			}
			if got := b.get(link); got.code != http.StatusOK {
				t.Errorf("%s links to %s: %d", page, link, got.code)
			}
		}
	}
}

// hostileCookie is b's session cookie's value.
func hostileCookie(t *testing.T, b *browser) string {
	t.Helper()
	u, _ := url.Parse(b.base)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == sessionCookie {
			return c.Value
		}
	}
	t.Fatal("no session cookie")
	return ""
}

// hostileWithCookie is a browser that sends cookie as its session.
func hostileWithCookie(t *testing.T, base, cookie string) *browser {
	b := newBrowser(t, base)
	u, _ := url.Parse(base)
	b.c.Jar.SetCookies(u, []*http.Cookie{{Name: sessionCookie, Value: cookie, Path: "/"}})
	return b
}

// TestHostileSessions: a cookie planted before sign-in is replaced, not
// adopted; signing in again ends the session the browser had (it stayed
// valid, where no sign-out reached it: fixed); the token is in no cookie,
// page, header or URL, and GET does not sign in; after sign-out the old
// cookie opens no page, action or stream.
func TestHostileSessions(t *testing.T) {
	f := newUIFixture(t)

	// Fixation: a planted value is never the session's.
	b := hostileWithCookie(t, f.ui, "planted-by-someone-else")
	if a := b.get("/"); a.code != http.StatusSeeOther {
		t.Fatalf("a planted cookie opened a page: %d", a.code)
	}
	a := b.post("/signin", url.Values{"token": {adminSecret}, "next": {"/"}})
	if a.code != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", a.code)
	}
	first := hostileCookie(t, b)
	if first == "planted-by-someone-else" {
		t.Fatal("sign-in adopted the planted cookie")
	}
	if a := hostileWithCookie(t, f.ui, "planted-by-someone-else").get("/"); a.code != http.StatusSeeOther {
		t.Fatalf("the planted cookie opens a page after sign-in: %d", a.code)
	}

	// Signing in again (as someone else) ends the browser's old session.
	if a := b.post("/signin", url.Values{"token": {viewerSecret}, "next": {"/"}}); a.code != http.StatusSeeOther {
		t.Fatalf("second sign-in: %d", a.code)
	}
	second := hostileCookie(t, b)
	if second == first {
		t.Fatal("a second sign-in kept the cookie")
	}
	if a := hostileWithCookie(t, f.ui, first).get("/"); a.code != http.StatusSeeOther {
		t.Errorf("the session a browser signed in over lives on: %d", a.code)
	}

	// The token is nowhere the browser keeps or shows.
	for _, page := range []string{"/", "/runs", "/environments", "/releases", "/previews", "/signin", "/nope"} {
		a := b.get(page)
		for k, vs := range a.header {
			if strings.Contains(strings.Join(vs, " "), viewerSecret) {
				t.Errorf("%s: the token in header %s", page, k)
			}
		}
		if strings.Contains(a.body, viewerSecret) {
			t.Errorf("%s shows the token", page)
		}
		if a.code == http.StatusOK && a.header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: Cache-Control %q, want no-store", page, a.header.Get("Cache-Control"))
		}
	}
	if strings.Contains(second, viewerSecret) {
		t.Error("the cookie holds the token")
	}
	// A token in a URL signs nobody in (it would sit in logs and history).
	nb := newBrowser(t, f.ui)
	if a := nb.get("/signin?token=" + url.QueryEscape(adminSecret)); strings.Contains(a.header.Get("Set-Cookie"), sessionCookie) {
		t.Error("GET /signin?token= signed in")
	}
	if a := nb.post("/signin?token="+url.QueryEscape(adminSecret), url.Values{}); a.code != http.StatusUnauthorized {
		t.Errorf("a token in the sign-in's URL, none in its form: %d", a.code)
	}

	// Sign-out ends the session on the server: the old cookie, replayed,
	// opens no page, action or stream, and an open stream says so.
	stream, _ := hostileOpenLive(t, b)
	if stream.StatusCode != http.StatusOK {
		t.Fatalf("live: %d", stream.StatusCode)
	}
	if a := b.post("/signout", url.Values{"csrf": {b.csrf("/")}}); a.code != http.StatusSeeOther {
		t.Fatalf("sign-out: %d", a.code)
	}
	replay := hostileWithCookie(t, f.ui, second)
	if a := replay.get("/"); a.code != http.StatusSeeOther {
		t.Errorf("the signed-out cookie opens a page: %d", a.code)
	}
	if a := replay.get("/live?path=/"); a.code != http.StatusUnauthorized {
		t.Errorf("the signed-out cookie opens a live stream: %d", a.code)
	}
	if a := replay.post("/signout", url.Values{}); a.code != http.StatusUnauthorized {
		t.Errorf("the signed-out cookie reaches an action: %d", a.code)
	}
	var all []byte
	buf := make([]byte, 4096)
	for !bytes.Contains(all, []byte("event: signedout")) {
		n, err := stream.Body.Read(buf)
		all = append(all, buf[:n]...)
		if err != nil && !bytes.Contains(all, []byte("event: signedout")) {
			t.Fatalf("the open stream ended without saying signedout: %v\n%s", err, all)
		}
	}
}

// TestHostileSigninLimiterKeysOnTheConnection: a spoofed X-Forwarded-For
// does not reset the count of wrong tokens. This held.
func TestHostileSigninLimiterKeysOnTheConnection(t *testing.T) {
	f := newUIFixture(t)
	b := f.browser(t)
	send := func(token string, i int) uiAnswer {
		return hostileSend(b, "POST", "/signin", url.Values{"token": {token}}, func(r *http.Request) {
			r.Header.Set("X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i))
			r.Header.Set("X-Real-IP", fmt.Sprintf("198.51.100.%d", i))
			r.Header.Set("Forwarded", fmt.Sprintf("for=198.51.100.%d", i))
		})
	}
	for i := range maxSigninFailures {
		if a := send(fmt.Sprintf("guess-%d-0123456789abcdef", i), i); a.code != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d", i, a.code)
		}
	}
	if a := send(adminSecret, 200); a.code != http.StatusTooManyRequests {
		t.Fatalf("another X-Forwarded-For after %d wrong tokens: %d, want 429", maxSigninFailures, a.code)
	}
}

// TestHostileLiveReachesOnlyPages: what /live?path= renders goes through
// the dashboard's own routes as the session: it reaches no API route, no
// stream, no action, not sign-in or sign-out, and (fixed: it served them)
// no asset; a page gives its live part only. And the API takes no
// dashboard cookie for a token.
func TestHostileLiveReachesOnlyPages(t *testing.T) {
	f := newUIFixture(t)
	run := runsMakeRun(t, f.store, "demo", "0123456789abcdef", store.StatusRunning, "build")
	u, err := newUI(UIConfig{API: f.api, Tokens: fixtureTokens, Poll: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	cookie := u.sessions.start(sha256.Sum256([]byte(adminSecret)))
	s, ok := u.sessions.get(sha256.Sum256([]byte(cookie)), u.tokens)
	if !ok {
		t.Fatal("no session")
	}
	// A bound against a hang only (a stream rendered into memory).
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	for _, p := range []string{
		"/api/v1/runs", "/api/v1/sources", fmt.Sprintf("/api/v1/runs/%d/logs?follow=true", run.ID),
		fmt.Sprintf("/runs/%d/logs", run.ID), "/signout", "/signin", "/signin?next=/runs",
		"/assets/ferry.js", "/assets/ferry.css", "/assets/favicon.svg", "/nope",
		"/promotions/1/approve", "/environments/prod/rollback/../rollback",
	} {
		target, _ := url.Parse(p)
		body, code := u.fragment(ctx, s, target)
		if code == http.StatusOK {
			t.Errorf("/live?path=%s renders %d bytes:\n%.300s", p, len(body), body)
		}
	}
	target, _ := url.Parse(fmt.Sprintf("/runs/%d", run.ID))
	body, code := u.fragment(ctx, s, target)
	if code != http.StatusOK || !strings.Contains(string(body), `id="run-status"`) || strings.Contains(string(body), "<html") || strings.Contains(string(body), s.csrf) {
		t.Errorf("a page's live part: %d\n%s", code, body)
	}

	// The API is the API's: a dashboard cookie is no token there.
	b := f.signIn(t, adminSecret)
	req, _ := http.NewRequest(http.MethodGet, f.url+"/api/v1/runs", nil)
	req.AddCookie(&http.Cookie{Name: sessionCookie, Value: hostileCookie(t, b)})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("the API with a dashboard cookie: %d", resp.StatusCode)
	}
	// Nor does the dashboard route to the API.
	if a := b.get("/api/v1/runs"); a.code != http.StatusNotFound {
		t.Errorf("the dashboard at /api/v1/runs: %d", a.code)
	}
}

// TestHostileHeaders: every answer, error pages and sign-in included,
// carries the CSP, no framing and nosniff; the templates hold nothing the
// CSP would block (inline script, style or handlers), so the CSP can stay
// strict. This held.
func TestHostileHeaders(t *testing.T) {
	f := newUIFixture(t)
	anon := f.browser(t)
	b := f.signIn(t, viewerSecret)
	check := func(what string, a uiAnswer) {
		t.Helper()
		csp := a.header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self'", "frame-ancestors 'none'", "form-action 'self'", "base-uri 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s (%d): CSP %q lacks %s", what, a.code, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
			t.Errorf("%s: CSP %q allows inline script or style", what, csp)
		}
		if a.header.Get("X-Frame-Options") != "DENY" || a.header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s (%d): X-Frame-Options %q, X-Content-Type-Options %q", what, a.code, a.header.Get("X-Frame-Options"), a.header.Get("X-Content-Type-Options"))
		}
		if strings.HasPrefix(a.header.Get("Content-Type"), "text/html") && a.code != http.StatusSeeOther && a.header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s (%d): a page with Cache-Control %q", what, a.code, a.header.Get("Cache-Control"))
		}
	}
	check("sign-in page", anon.get("/signin"))
	check("wrong token", anon.post("/signin", url.Values{"token": {"wrong-wrong-wrong-wrong"}}))
	check("unsigned page", anon.get("/runs"))
	check("unsigned action", anon.post("/signout", url.Values{}))
	check("unsigned live", anon.get("/live?path=/"))
	check("404", b.get("/nope"))
	check("API error page", b.get("/runs/999"))
	check("bad request page", b.get("/runs/abc"))
	check("405", hostileSend(b, "DELETE", "/runs", nil, nil))
	check("CSRF refusal", b.post("/signout", url.Values{}))
	check("page", b.get("/"))
	check("bad live path", b.get("/live?path=//evil.example"))
	for _, asset := range []string{"/assets/ferry.js", "/assets/ferry.css", "/assets/favicon.svg", "/assets/nope.js"} {
		check(asset, b.get(asset))
	}
	if ct := b.get("/assets/ferry.js").header.Get("Content-Type"); !strings.Contains(ct, "javascript") {
		t.Errorf("ferry.js served as %q", ct)
	}

	// The templates: no inline script, style attribute or handler, no
	// javascript: link; a <script> only with src.
	bad := regexp.MustCompile(`(?i)\sstyle\s*=|\son[a-z]+\s*=|javascript:|<style`)
	script := regexp.MustCompile(`(?i)<script[^>]*>`)
	entries, err := fs.Glob(ui.Templates, "templates/*.html")
	if err != nil || len(entries) == 0 {
		t.Fatalf("templates: %v", err)
	}
	for _, name := range entries {
		b, _ := fs.ReadFile(ui.Templates, name)
		for i, line := range strings.Split(string(b), "\n") {
			if m := bad.FindString(line); m != "" {
				t.Errorf("%s:%d holds %q, which the CSP blocks or which runs script: %s", name, i+1, m, strings.TrimSpace(line))
			}
			for _, loc := range script.FindAllStringIndex(line, -1) {
				if !strings.Contains(line[loc[0]:loc[1]], " src=") || !strings.HasPrefix(line[loc[1]:], "</script>") {
					t.Errorf("%s:%d: an inline script: %s", name, i+1, strings.TrimSpace(line))
				}
			}
		}
	}
}

// TestHostileEchoedInput: what a form sends comes back as text: a
// comment on the promotion's page, and an API refusal quoting the input
// in the flash after the redirect. This held.
func TestHostileEchoedInput(t *testing.T) {
	f := newHostileFixture(t)
	dan := signInAt(t, f.ui, promosDanSecret)
	a := dan.post(f.paths["POST /environments/{name}/rollback"], url.Values{"csrf": {dan.csrf("/")}, "release": {hostileText("rollback-release")}})
	if a.code != http.StatusSeeOther {
		t.Fatalf("rollback to a made-up release: %d\n%s", a.code, a.body)
	}
	shown := hostileCheck(t, "the flash after a refused rollback", dan.get(a.header.Get("Location")))
	ann := signInAt(t, f.ui, promosAnnSecret)
	a = ann.post(f.paths["POST /promotions/{id}/approve"], url.Values{"csrf": {ann.csrf("/")}, "comment": {hostileText("approve-comment")}})
	if a.code != http.StatusSeeOther {
		t.Fatalf("approve: %d\n%s", a.code, a.body)
	}
	shown = append(shown, hostileCheck(t, "the promotion after an approval", ann.get(a.header.Get("Location")))...)
	// The flash is shown once; the comment stays.
	shown = append(shown, hostileCheck(t, "the promotion again", ann.get(a.header.Get("Location")))...)
	t.Logf("shown as text: %v", shown)
	if !slices.Contains(shown, "approve-comment") {
		t.Errorf("the approval's comment was not shown: this test no longer reaches it")
	}
}

// TestHostileLivePaths: /live?path= takes a path on this site only, with
// no control characters, never /live itself. This held, save a tab or
// other control character (fixed with localPath).
func TestHostileLivePaths(t *testing.T) {
	f := newUIFixture(t)
	b := f.signIn(t, viewerSecret)
	for _, p := range []string{
		"", "runs", "//evil.example/", "/\\evil.example", "https://evil.example/", "javascript:alert(1)",
		"/\r\nSet-Cookie: x=y", "/\t/evil.example", "/\x00", "/live", "/live?path=/", "/l%69ve?path=/", "/live/",
	} {
		if a := b.get("/live?path=" + url.QueryEscape(p)); a.code != http.StatusBadRequest {
			t.Errorf("live %q: %d, want 400", p, a.code)
		}
	}
}
