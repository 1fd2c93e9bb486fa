package test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferrycd/ferry/test/gitserver"
)

const scrapeToken = "e2e-viewer-token-0123456789"

// TestServeMetrics deploys the Python example and reads ferry serve's
// /metrics as a Prometheus scraper with a viewer token would: the series
// a user charts count what happened, and the profiler answers admins
// only.
func TestServeMetrics(t *testing.T) {
	srv := gitserver.Start(t, "", "")
	url, _ := pythonRepo(t, srv, "hello", nil)
	cfg := writeServeConfig(t, fmt.Sprintf(`- {name: hello, url: %q, branch: main, interval: 1s}`, url))
	// The tokens list ends the configuration: a scraper's token joins it.
	f, err := os.OpenFile(cfg.path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "- {name: prometheus, token: %s, roles: [viewer]}\n", scrapeToken)
	f.Close()
	p := startServe(t, cfg)
	waitGreeting(t, p, "hello from python", 120*time.Second)

	// The run is still recording its end when dev answers.
	var m map[string]float64
	deadline := time.Now().Add(60 * time.Second)
	for {
		m = scrapeServe(t, p.api+"/metrics", scrapeToken)
		// why both: one scrape gathers the histogram and the store's
		// counts side by side, so it may count the run and miss the
		// deploy step's time observed just before.
		if m[`ferry_runs{status="succeeded"}`] == 1 && m[`ferry_step_duration_seconds_count{result="succeeded",step="deploy"}`] == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	for sample, want := range map[string]float64{
		`ferry_runs{status="succeeded"}`:                                      1,
		`ferry_runs{status="failed"}`:                                         0,
		`ferry_runs{status="running"}`:                                        0,
		`ferry_run_queue_depth{source="hello"}`:                               0,
		`ferry_step_duration_seconds_count{result="succeeded",step="build"}`:  1,
		`ferry_step_duration_seconds_count{result="succeeded",step="deploy"}`: 1,
		`ferry_function_processes{env="dev",state="running"}`:                 1,
		`ferry_function_processes{env="prod",state="running"}`:                0, // it waits for an approval
		`ferry_fetch_failures_total{source="hello"}`:                          0,
	} {
		if got, ok := m[sample]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", sample, got, ok, want)
		}
	}
	for _, sample := range []string{
		`ferry_fetch_duration_seconds_count{source="hello"}`,
		`ferry_gateway_calls_total{code="2xx",env="dev",function="hello"}`,
		"process_resident_memory_bytes", "process_open_fds", "go_goroutines",
	} {
		if m[sample] < 1 {
			t.Errorf("%s = %v, want at least 1", sample, m[sample])
		}
	}
	if t.Failed() {
		t.Logf("ferry serve said:\n%s\nruns:\n%s", p.output, p.runsReport(t))
	}

	// The gateway still serves its own series where it always did.
	if gw := scrapeServe(t, p.gw+"/_ferry/metrics", ""); gw[`ferry_gateway_calls_total{code="2xx",env="dev",function="hello"}`] < 1 {
		t.Errorf("the gateway's /_ferry/metrics lost its calls: %v", gw)
	}

	for _, c := range []struct {
		path, token string
		want        int
	}{
		{"/metrics", "", http.StatusUnauthorized},
		{"/debug/pprof/", serveToken, http.StatusOK},
		{"/debug/pprof/heap", serveToken, http.StatusOK},
		{"/debug/pprof/", scrapeToken, http.StatusForbidden},
		{"/debug/pprof/goroutine?debug=2", scrapeToken, http.StatusForbidden},
		{"/debug/pprof/", "", http.StatusUnauthorized},
	} {
		if code, _ := getWithToken(t, p.api+c.path, c.token); code != c.want {
			t.Errorf("GET %s with token %q = %d, want %d", c.path, c.token, code, c.want)
		}
	}
}

func getWithToken(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
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

// scrapeServe reads a metrics page in the text format: sample (name and
// labels, as written) to value.
func scrapeServe(t *testing.T, url, token string) map[string]float64 {
	t.Helper()
	code, body := getWithToken(t, url, token)
	if code != http.StatusOK {
		t.Fatalf("GET %s = %d %s", url, code, body)
	}
	out := map[string]float64{}
	for line := range strings.Lines(body) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample line %q", line)
		}
		out[line[:i]] = v
	}
	return out
}
