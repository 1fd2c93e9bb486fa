package server

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/ferrycd/ferry/environments"
	"github.com/ferrycd/ferry/promote"
	"github.com/ferrycd/ferry/store"
	"github.com/ferrycd/ferry/watcher"
)

// SourceManager changes the watched sources: the watcher, with the store
// behind it.
type SourceManager interface {
	// Add validates s, records it and starts watching it.
	Add(ctx context.Context, s store.Source) error
	// Remove stops watching a source and forgets it (its runs stay).
	Remove(ctx context.Context, name string) error
	// Sync fetches the source now and returns after the fetch.
	Sync(ctx context.Context, name string) error
	// Status is what the watcher last saw.
	Status(name string) (store.SourceStatus, error)
}

// EnvironmentStatus asks an environment's target what it runs.
type EnvironmentStatus func(ctx context.Context, env string) (*environments.Status, error)

// APIConfig wires the API.
type APIConfig struct {
	Store        store.Store
	Tokens       []Token
	Sources      SourceManager
	Environments EnvironmentStatus
	// Promoter, when set, serves the promotion endpoints.
	Promoter promote.Promoter
	// LocalRoots are the folders (absolute, symlinks resolved) under which
	// a source added through the API may be a local repository; with none,
	// local paths and file:// URLs are refused.
	LocalRoots []string
	// Poll is how often a followed log looks for new lines (default 200 ms).
	Poll time.Duration
	// Log hears what cannot go back to a caller (an audit record that
	// could not be written).
	Log func(format string, args ...any)
	// Sandbox says how repository code runs (ServerView.Sandbox).
	Sandbox string
	// Functions, when set, serves the functions' logs and calls
	// (api_logs.go); Stopping is closed when the server stops, and ends
	// the log streams that would otherwise hold the shutdown up.
	Functions FunctionAccess
	Stopping  <-chan struct{}
	// EnvSecrets, when set, serves the environments' secrets.
	EnvSecrets EnvSecretManager
	// EnvironmentOrder is the configured environments in pipeline order,
	// the order in which they are listed (others follow, by name).
	EnvironmentOrder []string
	// EnvironmentSet, when set, says which environments exist now:
	// the lists show those only, in its order, previews with their URL
	// (api_previews.go).
	EnvironmentSet EnvironmentSet
	// Previews, when set, serves GET /api/v1/previews; without, it
	// answers 404.
	Previews PreviewLister
}

// api serves /api/v1.
type api struct {
	cfg    APIConfig
	tokens *tokens
	mux    *http.ServeMux
}

// maxAPIBody caps a request body: the API takes small JSON objects.
const maxAPIBody = 1 << 20

// NewAPI returns the handler of /api/v1/.
func NewAPI(cfg APIConfig) (http.Handler, error) {
	if cfg.Store == nil || cfg.Sources == nil || cfg.Environments == nil {
		return nil, errors.New("server: the API needs a store, sources and environments")
	}
	if cfg.Poll == 0 {
		cfg.Poll = 200 * time.Millisecond
	}
	if cfg.Log == nil {
		cfg.Log = func(string, ...any) {}
	}
	toks, err := newTokens(cfg.Tokens)
	if err != nil {
		return nil, err
	}
	a := &api{cfg: cfg, tokens: toks, mux: http.NewServeMux()}
	a.route("GET /api/v1/sources", RoleViewer, a.listSources)
	a.route("POST /api/v1/sources", RoleAdmin, a.addSource)
	a.route("DELETE /api/v1/sources/{name}", RoleAdmin, a.removeSource)
	a.route("POST /api/v1/sources/{name}/sync", RoleDeployer, a.syncSource)
	a.route("GET /api/v1/runs", RoleViewer, a.listRuns)
	a.route("GET /api/v1/runs/{id}", RoleViewer, a.getRun)
	a.route("GET /api/v1/runs/{id}/logs", RoleViewer, a.runLogs)
	a.route("GET /api/v1/releases", RoleViewer, a.listReleases)
	a.route("GET /api/v1/releases/{id}", RoleViewer, a.getRelease)
	a.route("GET /api/v1/environments", RoleViewer, a.listEnvironments)
	a.route("GET /api/v1/server", RoleViewer, a.getServer)
	a.route("GET /api/v1/environments/{name}", RoleViewer, a.getEnvironment)
	a.routesPromote()
	a.routesLogs()
	a.routesSecrets()
	a.routesDiff()
	a.routesPreviews()
	a.mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeJSONError(w, http.StatusNotFound, fmt.Sprintf("no API endpoint %s %s", r.Method, r.URL.Path))
	})
	return a.mux, nil
}

