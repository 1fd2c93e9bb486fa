package server

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferrycd/ferry/environments"
	"github.com/ferrycd/ferry/environments/embedded"
	"github.com/ferrycd/ferry/store"
)

// hang bounds a wait that only a hang would reach.
const hang = 60 * time.Second

// fakeFunctions serves the logs of real embedded.FunctionLogs, and calls
// a real HTTP server standing in for the gateway.
type fakeFunctions struct {
	logs    map[string]*embedded.FunctionLog // by env/function
	gateway string
}

func (f *fakeFunctions) log(env, function string) (*embedded.FunctionLog, error) {
	l, ok := f.logs[env+"/"+function]
	if !ok {
		return nil, &embedded.NoFunctionError{Environment: env, Function: function, Functions: []string{"hello"}}
	}
	return l, nil
}

func (f *fakeFunctions) Logs(env, function string, q embedded.LogQuery) ([]embedded.LogLine, error) {
	l, err := f.log(env, function)
	if err != nil {
		return nil, err
	}
	return l.Lines(q), nil
}

func (f *fakeFunctions) FollowLogs(env, function string, q embedded.LogQuery) ([]embedded.LogLine, *embedded.LogFollower, error) {
	l, err := f.log(env, function)
	if err != nil {
		return nil, nil, err
	}
	lines, fl := l.Follow(q)
	return lines, fl, nil
}

func (f *fakeFunctions) Invoke(ctx context.Context, env, function, method, path string, header http.Header, body io.Reader, length int64) (*http.Response, error) {
	if _, err := f.log(env, function); err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, method, f.gateway+"/"+env+path, body)
	if err != nil {
		return nil, err
	}
	req.Header = header
	return http.DefaultClient.Do(req)
}

// noSources is a SourceManager for tests that touch no source.
type noSources struct{}

func (noSources) Add(context.Context, store.Source) error { return errors.New("no sources here") }
func (noSources) Remove(context.Context, string) error    { return errors.New("no sources here") }
func (noSources) Sync(context.Context, string) error      { return errors.New("no sources here") }
func (noSources) Status(string) (store.SourceStatus, error) {
	return store.SourceStatus{}, errors.New("no sources here")
}

type logsFixture struct {
	url      string
	hello    *embedded.FunctionLog
	stopping chan struct{}
}

