package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ferrycd/ferry/environments"
	"github.com/ferrycd/ferry/environments/embedded"
)

// FunctionAccess reads the logs of the environments' functions and calls
// them: the embedded targets behind ferry serve. An environment it does
// not know, or a function an environment does not run, is an error that
// names what exists (served as 404).
type FunctionAccess interface {
	// Logs returns the lines q picks of env's function's log, oldest first.
	Logs(env, function string, q embedded.LogQuery) ([]embedded.LogLine, error)
	// FollowLogs returns the same and a follower of the lines after them,
	// which the caller must close.
	FollowLogs(env, function string, q embedded.LogQuery) ([]embedded.LogLine, *embedded.LogFollower, error)
	// Invoke calls env's function through the gateway with method on path
	// (its invoke route when path is ""), sending body of length bytes
	// (-1: unknown; nil body: none), and returns the answer.
	Invoke(ctx context.Context, env, function, method, path string, header http.Header, body io.Reader, length int64) (*http.Response, error)
}

// Function log streams.
const (
	// logHeartbeat is how often an idle followed log sends a comment, so
	// proxies and load balancers do not close the stream (most close
	// after 30 to 60 s of silence).
	logHeartbeat = 15 * time.Second
	// maxInvokeAnswer caps a function's answer the API passes on: the
	// gateway's own limit on a request, as an answer is as large as what
	// a caller sends at most in practice.
	maxInvokeAnswer = 6 << 20
)

// InvokedHeader marks an answer of the invoke endpoint that came from the
// function (through the gateway), whatever its status, so a client tells
// a function's 404 from the API's.
const InvokedHeader = "Ferry-Invoked"

// FunctionLocationHeader carries the Location of a function's answer
// through the invoke endpoint, which never answers with a Location of its
// own.
const FunctionLocationHeader = "Ferry-Function-Location"

// FunctionLogView is one line of a function's log.
type FunctionLogView struct {
	Seq    uint64    `json:"seq"`
	Time   time.Time `json:"time"`
	Stream string    `json:"stream"` // stdout, stderr, access or ferry
	PID    int       `json:"pid,omitempty"`
	Text   string    `json:"text"`
}

func functionLogView(l embedded.LogLine) FunctionLogView {
	return FunctionLogView{Seq: l.Seq, Time: l.Time, Stream: l.Stream, PID: l.PID, Text: l.Text}
}

// MissedView says how many lines a follower lost by falling behind.
type MissedView struct {
	Missed uint64 `json:"missed"`
}

func (a *api) routesLogs() {
	a.route("GET /api/v1/environments/{env}/functions/{fn}/logs", RoleViewer, a.functionLogs)
	a.route("POST /api/v1/environments/{env}/functions/{fn}/invoke", RoleDeployer, a.invokeFunction)
}

// functionAccess is the configured FunctionAccess, or the error that says
// why there is none.
func (a *api) functionAccess() (FunctionAccess, error) {
	if a.cfg.Functions == nil {
		return nil, &apiError{http.StatusNotImplemented, "this server does not serve function logs or calls"}
	}
	return a.cfg.Functions, nil
}

// logQuery reads ?tail=N and ?since=DURATION|RFC3339.
func logQuery(r *http.Request, now time.Time) (embedded.LogQuery, error) {
	var q embedded.LogQuery
	v := r.URL.Query()
	if s := v.Get("tail"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return q, badRequest("tail %q: give a number of lines, 0 for all that are kept", s)
		}
		q.Tail = n
	}
	if s := v.Get("since"); s != "" {
		t, err := parseSince(s, now)
		if err != nil {
			return q, badRequest("%v", err)
		}
		q.Since = t
	}
	return q, nil
}

// parseSince reads a duration back from now (10m) or a time (RFC 3339).
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("since %q: give a duration back from now (10m, 1h30m) or a time (2006-01-02T15:04:05Z)", s)
}

// wantsStream reports whether a log request asks to follow.
func wantsStream(r *http.Request) bool {
	switch r.URL.Query().Get("follow") {
	case "true", "1":
		return true
	}
	return strings.Contains(r.Header.Get("Accept"), "text/event-stream")
}