type apiHandler func(w http.ResponseWriter, r *http.Request, id Identity) error

// route registers h behind authentication and a role check.
func (a *api) route(pattern string, role Role, h apiHandler) {
	a.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		id, ok := a.tokens.authorize(w, r, role)
		if !ok {
			return
		}
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, maxAPIBody)
		}
		if err := h(w, r, id); err != nil {
			writeAPIError(w, err)
		}
	})
}

// apiError is an error with the status it answers.
type apiError struct {
	code int
	msg  string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &apiError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

func writeAPIError(w http.ResponseWriter, err error) {
	var ae *apiError
	var tooLarge *http.MaxBytesError
	var audit *store.AuditError
	switch {
	case errors.As(err, &audit):
		// why: the store's trouble, not the caller's; the message says what
		// was not done and what frees the store.
		writeJSONError(w, http.StatusServiceUnavailable, audit.Error())
	case errors.As(err, &ae):
		writeJSONError(w, ae.code, ae.msg)
	case errors.As(err, &tooLarge):
		writeJSONError(w, http.StatusRequestEntityTooLarge, "the request body is larger than 1 MiB")
	case errors.Is(err, store.ErrNotFound):
		writeJSONError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, store.ErrConflict):
		writeJSONError(w, http.StatusConflict, err.Error())
	default:
		writeJSONError(w, http.StatusInternalServerError, err.Error())
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeJSONError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, ErrorView{Error: msg})
}

// page reads ?limit= and ?before=.
func page(r *http.Request) (store.Page, error) {
	var p store.Page
	q := r.URL.Query()
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > store.MaxPageSize {
			return p, badRequest("limit %q: give a number from 1 to %d", s, store.MaxPageSize)
		}
		p.Limit = n
	}
	if s := q.Get("before"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 1 {
			return p, badRequest("before %q: give the next value of the previous page", s)
		}
		p.Before = n
	}
	return p, nil
}

// next is a page's Next: the last id when the page was full (there may be
// more), else 0.
func next(p store.Page, n int, last int64) int64 {
	limit := p.Limit
	if limit == 0 {
		limit = store.DefaultPageSize
	}
	if n < limit {
		return 0
	}
	return last
}

// ---- sources -----------------------------------------------------------------

func (a *api) listSources(w http.ResponseWriter, r *http.Request, _ Identity) error {
	srcs, err := a.cfg.Store.ListSources(r.Context())
	if err != nil {
		return err
	}
	out := []SourceView{}
	for _, s := range srcs {
		st, _ := a.cfg.Sources.Status(s.Name)
		out = append(out, sourceView(s, st))
	}
	writeJSON(w, http.StatusOK, ListPage[SourceView]{Items: out})
	return nil
}

func (a *api) addSource(w http.ResponseWriter, r *http.Request, id Identity) error {
	var req SourceRequest
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return err
		}
		return badRequest("the body is not a source: %v", err)
	}
	src, err := SourceFromRequest(req)
	if err != nil {
		return badRequest("%v", err)
	}
	if src, err = checkAPISource(src, a.cfg.LocalRoots); err != nil {
		return badRequest("%v", err)
	}
	ctx := a.event(r.Context(), id, "source.add", "source/"+src.Name, src.URL)
	if err := a.cfg.Sources.Add(ctx, src); err != nil {
		if store.IsAudit(err) {
			return err
		}
		if errors.Is(err, store.ErrConflict) {
			return &apiError{http.StatusConflict, fmt.Sprintf("a source named %s exists already; remove it first or pick another name", src.Name)}
		}
		return badRequest("%v", err)
	}
	st, _ := a.cfg.Sources.Status(src.Name)
	writeJSON(w, http.StatusCreated, sourceView(src, st))
	return nil
}

