package server

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// uiFixture is the dashboard over the API fixture (a real store and
// watcher), served by an httptest server.
type uiFixture struct {
	*apiFixture
	ui string // the dashboard's URL
}

func newUIFixture(t *testing.T) *uiFixture {
	t.Helper()
	f := newAPIFixture(t)
	return &uiFixture{apiFixture: f, ui: serveUI(t, f.api, fixtureTokens)}
}

// serveUI serves the dashboard over api (an API handler a test made, a
// promoter's included) and returns its URL.
func serveUI(t *testing.T, api http.Handler, toks []Token) string {
	t.Helper()
	stopping := make(chan struct{})
	t.Cleanup(func() { close(stopping) })
	h, err := NewUI(UIConfig{API: api, Tokens: toks, Poll: 20 * time.Millisecond, Stopping: stopping})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// browser is an HTTP client with a cookie jar that does not follow
// redirects, so a test sees each page.
type browser struct {
	t    *testing.T
	base string
	c    *http.Client
}

func (f *uiFixture) browser(t *testing.T) *browser { return newBrowser(t, f.ui) }

// newBrowser is a cookie-keeping client of the dashboard at base.
func newBrowser(t *testing.T, base string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: base, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

// signIn signs in with secret and returns the browser.
func (f *uiFixture) signIn(t *testing.T, secret string) *browser {
	t.Helper()
	return signInAt(t, f.ui, secret)
}

// signInAt signs in to the dashboard at base.
func signInAt(t *testing.T, base, secret string) *browser {
	t.Helper()
	b := newBrowser(t, base)
	resp := b.post("/signin", url.Values{"token": {secret}, "next": {"/"}})
	if resp.code != http.StatusSeeOther {
		t.Fatalf("sign-in: %d %s", resp.code, resp.body)
	}
	return b
}

type uiAnswer struct {
	code   int
	body   string
	header http.Header
}

func (b *browser) do(req *http.Request) uiAnswer {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return uiAnswer{resp.StatusCode, string(body), resp.Header}
}

func (b *browser) get(path string) uiAnswer {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.base+path, nil)
	return b.do(req)
}

// post sends a form as the browser's own page would (same origin).
func (b *browser) post(path string, form url.Values) uiAnswer {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, b.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", b.base)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	return b.do(req)
}

var csrfRe = regexp.MustCompile(`name="csrf" content="([^"]+)"`)

// csrf reads the CSRF token a page carries.
func (b *browser) csrf(path string) string {
	b.t.Helper()
	a := b.get(path)
	m := csrfRe.FindStringSubmatch(a.body)
	if m == nil || m[1] == "" {
		b.t.Fatalf("%s carries no CSRF token:\n%s", path, a.body)
	}
	return m[1]
}

func TestUISignIn(t *testing.T) {
	f := newUIFixture(t)
	b := f.browser(t)

	// Not signed in: a page sends the browser to sign in, and back after.
	a := b.get("/?x=1")
	if a.code != http.StatusSeeOther || a.header.Get("Location") != "/signin?next="+url.QueryEscape("/?x=1") {
		t.Fatalf("unsigned page: %d %q", a.code, a.header.Get("Location"))
	}
	if a := b.get("/signin"); a.code != 200 || !strings.Contains(a.body, `<label for="token">API token</label>`) {
		t.Fatalf("sign-in page: %d\n%s", a.code, a.body)
	}

	// A wrong token is refused with what to do.
	a = b.post("/signin", url.Values{"token": {"not-a-token-at-all-000"}})
	if a.code != http.StatusUnauthorized || !strings.Contains(a.body, "not one of ferry serve&#39;s API tokens") {
		t.Fatalf("wrong token: %d\n%s", a.code, a.body)
	}
	// A sign-in posted from another site's page is refused.
	req, _ := http.NewRequest(http.MethodPost, f.ui+"/signin", strings.NewReader(url.Values{"token": {viewerSecret}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	if a := b.do(req); a.code != http.StatusForbidden {
		t.Fatalf("cross-site sign-in: %d", a.code)
	}

	// The right token: a session cookie, HttpOnly and SameSite=Strict, not
	// Secure over plain HTTP, and never the token itself.
	a = b.post("/signin", url.Values{"token": {viewerSecret}, "next": {"//evil.example/"}})
	if a.code != http.StatusSeeOther || a.header.Get("Location") != "/" {
		t.Fatalf("sign-in: %d %q (an off-site next must become /)", a.code, a.header.Get("Location"))
	}
	set := a.header.Get("Set-Cookie")
	for _, want := range []string{sessionCookie + "=", "HttpOnly", "SameSite=Strict", "Path=/"} {
		if !strings.Contains(set, want) {
			t.Errorf("cookie %q lacks %s", set, want)
		}
	}
	if strings.Contains(set, "Secure") || strings.Contains(set, viewerSecret) {
		t.Errorf("cookie %q: Secure over HTTP, or the token in it", set)
	}
	a = b.get("/")
	if a.code != 200 || !strings.Contains(a.body, "vera") || !strings.Contains(a.body, "<h1>Overview</h1>") {
		t.Fatalf("overview: %d\n%s", a.code, a.body)
	}
	for h, want := range map[string]string{"Content-Security-Policy": "script-src 'self'", "X-Frame-Options": "DENY", "Cache-Control": "no-store"} {
		if !strings.Contains(a.header.Get(h), want) {
			t.Errorf("%s: %q, want %q", h, a.header.Get(h), want)
		}
	}

	// Behind a TLS proxy the cookie is Secure.
	req, _ = http.NewRequest(http.MethodPost, f.ui+"/signin", strings.NewReader(url.Values{"token": {viewerSecret}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Forwarded-Proto", "https")
	tls := f.browser(t).do(req)
	set = tls.header.Get("Set-Cookie")
	if !strings.HasPrefix(set, secureSessionCookie+"=") || !strings.Contains(set, "; Secure") || strings.Contains(set, "Domain=") {
		t.Errorf("over TLS the cookie is not a Secure __Host- cookie: %q", set)
	}
	// It opens pages over TLS; the plain name does not.
	value := strings.TrimPrefix(strings.SplitN(set, ";", 2)[0], secureSessionCookie+"=")
	for name, want := range map[string]int{secureSessionCookie: http.StatusOK, sessionCookie: http.StatusSeeOther} {
		req, _ = http.NewRequest(http.MethodGet, f.ui+"/", nil)
		req.Header.Set("X-Forwarded-Proto", "https")
		req.AddCookie(&http.Cookie{Name: name, Value: value})
		if a := f.browser(t).do(req); a.code != want {
			t.Errorf("over TLS with cookie %s: %d, want %d", name, a.code, want)
		}
	}

	// Sign-out takes the CSRF token, ends the session, and the old cookie
	// opens nothing.
	if a := b.post("/signout", url.Values{}); a.code != http.StatusForbidden {
		t.Fatalf("sign-out without CSRF: %d", a.code)
	}
	a = b.post("/signout", url.Values{"csrf": {b.csrf("/")}})
	if a.code != http.StatusSeeOther {
		t.Fatalf("sign-out: %d", a.code)
	}
	if p := b.get(a.header.Get("Location")); !strings.Contains(p.body, "Signed out.") || !strings.Contains(p.body, `id="token"`) {
		t.Fatalf("after sign-out, %s:\n%s", a.header.Get("Location"), p.body)
	}
	if a := b.get("/"); a.code != http.StatusSeeOther {
		t.Fatalf("after sign-out: %d", a.code)
	}
}

func TestUIForgedPostRefused(t *testing.T) {
	f := newUIFixture(t)
	b := f.signIn(t, adminSecret)
	token := b.csrf("/")
	// No token, a wrong token, and the right token from another site.
	for name, form := range map[string]url.Values{
		"none":  {},
		"wrong": {"csrf": {token + "x"}},
	} {
		if a := b.post("/signout", form); a.code != http.StatusForbidden || !strings.Contains(a.body, "CSRF") {
			t.Errorf("%s: %d\n%s", name, a.code, a.body)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, f.ui+"/signout", strings.NewReader(url.Values{"csrf": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	if a := b.do(req); a.code != http.StatusForbidden {
		t.Errorf("cross-site with the token: %d", a.code)
	}
	if a := b.get("/"); a.code != 200 {
		t.Fatalf("the session should have survived the forgeries: %d", a.code)
	}
}

func TestUILiveUpdates(t *testing.T) {
	f := newUIFixture(t)
	b := f.signIn(t, adminSecret)
	page := b.get("/")
	m := regexp.MustCompile(`data-live-hash="([0-9a-f]+)"`).FindStringSubmatch(page.body)
	if m == nil {
		t.Fatalf("the overview is not live:\n%s", page.body)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.ui+"/live?path=/&h="+m[1], nil)
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("live: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	// A source added through the API shows up on the open page.
	if _, err := f.client(t, adminSecret).AddSource(ctx, SourceRequest{Name: "shop", URL: gitRepo(t)}); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	go func() {
		var all strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			all.Write(buf[:n])
			if strings.Contains(all.String(), "event: live") && strings.Contains(all.String(), `data-source="shop"`) {
				got <- all.String()
				return
			}
			if err != nil {
				got <- all.String()
				return
			}
		}
	}()
	if s := <-got; !strings.Contains(s, `data-source="shop"`) {
		t.Fatalf("no live update with the new source:\n%s", s)
	}
}

func TestUILiveRefusesOtherPaths(t *testing.T) {
	f := newUIFixture(t)
	b := f.signIn(t, viewerSecret)
	for _, p := range []string{"//evil.example/", "/live?path=/", "http://evil.example/"} {
		if a := b.get("/live?path=" + url.QueryEscape(p)); a.code != http.StatusBadRequest {
			t.Errorf("live %s: %d", p, a.code)
		}
	}
	if a := f.browser(t).get("/live?path=/"); a.code != http.StatusUnauthorized {
		t.Errorf("live without a session: %d", a.code)
	}
}

func TestUISigninGuessesSlowed(t *testing.T) {
	f := newUIFixture(t)
	b := f.browser(t)
	for i := range maxSigninFailures {
		if a := b.post("/signin", url.Values{"token": {fmt.Sprintf("guess-%d-0123456789abcdef", i)}}); a.code != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d", i, a.code)
		}
	}
	// Past the limit even the right token waits: the address is slowed,
	// not the token.
	a := b.post("/signin", url.Values{"token": {adminSecret}})
	if a.code != http.StatusTooManyRequests || a.header.Get("Retry-After") == "" || !strings.Contains(a.body, "try again in") {
		t.Fatalf("after %d wrong tokens: %d %q\n%s", maxSigninFailures, a.code, a.header.Get("Retry-After"), a.body)
	}
}

func TestSigninFailuresForget(t *testing.T) {
	now := time.Unix(1000, 0)
	f := &signinFailures{m: map[string][]time.Time{}, now: func() time.Time { return now }}
	r := httptest.NewRequest(http.MethodPost, "/signin", nil)
	for range maxSigninFailures {
		f.add(r)
	}
	if f.wait(r) != signinWindow {
		t.Fatalf("wait %s, want %s", f.wait(r), signinWindow)
	}
	other := httptest.NewRequest(http.MethodPost, "/signin", nil)
	other.RemoteAddr = "192.0.2.7:4000"
	if f.wait(other) != 0 {
		t.Fatal("another address waits too")
	}
	now = now.Add(signinWindow + time.Second)
	if f.wait(r) != 0 || len(f.m) != 0 {
		t.Fatalf("after the window: wait %s, %d addresses kept", f.wait(r), len(f.m))
	}
}

func TestSessionsEnd(t *testing.T) {
	toks, err := newTokens(fixtureTokens)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	ss := newSessions(time.Hour, 10*time.Minute)
	ss.now = func() time.Time { return now }
	key := func(cookie string) [32]byte { return sha256.Sum256([]byte(cookie)) }

	c := ss.start(sha256.Sum256([]byte(viewerSecret)))
	if s, ok := ss.get(key(c), toks); !ok || s.id.Name != "vera" || !s.id.Has(RoleViewer) || s.id.Has(RoleApprover) {
		t.Fatalf("fresh session: %v %+v", ok, s)
	}
	// Used within the idle time, it lives until its TTL, not longer.
	for range 6 {
		now = now.Add(9 * time.Minute)
		if _, ok := ss.get(key(c), toks); !ok {
			t.Fatalf("ended at %s while in use", now)
		}
	}
	now = now.Add(9 * time.Minute) // 63 min after sign-in
	if _, ok := ss.get(key(c), toks); ok {
		t.Fatal("outlived its TTL")
	}
	// Idle too long.
	c = ss.start(sha256.Sum256([]byte(viewerSecret)))
	now = now.Add(11 * time.Minute)
	if _, ok := ss.get(key(c), toks); ok {
		t.Fatal("outlived its idle time")
	}
	// A token no longer configured ends its sessions; the new roles of a
	// token apply at once.
	c = ss.start(sha256.Sum256([]byte(deployerSecret)))
	fewer, _ := newTokens(fixtureTokens[:2])
	if _, ok := ss.get(key(c), fewer); ok {
		t.Fatal("a removed token's session lives on")
	}
	c = ss.start(sha256.Sum256([]byte(viewerSecret)))
	promoted, _ := newTokens([]Token{{Name: "vera", Secret: viewerSecret, Roles: []Role{RoleApprover}}})
	if s, ok := ss.get(key(c), promoted); !ok || !s.id.Has(RoleApprover) {
		t.Fatalf("roles not read again: %v %+v", ok, s)
	}
	// An unknown cookie opens nothing.
	if _, ok := ss.get(key("made-up"), toks); ok {
		t.Fatal("a made-up cookie opened a session")
	}
}