// notFound answers a target's "no such function" as 404; other errors
// stay as they are.
func notFound(err error) error {
	var nf *embedded.NoFunctionError
	if errors.As(err, &nf) {
		return &apiError{http.StatusNotFound, err.Error()}
	}
	return err
}

// functionLogs answers a function's recent log lines as JSON, or with
// ?follow=true (or Accept: text/event-stream) streams them as server-sent
// events: a "log" event per line (id = its seq), a "missed" event when
// the client fell too far behind and lines were dropped for it, and a
// comment every logHeartbeat while idle. The stream ends when the client
// goes or the server stops.
func (a *api) functionLogs(w http.ResponseWriter, r *http.Request, _ Identity) error {
	fa, err := a.functionAccess()
	if err != nil {
		return err
	}
	env, fn := r.PathValue("env"), r.PathValue("fn")
	q, err := logQuery(r, time.Now())
	if err != nil {
		return err
	}
	if !wantsStream(r) {
		lines, err := fa.Logs(env, fn, q)
		if err != nil {
			return notFound(err)
		}
		out := make([]FunctionLogView, 0, len(lines))
		for _, l := range lines {
			out = append(out, functionLogView(l))
		}
		writeJSON(w, http.StatusOK, ListPage[FunctionLogView]{Items: out})
		return nil
	}

	lines, f, err := fa.FollowLogs(env, fn, q)
	if err != nil {
		return notFound(err)
	}
	defer f.Close()
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // a proxy in front must not hold events back
	w.WriteHeader(http.StatusOK)
	for _, l := range lines {
		writeLogEvent(w, l)
	}
	if err := rc.Flush(); err != nil {
		return nil
	}
	beat := time.NewTicker(logHeartbeat)
	defer beat.Stop()
	for {
		select {
		case <-r.Context().Done():
			return nil
		case <-a.cfg.Stopping:
			return nil
		case <-beat.C:
			io.WriteString(w, ": keep-alive\n\n")
		case l := <-f.C():
			if n := f.Missed(); n > 0 {
				b, _ := json.Marshal(MissedView{Missed: n})
				fmt.Fprintf(w, "event: missed\ndata: %s\n\n", b)
			}
			writeLogEvent(w, l)
			// why: what else is waiting goes in the same write.
			for drained := false; !drained; {
				select {
				case l := <-f.C():
					writeLogEvent(w, l)
				default:
					drained = true
				}
			}
		}
		if err := rc.Flush(); err != nil {
			return nil // the client is gone
		}
	}
}

func writeLogEvent(w io.Writer, l embedded.LogLine) {
	b, _ := json.Marshal(functionLogView(l))
	fmt.Fprintf(w, "id: %d\nevent: log\ndata: %s\n\n", l.Seq, b)
}