// SourceFromRequest checks a source as the API and the configuration
// give it, filling defaults: branch main, interval 1 minute, timeout 0
// (the watcher's default, 60 s).
func SourceFromRequest(req SourceRequest) (store.Source, error) {
	src := store.Source{Name: req.Name, URL: req.URL, Branch: req.Branch, WebhookSecret: req.WebhookSecret,
		Username: req.Username, Password: req.Password, SSHKey: req.SSHKey}
	if !validName(src.Name) {
		return src, fmt.Errorf("source name %q: use lower-case letters, digits and '-', starting with a letter, at most 63", src.Name)
	}
	if src.URL == "" {
		return src, fmt.Errorf("source %s: url is required (a path, file://, https:// or ssh://)", src.Name)
	}
	if src.Branch == "" {
		src.Branch = "main"
	}
	src.Interval = time.Minute
	if req.Interval != "" {
		d, err := time.ParseDuration(req.Interval)
		if err != nil || d < time.Second {
			return src, fmt.Errorf("source %s: interval %q: give a duration of at least 1s, e.g. 30s", src.Name, req.Interval)
		}
		src.Interval = d
	}
	if req.Timeout != "" {
		d, err := time.ParseDuration(req.Timeout)
		if err != nil || d < time.Second {
			return src, fmt.Errorf("source %s: timeout %q: give a duration of at least 1s, e.g. 60s, or leave it out for 60s", src.Name, req.Timeout)
		}
		src.Timeout = d
	}
	return src, nil
}

// sourceTimeout bounds each fetch of s.
func sourceTimeout(s store.Source) time.Duration {
	if s.Timeout > 0 {
		return s.Timeout
	}
	return watcher.DefaultFetchTimeout
}

// syncWait is how long a sync of s waits for its fetch: a fetch already
// running, then the one the sync asked for, each within the source's
// timeout, and a moment to queue.
func syncWait(s store.Source) time.Duration {
	return 2*sourceTimeout(s) + 5*time.Second
}

// validName: a DNS label, as environment and source names appear in URLs.
func validName(s string) bool {
	if s == "" || len(s) > 63 || s[0] < 'a' || s[0] > 'z' || s[len(s)-1] == '-' {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func (a *api) removeSource(w http.ResponseWriter, r *http.Request, id Identity) error {
	name := r.PathValue("name")
	src, err := a.cfg.Store.GetSource(r.Context(), name)
	if err != nil {
		return err
	}
	if src.FromConfig {
		return &apiError{http.StatusConflict, fmt.Sprintf("source %s comes from ferry serve's configuration; remove it there", name)}
	}
	if err := a.cfg.Sources.Remove(a.event(r.Context(), id, "source.remove", "source/"+name, ""), name); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *api) syncSource(w http.ResponseWriter, r *http.Request, id Identity) error {
	name := r.PathValue("name")
	src, err := a.cfg.Store.GetSource(r.Context(), name)
	if err != nil {
		return err
	}
	// why: a fetch changes nothing here, so its entry comes first and the
	// fetch only once the entry is written.
	if err := a.audit(r.Context(), id, "source.sync", "source/"+name, ""); err != nil {
		return err
	}
	wait := syncWait(src)
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	if err := a.cfg.Sources.Sync(ctx, name); err != nil {
		st, _ := a.cfg.Sources.Status(name)
		code, msg := http.StatusBadGateway, err.Error() // the watcher's error names the source and its URL
		if ctx.Err() != nil && r.Context().Err() == nil {
			// The answer comes at the deadline whatever the server does;
			// the watcher goes on and records the outcome.
			code = http.StatusGatewayTimeout
			msg = fmt.Sprintf("source %s: still fetching after %s; ferry goes on, and ferry sources list shows the outcome", name, watcher.ShowTimeout(wait))
		}
		writeJSON(w, code, struct {
			ErrorView
			Source SourceView `json:"source"`
		}{ErrorView{msg}, sourceView(src, st)})
		return nil
	}
	st, _ := a.cfg.Sources.Status(name)
	writeJSON(w, http.StatusOK, sourceView(src, st))
	return nil
}

// ---- runs -------------------------------------------------------------------

func (a *api) listRuns(w http.ResponseWriter, r *http.Request, _ Identity) error {
	p, err := page(r)
	if err != nil {
		return err
	}
	runs, err := a.cfg.Store.ListRuns(r.Context(), r.URL.Query().Get("source"), p)
	if err != nil {
		return err
	}
	out := []RunView{}
	for _, run := range runs {
		v := runView(run)
		if v.Fate, err = releaseFate(r.Context(), a.cfg.Store, run); err != nil {
			return err
		}
		out = append(out, v)
	}
	var last int64
	if len(runs) > 0 {
		last = runs[len(runs)-1].ID
	}
	writeJSON(w, http.StatusOK, ListPage[RunView]{Items: out, Next: next(p, len(runs), last)})
	return nil
}

func runID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		return 0, badRequest("run %q: a run is named by its number", r.PathValue("id"))
	}
	return id, nil
}

