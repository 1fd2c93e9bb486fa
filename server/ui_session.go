package server

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// Sessions: signing in exchanges an API token for a random session id in
// an HttpOnly, SameSite=Strict cookie (Secure over TLS). The browser never
// keeps the token. A session holds the hash of the token it came from and
// looks the identity up again on every request, so a token removed from
// the configuration, or given other roles, changes its sessions at once.
//
// Decision: sessions live in memory. A restart of ferry serve signs
// everyone out; a session is never written to disk, where a copy of the
// data folder would carry it away.

const sessionCookie = "ferry_session"

// secureSessionCookie is the cookie's name over TLS. why: a browser keeps
// a __Host- cookie only when it is Secure, for this host and path /, so
// a sibling subdomain cannot plant one.
const secureSessionCookie = "__Host-" + sessionCookie

// cookieName is the session cookie's name for r's scheme.
func cookieName(r *http.Request) string {
	if secure(r) {
		return secureSessionCookie
	}
	return sessionCookie
}

// maxSessions bounds memory: past it, the oldest session ends.
const maxSessions = 10000

type sessions struct {
	mu        sync.Mutex
	m         map[[sha256.Size]byte]*uiSession
	ttl, idle time.Duration
	now       func() time.Time
	live      map[[sha256.Size]byte]int // open live streams by session (ui_live.go)
}

// uiSession is one signed-in browser.
type uiSession struct {
	key             [sha256.Size]byte // the cookie's hash: the cookie itself is kept nowhere
	token           [sha256.Size]byte
	csrf            string
	created, seen   time.Time
	flash, flashBad string

	id Identity // as of this request
}

func newSessions(ttl, idle time.Duration) *sessions {
	if ttl == 0 {
		ttl = 12 * time.Hour
	}
	if idle == 0 {
		idle = 2 * time.Hour
	}
	return &sessions{m: map[[sha256.Size]byte]*uiSession{}, ttl: ttl, idle: idle, now: time.Now}
}

func randomString() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// start makes a session for the token hashed as token and returns the
// cookie's value.
func (ss *sessions) start(token [sha256.Size]byte) string {
	value := randomString()
	now := ss.now()
	s := &uiSession{key: sha256.Sum256([]byte(value)), token: token, csrf: randomString(), created: now, seen: now}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if len(ss.m) >= maxSessions {
		var oldest *uiSession
		for _, o := range ss.m {
			if oldest == nil || o.seen.Before(oldest.seen) {
				oldest = o
			}
		}
		delete(ss.m, oldest.key)
	}
	ss.m[s.key] = s
	return value
}

// fromRequest returns r's session, with the identity its token has now,
// or false (no cookie, unknown, expired, or its token gone).
func (ss *sessions) fromRequest(r *http.Request, toks *tokens) (*uiSession, bool) {
	if s, ok := r.Context().Value(sessionKey{}).(*uiSession); ok {
		return s, true
	}
	c, err := r.Cookie(cookieName(r))
	if err != nil || c.Value == "" {
		return nil, false
	}
	return ss.get(sha256.Sum256([]byte(c.Value)), toks)
}

func (ss *sessions) get(key [sha256.Size]byte, toks *tokens) (*uiSession, bool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s, ok := ss.m[key]
	if !ok {
		return nil, false
	}
	now := ss.now()
	if now.Sub(s.created) > ss.ttl || now.Sub(s.seen) > ss.idle {
		delete(ss.m, key)
		return nil, false
	}
	id, ok := toks.bySum(s.token)
	if !ok {
		delete(ss.m, key)
		return nil, false
	}
	s.seen = now
	cp := *s
	cp.id = id
	return &cp, true
}

// end signs a session out.
func (ss *sessions) end(s *uiSession) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.m, s.key)
}

// setFlash keeps a message for the session's next page.
func (ss *sessions) setFlash(s *uiSession, ok, bad string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if live, found := ss.m[s.key]; found {
		live.flash, live.flashBad = ok, bad
	}
}

// popFlash takes the session's message, once.
func (ss *sessions) popFlash(s *uiSession) (ok, bad string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if live, found := ss.m[s.key]; found {
		ok, bad = live.flash, live.flashBad
		live.flash, live.flashBad = "", ""
	}
	return ok, bad
}

// sessionKey carries a session in a request the dashboard makes itself
// (a live update renders the page again as its session).
type sessionKey struct{}

// checkCSRF compares a form's token with the session's, in constant time.
func (s *uiSession) checkCSRF(got string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) == 1
}