// invokeFunction calls a function through the gateway with the request's
// body and content headers, and answers with the function's status,
// headers and body, marked with InvokedHeader. ?method= and ?path= pick
// an HTTPTrigger's route instead of the function's invoke route.
func (a *api) invokeFunction(w http.ResponseWriter, r *http.Request, id Identity) error {
	fa, err := a.functionAccess()
	if err != nil {
		return err
	}
	env, fn := r.PathValue("env"), r.PathValue("fn")
	method, path := r.URL.Query().Get("method"), r.URL.Query().Get("path")
	if path != "" && !strings.HasPrefix(path, "/") {
		return badRequest("path %q: give the HTTPTrigger's path, starting with /", path)
	}
	header := http.Header{}
	for k, vs := range r.Header {
		// The body's description and a CloudEvent's attributes pass; the
		// caller's token never reaches the function.
		if k == "Content-Type" || strings.HasPrefix(k, "Ce-") {
			header[k] = vs
		}
	}
	var body io.Reader = r.Body
	if r.ContentLength == 0 {
		body = nil
	}
	if err := a.audit(r.Context(), id, "function.invoke", "environment/"+env+"/function/"+fn, strings.TrimSpace(method+" "+path)); err != nil {
		return err
	}
	resp, err := fa.Invoke(r.Context(), env, fn, method, path, header, body, r.ContentLength)
	if err != nil {
		var tooLarge *http.MaxBytesError
		var nf *embedded.NoFunctionError
		var ae *apiError
		switch {
		case errors.As(err, &tooLarge), errors.As(err, &ae):
			return err
		case errors.As(err, &nf):
			return notFound(err)
		}
		return &apiError{http.StatusBadGateway, err.Error()}
	}
	defer resp.Body.Close()
	out := w.Header()
	for k, vs := range resp.Header {
		switch k {
		case "Content-Length", "Connection", "Transfer-Encoding", "Set-Cookie":
			continue // the length is the server's to write; a cookie is the gateway's origin's, not the API's
		case "Location":
			// why: a redirect of the API's origin would send a client that
			// follows it (the caller's token with it, as the host is the
			// same) wherever the function says: another API route, or the
			// gateway, where the function reads the token.
			out[FunctionLocationHeader] = vs
			continue
		}
		out[k] = vs
	}
	out.Set(InvokedHeader, env+"/"+fn)
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, io.LimitReader(resp.Body, maxInvokeAnswer))
	return nil
}

// embeddedFunctions is FunctionAccess over ferry serve's targets whose
// logs and invoke route ferry serves itself: the embedded ones.
type embeddedFunctions struct {
	target func(env string) (environments.Target, error)
	client *http.Client
}

// newEmbeddedFunctions serves the functions of the targets target returns
// (an unknown environment is its error).
func newEmbeddedFunctions(target func(env string) (environments.Target, error)) *embeddedFunctions {
	// The gateway is on this machine: no proxy, whatever the host says.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	return &embeddedFunctions{target: target, client: &http.Client{Transport: tr,
		// why: a function's redirect is its answer, passed on; following it
		// would fetch, from the host, a URL of the host's network that the
		// function, loopback only, cannot reach itself.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (e *embeddedFunctions) env(name string) (functionLogs, error) {
	t, err := e.target(name)
	if err != nil {
		return nil, &apiError{http.StatusNotFound, err.Error()}
	}
	l, ok := t.(functionLogs)
	if !ok {
		return nil, &apiError{http.StatusNotImplemented, fmt.Sprintf("environment %s runs on a cluster, whose functions' logs and invoke route ferry does not serve; read the logs with kubectl logs -l ferry.dev/function=FUNCTION in its namespace, and call its functions at their URLs (ferry status shows them when the environment has a gatewayURL; else kubectl port-forward service/FUNCTION 8080:80 in its namespace)", name)}
	}
	return l, nil
}

func (e *embeddedFunctions) Logs(env, function string, q embedded.LogQuery) ([]embedded.LogLine, error) {
	t, err := e.env(env)
	if err != nil {
		return nil, err
	}
	return t.Logs(function, q)
}

func (e *embeddedFunctions) FollowLogs(env, function string, q embedded.LogQuery) ([]embedded.LogLine, *embedded.LogFollower, error) {
	t, err := e.env(env)
	if err != nil {
		return nil, nil, err
	}
	return t.FollowLogs(function, q)
}

func (e *embeddedFunctions) Invoke(ctx context.Context, env, function, method, path string, header http.Header, body io.Reader, length int64) (*http.Response, error) {
	t, err := e.env(env)
	if err != nil {
		return nil, err
	}
	url, err := t.InvokeURL(function, method, path)
	if err != nil {
		var nf *embedded.NoFunctionError
		if errors.As(err, &nf) {
			return nil, err
		}
		return nil, badRequest("%v", err)
	}
	if method == "" {
		method = http.MethodPost
	}
	req, err := http.NewRequestWithContext(ctx, strings.ToUpper(method), url, body)
	if err != nil {
		return nil, err
	}
	req.Header = header
	if body != nil {
		req.ContentLength = length
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("calling function %s in %s through the gateway: %w", function, env, err)
	}
	return resp, nil
}