func (a *api) getRun(w http.ResponseWriter, r *http.Request, _ Identity) error {
	id, err := runID(r)
	if err != nil {
		return err
	}
	run, err := a.cfg.Store.GetRun(r.Context(), id)
	if err != nil {
		return err
	}
	v := runView(run)
	if v.Fate, err = releaseFate(r.Context(), a.cfg.Store, run); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// runLogs answers a run's log: JSON lines after ?after=, or with
// ?follow=true server-sent events (one "line" event per line, id = seq,
// so a reconnecting client resumes with Last-Event-ID) until the run is
// over, then an "end" event carrying the run.
func (a *api) runLogs(w http.ResponseWriter, r *http.Request, _ Identity) error {
	id, err := runID(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	if _, err := a.cfg.Store.GetRun(ctx, id); err != nil {
		return err
	}
	var after int64
	if s := cmp.Or(r.URL.Query().Get("after"), r.Header.Get("Last-Event-ID")); s != "" {
		if after, err = strconv.ParseInt(s, 10, 64); err != nil || after < 0 {
			return badRequest("after %q: give the seq of the last line you have", s)
		}
	}
	follow := r.URL.Query().Get("follow") == "true" || r.URL.Query().Get("follow") == "1"
	if !follow {
		lines, err := a.cfg.Store.Logs(ctx, id, after, 0)
		if err != nil {
			return err
		}
		out := []LogLineView{}
		for _, l := range lines {
			out = append(out, LogLineView{Seq: l.Seq, Step: l.Step, At: l.At, Text: l.Text})
		}
		writeJSON(w, http.StatusOK, ListPage[LogLineView]{Items: out})
		return nil
	}

	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // a proxy in front must not hold events back
	w.WriteHeader(http.StatusOK)
	rc.Flush()
	tick := time.NewTicker(a.cfg.Poll)
	defer tick.Stop()
	keepAlive := time.Now()
	for {
		// why: the run's state is read before its lines, so the lines read
		// after a run is seen done are all it will ever have.
		run, err := a.cfg.Store.GetRun(ctx, id)
		if err != nil {
			return nil // the stream has begun; the client sees it end
		}
		lines, err := a.cfg.Store.Logs(ctx, id, after, 500)
		if err != nil {
			return nil
		}
		for _, l := range lines {
			b, _ := json.Marshal(LogLineView{Seq: l.Seq, Step: l.Step, At: l.At, Text: l.Text})
			fmt.Fprintf(w, "id: %d\nevent: line\ndata: %s\n\n", l.Seq, b)
			after = l.Seq
		}
		if len(lines) == 500 {
			rc.Flush()
			continue // more are waiting
		}
		if run.Status.Done() {
			b, _ := json.Marshal(runView(run))
			fmt.Fprintf(w, "event: end\ndata: %s\n\n", b)
			rc.Flush()
			return nil
		}
		if len(lines) > 0 {
			rc.Flush()
		} else if time.Since(keepAlive) > 15*time.Second {
			// why: a comment line keeps idle proxies from closing the stream.
			io.WriteString(w, ": keep-alive\n\n")
			rc.Flush()
			keepAlive = time.Now()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// ---- releases ---------------------------------------------------------------

func (a *api) listReleases(w http.ResponseWriter, r *http.Request, _ Identity) error {
	p, err := page(r)
	if err != nil {
		return err
	}
	rels, err := a.cfg.Store.ListReleases(r.Context(), r.URL.Query().Get("source"), p)
	if err != nil {
		return err
	}
	out := []ReleaseView{}
	for _, rel := range rels {
		out = append(out, releaseView(rel, false))
	}
	var last int64
	if len(rels) > 0 {
		last = rels[len(rels)-1].Seq
	}
	writeJSON(w, http.StatusOK, ListPage[ReleaseView]{Items: out, Next: next(p, len(rels), last)})
	return nil
}

func (a *api) getRelease(w http.ResponseWriter, r *http.Request, _ Identity) error {
	id, err := a.resolveRelease(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	rel, err := a.cfg.Store.GetRelease(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, releaseView(rel, true))
	return nil
}

// ---- environments -------------------------------------------------------------

func (a *api) environmentView(ctx context.Context, e store.Environment) EnvironmentView {
	v := EnvironmentView{Name: e.Name, Target: e.Target, Release: e.Release, Held: e.Held, HoldReason: e.HoldReason,
		Frozen: e.Frozen, FreezeReason: e.FreezeReason, Updated: e.Updated}
	st, err := a.cfg.Environments(ctx, e.Name)
	if err != nil {
		v.Error = err.Error()
		return v
	}
	v.Functions = functionViews(st)
	if st.Release != "" && st.Release != e.Release {
		// why: the target is the truth of what runs; a difference means a
		// deployment is under way or failed half-way.
		v.Error = fmt.Sprintf("the target runs %s while the last deployment recorded %s", st.Release, cmp.Or(e.Release, "none"))
	}
	return v
}

func (a *api) listEnvironments(w http.ResponseWriter, r *http.Request, _ Identity) error {
	envs, err := a.cfg.Store.ListEnvironments(r.Context())
	if err != nil {
		return err
	}
	out := []EnvironmentView{}
	for _, e := range a.existing(envs) {
		out = append(out, a.environmentView(r.Context(), e))
	}
	a.ordered(out)
	writeJSON(w, http.StatusOK, ListPage[EnvironmentView]{Items: out})
	return nil
}

func (a *api) getEnvironment(w http.ResponseWriter, r *http.Request, _ Identity) error {
	e, err := a.cfg.Store.GetEnvironment(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	if err := a.exists(e); err != nil {
		return err
	}
	v := a.environmentView(r.Context(), e)
	if a.cfg.EnvironmentSet != nil {
		v.URL, v.Preview = a.cfg.EnvironmentSet.Preview(e.Name)
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// audit records what a caller is about to do that changes nothing in the
// store; the caller acts only when it returns nil.
func (a *api) audit(ctx context.Context, id Identity, action, object, detail string) error {
	_, err := a.cfg.Store.AppendEvent(context.WithoutCancel(ctx), store.Event{Actor: id.Name, Action: action, Object: object, Detail: detail})
	return err
}

// event returns ctx carrying the entry of what a caller does, so that the
// store writes it with the change, or refuses both.
func (a *api) event(ctx context.Context, id Identity, action, object, detail string) context.Context {
	return store.WithEvent(ctx, store.Event{Actor: id.Name, Action: action, Object: object, Detail: detail})
}
