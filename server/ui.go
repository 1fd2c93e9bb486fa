package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ferrycd/ferry/server/ui"
)

// The dashboard (ui*.go): server-rendered pages at / on the API's address.
// Every page reads through the API in-process (ui_client.go) as the
// signed-in identity, so the dashboard sees and may do exactly what that
// identity's token may through the API: the same role checks, the same
// audit entries, the same refusals. Actions are plain HTML forms carrying
// a CSRF token; the script only keeps pages current (ui_live.go).

// UIConfig wires the dashboard.
type UIConfig struct {
	// API is the handler of /api/v1/ (NewAPI).
	API    http.Handler
	Tokens []Token
	// Poll is how often a page open in a browser is rendered again to see
	// whether it changed (default 1 s).
	Poll time.Duration
	// SessionTTL bounds a session from its sign-in (default 12 h);
	// SessionIdle ends one unused that long (default 2 h).
	SessionTTL, SessionIdle time.Duration
	// Stopping ends the live streams when the server stops.
	Stopping <-chan struct{}
	Log      func(format string, args ...any)
}

type uiServer struct {
	cfg      UIConfig
	tokens   *tokens
	sessions *sessions
	failures *signinFailures
	pages    map[string]*template.Template
	mux      *http.ServeMux
	version  string // of the static assets, for their URLs
}

// NewUI returns the dashboard's handler, to serve at /.
func NewUI(cfg UIConfig) (http.Handler, error) {
	u, err := newUI(cfg)
	if err != nil {
		return nil, err
	}
	return securityHeaders(u.mux), nil
}

func newUI(cfg UIConfig) (*uiServer, error) {
	if cfg.API == nil {
		return nil, errors.New("server: the dashboard needs the API")
	}
	if cfg.Poll == 0 {
		cfg.Poll = time.Second
	}
	if cfg.Log == nil {
		cfg.Log = func(string, ...any) {}
	}
	toks, err := newTokens(cfg.Tokens)
	if err != nil {
		return nil, err
	}
	u := &uiServer{cfg: cfg, tokens: toks, sessions: newSessions(cfg.SessionTTL, cfg.SessionIdle), mux: http.NewServeMux(),
		failures: &signinFailures{m: map[string][]time.Time{}, now: time.Now}}
	if err := u.parse(); err != nil {
		return nil, err
	}
	static, err := fs.Sub(ui.Static, "static")
	if err != nil {
		return nil, err
	}
	u.version = assetsVersion(static)
	u.mux.Handle("GET /assets/", http.StripPrefix("/assets/", assetsHandler(static)))
	u.mux.HandleFunc("GET /signin", u.signinPage)
	u.mux.HandleFunc("POST /signin", u.signin)
	u.action("POST /signout", RoleViewer, u.signout)
	u.mux.HandleFunc("GET /live", u.live)
	u.page("GET /{$}", u.overview)
	u.routesRuns()
	u.routesEnvironments()
	u.routesReleases()
	u.routesPromotions()
	u.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		u.renderError(w, r, http.StatusNotFound, "Not found", fmt.Sprintf("ferry has no page %s.", r.URL.Path))
	})
	return u, nil
}

// securityHeaders: the pages load only their own script and style, are
// never framed, and do not leak their URLs to other sites.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "same-origin")
		h.ServeHTTP(w, r)
	})
}

func assetsVersion(static fs.FS) string {
	h := sha256.New()
	fs.WalkDir(static, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := fs.ReadFile(static, p)
			h.Write([]byte(p))
			h.Write(b)
		}
		return nil
	})
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// assetsHandler serves the embedded assets; their URLs carry the assets'
// version, so a browser may keep them.
func assetsHandler(static fs.FS) http.Handler {
	files := http.FileServerFS(static)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("v") != "" {
			w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			w.Header().Set("Cache-Control", "no-cache")
		}
		files.ServeHTTP(w, r)
	})
}

// ---- pages -----------------------------------------------------------------

// uiPage is what every template gets: the page's own Data, and the frame's
// fields filled by render.
type uiPage struct {
	Nav   string // the menu entry to mark current
	Data  any
	Flash string
	Error string
	// Live, when set, is the path the page's live part is rendered from
	// again (normally the page's own path and query).
	Live     string
	LiveHash string

	Signed  bool
	Who     string
	Roles   []string
	CSRF    string
	Version string
	id      Identity
}

// Can says whether the signed-in identity holds role: the templates offer
// only the buttons it may use. The API checks again when one is used.
func (p uiPage) Can(role string) bool {
	return p.Signed && p.id.Has(Role(role))
}

func (u *uiServer) parse() error {
	u.pages = map[string]*template.Template{}
	names, err := fs.Glob(ui.Templates, "templates/*.html")
	if err != nil {
		return err
	}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" || base == "parts" {
			continue
		}
		files := []string{"templates/layout.html", n}
		if slices.Contains(names, "templates/parts.html") {
			files = append(files, "templates/parts.html")
		}
		t, err := template.New(base).Funcs(uiFuncs).ParseFS(ui.Templates, files...)
		if err != nil {
			return fmt.Errorf("dashboard template %s: %w", n, err)
		}
		u.pages[base] = t
	}
	return nil
}