// sameOrigin refuses a request another site's page made: browsers say so
// in Sec-Fetch-Site and Origin. why: on top of the CSRF token, and the
// only guard of the sign-in form, which has no session yet.
func sameOrigin(r *http.Request) bool {
	if sfs := r.Header.Get("Sec-Fetch-Site"); sfs != "" && sfs != "same-origin" && sfs != "none" {
		return false
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return false
		}
	}
	return true
}

// secure says whether the browser reached ferry over TLS (directly, or
// through a proxy that says so); only then may a cookie be Secure.
func secure(r *http.Request) bool {
	return r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https"
}

func (u *uiServer) setCookie(w http.ResponseWriter, r *http.Request, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: cookieName(r), Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: secure(r), SameSite: http.SameSiteStrictMode})
}

type signinData struct{ Next string }

// signinFailures slows down guessing: past maxSigninFailures wrong tokens
// from one address within signinWindow, that address waits out the window.
// why: tokens are long enough that guessing is hopeless, but a flood of
// guesses still costs CPU and fills logs.
type signinFailures struct {
	mu  sync.Mutex
	m   map[string][]time.Time
	now func() time.Time
}

const (
	maxSigninFailures = 10
	signinWindow      = time.Minute
)

func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// recent drops failures older than the window; mu held.
func (f *signinFailures) recent(addr string) []time.Time {
	now := f.now()
	list := f.m[addr]
	for len(list) > 0 && now.Sub(list[0]) > signinWindow {
		list = list[1:]
	}
	if len(list) == 0 {
		delete(f.m, addr)
		return nil
	}
	f.m[addr] = list
	return list
}

func (f *signinFailures) add(r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	addr := clientAddr(r)
	list := f.recent(addr)
	if len(f.m) >= maxSessions && list == nil {
		clear(f.m) // why: bounded memory; a flood from many addresses only resets the count
	}
	f.m[addr] = append(list, f.now())
}

// wait is how long r's address must wait before it may try again.
func (f *signinFailures) wait(r *http.Request) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	list := f.recent(clientAddr(r))
	if len(list) < maxSigninFailures {
		return 0
	}
	return signinWindow - f.now().Sub(list[len(list)-maxSigninFailures])
}

func (u *uiServer) signinPage(w http.ResponseWriter, r *http.Request) {
	next := r.URL.Query().Get("next")
	if !localPath(next) {
		next = "/"
	}
	if _, ok := u.sessions.fromRequest(r, u.tokens); ok {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	p := uiPage{Data: signinData{Next: next}}
	if r.URL.Query().Has("out") {
		p.Flash = "Signed out. Sign in again with a token." // a fixed text: the query only picks it
	}
	u.render(w, r, nil, http.StatusOK, "signin", p)
}

func (u *uiServer) signin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	next := r.PostFormValue("next")
	if !localPath(next) {
		next = "/"
	}
	if !sameOrigin(r) {
		u.render(w, r, nil, http.StatusForbidden, "signin", uiPage{Data: signinData{Next: next},
			Error: "This sign-in came from another site's page. Open ferry's own sign-in page and sign in there."})
		return
	}
	if wait := u.failures.wait(r); wait > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait/time.Second)+1))
		u.render(w, r, nil, http.StatusTooManyRequests, "signin", uiPage{Data: signinData{Next: next},
			Error: fmt.Sprintf("Too many wrong tokens from your address; try again in %d s.", int(wait/time.Second)+1)})
		return
	}
	sum := sha256.Sum256([]byte(r.PostFormValue("token")))
	id, ok := u.tokens.bySum(sum)
	if !ok {
		u.failures.add(r)
		u.render(w, r, nil, http.StatusUnauthorized, "signin", uiPage{Data: signinData{Next: next},
			Error: "That is not one of ferry serve's API tokens. Use a token from its configuration (tokens:)."})
		return
	}
	if old, ok := u.sessions.fromRequest(r, u.tokens); ok {
		// why: the browser takes the new cookie; the old session would
		// live on where no sign-out reaches it, open to whoever has a copy.
		u.sessions.end(old)
	}
	u.setCookie(w, r, u.sessions.start(sum), int(u.sessions.ttl/time.Second))
	u.cfg.Log("dashboard: %s signed in", id.Name)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (u *uiServer) signout(w http.ResponseWriter, r *http.Request, s *uiSession) error {
	u.sessions.end(s)
	u.setCookie(w, r, "", -1)
	http.Redirect(w, r, "/signin?out", http.StatusSeeOther)
	return nil
}
