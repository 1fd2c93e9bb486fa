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
	"github.com/ferrycd/ferry/store"
)

const approverSecret = "approver-secret-0123456789"

// metricsFixture serves a serveMetrics over a real store at /metrics,
// with a token of each role.
type metricsFixture struct {
	st  *store.SQLite
	m   *serveMetrics
	url string
}

func newMetricsFixture(t *testing.T, cfg metricsConfig) *metricsFixture {
	t.Helper()
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "ferry.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg.Store = st
	m := newServeMetrics(cfg)
	toks, err := newTokens([]Token{
		{Name: "root", Secret: adminSecret, Roles: []Role{RoleAdmin}},
		{Name: "ann", Secret: viewerSecret, Roles: []Role{RoleViewer}},
		{Name: "bob", Secret: approverSecret, Roles: []Role{RoleApprover, RoleDeployer}},
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	m.route(mux, toks)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &metricsFixture{st: st, m: m, url: srv.URL}
}

func (f *metricsFixture) get(t *testing.T, path, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", f.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// scrape returns /metrics as a viewer reads it, one sample per line.
func (f *metricsFixture) scrape(t *testing.T) map[string]string {
	t.Helper()
	code, body := f.get(t, "/metrics", viewerSecret)
	if code != 200 {
		t.Fatalf("GET /metrics as a viewer = %d %s", code, body)
	}
	out := map[string]string{}
	for line := range strings.Lines(body) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		out[line[:i]] = line[i+1:]
	}
	return out
}

func wantSamples(t *testing.T, got map[string]string, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}

func TestMetricsNeedAViewerAndProfilesAnAdmin(t *testing.T) {
	f := newMetricsFixture(t, metricsConfig{})
	for _, c := range []struct {
		path, token string
		want        int
	}{
		{"/metrics", "", http.StatusUnauthorized},
		{"/metrics", "not-a-token-at-all", http.StatusUnauthorized},
		{"/metrics", viewerSecret, http.StatusOK},
		{"/metrics", adminSecret, http.StatusOK},
		{"/debug/pprof/", "", http.StatusUnauthorized},
		{"/debug/pprof/", viewerSecret, http.StatusForbidden},
		{"/debug/pprof/goroutine?debug=1", viewerSecret, http.StatusForbidden},
		{"/debug/pprof/cmdline", viewerSecret, http.StatusForbidden},
		{"/debug/pprof/", approverSecret, http.StatusForbidden},
		{"/debug/pprof/heap", approverSecret, http.StatusForbidden},
		{"/metrics", approverSecret, http.StatusOK},
		{"/debug/pprof/", adminSecret, http.StatusOK},
		{"/debug/pprof/goroutine?debug=1", adminSecret, http.StatusOK},
		{"/debug/pprof/heap", adminSecret, http.StatusOK},
	} {
		if code, body := f.get(t, c.path, c.token); code != c.want {
			t.Errorf("GET %s with %q = %d %.200s, want %d", c.path, c.token, code, body, c.want)
		}
	}
	if _, body := f.get(t, "/debug/pprof/goroutine?debug=1", adminSecret); !strings.Contains(body, "goroutine profile:") {
		t.Errorf("the goroutine profile reads %.200s", body)
	}
}

// Runs and promotions are counted from the store when scraped, every
// status with a sample; the queue has a sample for every source.
func TestMetricsReadTheStoreWhenScraped(t *testing.T) {
	queued := map[string]int{"demo": 2}
	f := newMetricsFixture(t, metricsConfig{Queued: func() map[string]int { return queued }})
	ctx := t.Context()
	for _, c := range []string{"c1", "c2", "c3"} {
		if _, _, err := f.st.CreateRun(ctx, store.Run{Source: "demo", Branch: "main", Commit: c, Status: store.StatusQueued}, []string{"build"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.st.AddSource(ctx, store.Source{Name: "idle", URL: "https://example.com/idle.git", Branch: "main", Interval: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.CreatePromotion(ctx, store.Promotion{Release: "sha256:r1", Environment: "prod", Status: "pending"}); err != nil {
		t.Fatal(err)
	}
	got := f.scrape(t)
	wantSamples(t, got, map[string]string{
		`ferry_runs{status="queued"}`:          "3",
		`ferry_runs{status="failed"}`:          "0",
		`ferry_runs{status="running"}`:         "0",
		`ferry_run_queue_depth{source="demo"}`: "2",
		`ferry_run_queue_depth{source="idle"}`: "0",
		`ferry_promotions{status="pending"}`:   "1",
	})
	for _, name := range []string{"process_open_fds", "process_resident_memory_bytes", "go_goroutines"} {
		if got[name] == "" {
			t.Errorf("no %s: the Go and process collectors are missing", name)
		}
	}

	// A run finishing shows at the next scrape, with no counter to drift.
	r, err := f.st.GetRun(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	r.Status = store.StatusFailed
	if err := f.st.UpdateRun(ctx, r); err != nil {
		t.Fatal(err)
	}
	wantSamples(t, f.scrape(t), map[string]string{`ferry_runs{status="queued"}`: "2", `ferry_runs{status="failed"}`: "1"})
}

// A step recorded as finished is timed by step and result; one recorded
// as running, skipped, or not recorded at all is not.
func TestMetricsTimeFinishedSteps(t *testing.T) {
	f := newMetricsFixture(t, metricsConfig{})
	ctx := t.Context()
	run, _, err := f.st.CreateRun(ctx, store.Run{Source: "demo", Branch: "main", Commit: "c1", Status: store.StatusRunning}, []string{"build", "test"})
	if err != nil {
		t.Fatal(err)
	}
	timed := f.m.timeSteps(f.st)
	began := time.Now()
	for _, s := range []store.Step{
		{RunID: run.ID, Name: "build", Status: store.StatusRunning, Started: began},
		{RunID: run.ID, Name: "build", Status: store.StatusSucceeded, Started: began, Ended: began.Add(3 * time.Second)},
		{RunID: run.ID, Name: "test", Status: store.StatusSkipped, Ended: began},
	} {
		if err := timed.UpdateStep(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if err := timed.UpdateStep(ctx, store.Step{RunID: 999, Name: "build", Status: store.StatusFailed, Started: began, Ended: began.Add(time.Second)}); err == nil {
		t.Fatal("recording a step of a run that does not exist worked")
	}
	got := f.scrape(t)
	wantSamples(t, got, map[string]string{
		`ferry_step_duration_seconds_count{result="succeeded",step="build"}`:         "1",
		`ferry_step_duration_seconds_sum{result="succeeded",step="build"}`:           "3",
		`ferry_step_duration_seconds_bucket{result="succeeded",step="build",le="5"}`: "1",
		`ferry_step_duration_seconds_bucket{result="succeeded",step="build",le="1"}`: "0",
		`ferry_step_duration_seconds_count{result="failed",step="build"}`:            "",
		`ferry_step_duration_seconds_count{result="skipped",step="test"}`:            "",
	})
}

func TestMetricsCountFetchesWebhooksAndProcesses(t *testing.T) {
	f := newMetricsFixture(t, metricsConfig{
		Environments: func() []string { return []string{"dev", "prod"} },
		Status: func(ctx context.Context, env string) (*environments.Status, error) {
			if env == "prod" {
				return &environments.Status{Environment: env}, nil
			}
			return &environments.Status{Environment: env, Functions: []environments.FunctionStatus{
				{Name: "a", State: "running"}, {Name: "b", State: "running"}, {Name: "c", State: "idle"}, {Name: "d", State: "restarting"},
			}}, nil
		},
	})
	f.m.fetched("demo", 20*time.Millisecond, nil)
	f.m.fetched("demo", 2*time.Second, errors.New("no answer"))
	f.m.fetched("calm", time.Millisecond, nil)

	hooks := f.m.countWebhooks(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/sync":
			w.WriteHeader(http.StatusAccepted)
		case "/ping":
			io.WriteString(w, "{}")
		case "/forged":
			http.Error(w, "no", http.StatusUnauthorized)
		default:
			http.Error(w, "store", http.StatusServiceUnavailable)
		}
	}))
	for _, p := range []string{"/sync", "/sync", "/ping", "/forged", "/down"} {
		hooks.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", p, nil))
	}

	wantSamples(t, f.scrape(t), map[string]string{
		`ferry_fetch_duration_seconds_count{source="demo"}`:                "2",
		`ferry_fetch_failures_total{source="demo"}`:                        "1",
		`ferry_fetch_failures_total{source="calm"}`:                        "0",
		`ferry_webhook_deliveries_total{direction="in",result="accepted"}`: "2",
		`ferry_webhook_deliveries_total{direction="in",result="ignored"}`:  "1",
		`ferry_webhook_deliveries_total{direction="in",result="refused"}`:  "1",
		`ferry_webhook_deliveries_total{direction="in",result="failed"}`:   "1",
		`ferry_function_processes{env="dev",state="running"}`:              "2",
		`ferry_function_processes{env="dev",state="idle"}`:                 "1",
		`ferry_function_processes{env="dev",state="restarting"}`:           "1",
		`ferry_function_processes{env="dev",state="stopped"}`:              "0",
		`ferry_function_processes{env="prod",state="running"}`:             "0",
	})
}