// fragmentKey marks a render for a live update: the live part only.
type fragmentKey struct{}

// render writes page name for s (nil: nobody signed in).
func (u *uiServer) render(w http.ResponseWriter, r *http.Request, s *uiSession, code int, name string, p uiPage) {
	t, ok := u.pages[name]
	if !ok {
		http.Error(w, "no page template "+name, http.StatusInternalServerError)
		return
	}
	p.Version = u.version
	if s != nil {
		p.Signed, p.Who, p.CSRF, p.id = true, s.id.Name, s.csrf, s.id
		for _, role := range s.id.Roles {
			p.Roles = append(p.Roles, string(role))
		}
	}
	fragment := r.Context().Value(fragmentKey{}) != nil
	if s != nil && !fragment && p.Flash == "" && p.Error == "" {
		p.Flash, p.Error = u.sessions.popFlash(s)
	}
	var buf bytes.Buffer
	err := t.ExecuteTemplate(&buf, "live", p)
	if err == nil && !fragment {
		// why: the live stream compares its first render with this hash,
		// so a change between this page and the stream is not missed.
		p.LiveHash = liveHash(buf.Bytes())
		buf.Reset()
		err = t.ExecuteTemplate(&buf, "layout", p)
	}
	if err != nil {
		u.cfg.Log("dashboard: page %s: %v", name, err)
		http.Error(w, "the page could not be drawn: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(buf.Bytes())
}

func (u *uiServer) renderError(w http.ResponseWriter, r *http.Request, code int, title, msg string) {
	s, _ := u.sessions.fromRequest(r, u.tokens)
	u.render(w, r, s, code, "error", uiPage{Data: struct{ Title, Message string }{title, msg}})
}

// uiHandler serves a page or an action for a signed-in session. An error
// it returns is drawn as an error page: an API refusal with its status and
// message.
type uiHandler func(w http.ResponseWriter, r *http.Request, s *uiSession) error

// page registers a page: without a session it sends the browser to sign
// in, and back here after.
func (u *uiServer) page(pattern string, h uiHandler) {
	u.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		s, ok := u.sessions.fromRequest(r, u.tokens)
		if !ok {
			if r.Context().Value(fragmentKey{}) != nil {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			http.Redirect(w, r, "/signin?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		u.serve(w, r, s, h)
	})
}

// action registers a form's target: it takes a session, the session's
// CSRF token and a request from this origin, and role, before h.
func (u *uiServer) action(pattern string, role Role, h uiHandler) {
	u.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		s, ok := u.sessions.fromRequest(r, u.tokens)
		if !ok {
			u.renderError(w, r, http.StatusUnauthorized, "Signed out", "Your session has ended. Sign in again, then repeat what you did.")
			return
		}
		if !sameOrigin(r) || !s.checkCSRF(r.PostFormValue("csrf")) {
			u.renderError(w, r, http.StatusForbidden, "Refused", "This form did not carry the page's CSRF token, or came from another site. Reload the page and try again.")
			return
		}
		if !s.id.Has(role) {
			u.renderError(w, r, http.StatusForbidden, "Not allowed", fmt.Sprintf("%s lacks the %s role this needs.", s.id.Name, role))
			return
		}
		u.serve(w, r, s, h)
	})
}

func (u *uiServer) serve(w http.ResponseWriter, r *http.Request, s *uiSession, h uiHandler) {
	if err := h(w, r, s); err != nil {
		var se *StatusError
		switch {
		case errors.As(err, &se):
			u.render(w, r, s, se.Code, "error", uiPage{Data: struct{ Title, Message string }{http.StatusText(se.Code), se.Message}})
		case errors.Is(err, context.Canceled):
		default:
			u.render(w, r, s, http.StatusInternalServerError, "error", uiPage{Data: struct{ Title, Message string }{"Something went wrong", err.Error()}})
		}
	}
}

// back sends the browser to path after an action (POST, redirect, GET),
// with a message for the next page.
func (u *uiServer) back(w http.ResponseWriter, r *http.Request, s *uiSession, path, flash string, err error) {
	msg := ""
	if err != nil {
		var se *StatusError
		msg = err.Error()
		if errors.As(err, &se) {
			msg = se.Message
		}
	}
	u.sessions.setFlash(s, flash, msg)
	if !localPath(path) {
		path = "/"
	}
	http.Redirect(w, r, path, http.StatusSeeOther)
}

func liveHash(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// pageBefore reads a list page's ?before=: 0 for the newest page.
func pageBefore(r *http.Request) (int64, error) {
	b := r.URL.Query().Get("before")
	if b == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(b, 10, 64)
	if err != nil || n < 1 {
		return 0, &StatusError{Code: http.StatusBadRequest, Message: fmt.Sprintf("before=%q is not a page of this list: follow its Older link, or leave before out for the newest", b)}
	}
	return n, nil
}

// localPath: a path on this site, never another (//host, /\host). No
// control characters either: browsers drop tabs and newlines from a URL,
// so "/<TAB>/host" is "//host" to them.
func localPath(p string) bool {
	return strings.HasPrefix(p, "/") && !strings.HasPrefix(p, "//") && !strings.HasPrefix(p, "/\\") &&
		!strings.ContainsFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f })
}