func newLogsFixture(t *testing.T) *logsFixture {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "ferry.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("X-Fn", "hello")
		if r.URL.Path == "/dev/fail" {
			w.WriteHeader(http.StatusInternalServerError)
		}
		io.WriteString(w, r.Method+" "+r.URL.Path+" "+r.Header.Get("Content-Type")+" "+r.Header.Get("Authorization")+" "+string(b))
	}))
	t.Cleanup(gw.Close)
	f := &logsFixture{hello: embedded.NewFunctionLog(""), stopping: make(chan struct{})}
	h, err := NewAPI(APIConfig{
		Store:   st,
		Sources: noSources{},
		Tokens: []Token{
			{Name: "vera", Secret: viewerSecret, Roles: []Role{RoleViewer}},
			{Name: "dan", Secret: deployerSecret, Roles: []Role{RoleDeployer}},
		},
		Environments: func(context.Context, string) (*environments.Status, error) { return &environments.Status{}, nil },
		Functions:    &fakeFunctions{logs: map[string]*embedded.FunctionLog{"dev/hello": f.hello}, gateway: gw.URL},
		Stopping:     f.stopping,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	f.url = srv.URL
	return f
}

func (f *logsFixture) client(t *testing.T, secret string) *Client {
	t.Helper()
	c, err := NewClient(f.url, secret)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestAPIFunctionLogs(t *testing.T) {
	t.Parallel()
	f := newLogsFixture(t)
	for i := range 5 {
		f.hello.Add("stdout", 9, "line "+string(rune('a'+i)))
	}
	c := f.client(t, viewerSecret)
	lines, err := c.FunctionLogs(t.Context(), "dev", "hello", FunctionLogQuery{Tail: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 2 || lines[0].Text != "line d" || lines[1].Text != "line e" || lines[1].PID != 9 || lines[1].Stream != "stdout" {
		t.Errorf("tail 2 = %+v", lines)
	}
	if lines, err := c.FunctionLogs(t.Context(), "dev", "hello", FunctionLogQuery{Since: "1h"}); err != nil || len(lines) != 5 {
		t.Errorf("since 1h = %d lines, %v; want all 5", len(lines), err)
	}
	if lines, err := c.FunctionLogs(t.Context(), "dev", "hello", FunctionLogQuery{Since: time.Now().Add(time.Hour).Format(time.RFC3339)}); err != nil || len(lines) != 0 {
		t.Errorf("since an hour from now = %d lines, %v; want none", len(lines), err)
	}

	var se *StatusError
	_, err = c.FunctionLogs(t.Context(), "dev", "nope", FunctionLogQuery{})
	if !errors.As(err, &se) || se.Code != 404 || !strings.Contains(se.Message, "runs [hello]") {
		t.Errorf("an unknown function: %v, want 404 naming the functions there are", err)
	}
	_, err = c.FunctionLogs(t.Context(), "dev", "hello", FunctionLogQuery{Since: "yesterday"})
	if !errors.As(err, &se) || se.Code != 400 {
		t.Errorf("since yesterday: %v, want 400", err)
	}
	resp, err := http.Get(f.url + "/api/v1/environments/dev/functions/hello/logs")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("no token: %d, want 401", resp.StatusCode)
	}
}

func TestAPIFunctionLogsFollow(t *testing.T) {
	t.Parallel()
	f := newLogsFixture(t)
	f.hello.Add("stdout", 9, "before")
	c := f.client(t, viewerSecret)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	got := make(chan FunctionLogView, 10)
	done := make(chan error, 1)
	go func() {
		done <- c.FollowFunctionLogs(ctx, "dev", "hello", FunctionLogQuery{Tail: 1}, func(l FunctionLogView) { got <- l }, nil)
	}()
	next := func(what string) FunctionLogView {
		t.Helper()
		select {
		case l := <-got:
			return l
		case <-time.After(hang):
			t.Fatalf("no %s within %s", what, hang)
		}
		return FunctionLogView{}
	}
	if l := next("backlog line"); l.Text != "before" {
		t.Errorf("the backlog sent %q, want before", l.Text)
	}
	// The follower is held once the backlog arrived: a line added now
	// must reach the client.
	waitUntil(t, "the follower to be held", func() bool { return f.hello.Followers() == 1 })
	f.hello.Add("access", 0, "POST /dev/hello 200 1ms ce-id=x")
	if l := next("line written after subscription"); l.Stream != "access" || l.Text != "POST /dev/hello 200 1ms ce-id=x" || l.Seq != 2 {
		t.Errorf("followed line = %+v", l)
	}

	// The client goes: the server lets go of the follower.
	cancel()
	if err := <-done; err != nil {
		t.Errorf("a follow the client ended: %v", err)
	}
	waitUntil(t, "the follower to be freed after the client left", func() bool { return f.hello.Followers() == 0 })
}

func TestAPIFunctionLogsFollowEndsWhenServerStops(t *testing.T) {
	t.Parallel()
	f := newLogsFixture(t)
	req, err := http.NewRequest("GET", f.url+"/api/v1/environments/dev/functions/hello/logs", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+viewerSecret)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("Accept: text/event-stream answered %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	waitUntil(t, "the follower to be held", func() bool { return f.hello.Followers() == 1 })
	close(f.stopping)
	ended := make(chan struct{})
	go func() { io.Copy(io.Discard, resp.Body); close(ended) }()
	select {
	case <-ended:
	case <-time.After(hang):
		t.Fatal("the stream did not end when the server stopped")
	}
	waitUntil(t, "the follower to be freed", func() bool { return f.hello.Followers() == 0 })
}

func TestAPIInvoke(t *testing.T) {
	t.Parallel()
	f := newLogsFixture(t)
	dan := f.client(t, deployerSecret)
	ans, err := dan.Invoke(t.Context(), "dev", "hello", InvokeRequest{Method: "POST", Path: "/hello",
		Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(`{"a":1}`)})
	if err != nil {
		t.Fatal(err)
	}
	if ans.Status != 200 || string(ans.Body) != `POST /dev/hello application/json  {"a":1}` || ans.Header.Get("X-Fn") != "hello" {
		t.Errorf("answer %d %q %v; want the function's, without the caller's token", ans.Status, ans.Body, ans.Header)
	}
	// A function's failure is its answer, not the API's error.
	ans, err = dan.Invoke(t.Context(), "dev", "hello", InvokeRequest{Method: "GET", Path: "/fail"})
	if err != nil || ans.Status != 500 {
		t.Errorf("a failing function: %d, %v; want its 500 as an answer", ans.Status, err)
	}

	var se *StatusError
	_, err = dan.Invoke(t.Context(), "dev", "nope", InvokeRequest{})
	if !errors.As(err, &se) || se.Code != 404 {
		t.Errorf("an unknown function: %v, want 404", err)
	}
	_, err = f.client(t, viewerSecret).Invoke(t.Context(), "dev", "hello", InvokeRequest{})
	if !errors.As(err, &se) || se.Code != 403 {
		t.Errorf("a viewer's call: %v, want 403", err)
	}
}

// waitUntil polls cond until it holds; only a hang fails it.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(hang)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s", what, hang)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
