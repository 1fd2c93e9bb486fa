package test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ferrycd/ferry/test/gitserver"
)

// rawRequest sends request as written, byte for byte, to addr and
// returns the status line and the body's first bytes.
func rawRequest(t *testing.T, addr, request string) (string, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, request); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	status, _ := r.ReadString('\n')
	rest, _ := io.ReadAll(io.LimitReader(r, 4096))
	return strings.TrimSpace(status), string(rest)
}

// Nothing of the profiler or of ferry's own metrics is served without
// the token they need, whatever the path's spelling, the method or the
// address: a path that cleans to a profile is redirected (then refused),
// never served; the gateway, which any caller reaches, serves its call
// and trigger series only, none of ferry's process, runtime or store.
func TestProfilerAndMetricsNeedTheirToken(t *testing.T) {
	srv := gitserver.Start(t, "", "")
	demo := plainRepo(t, srv, "demo")
	p := startServe(t, writeServeConfig(t, fmt.Sprintf(`- {name: demo, url: %q, branch: main, interval: 1h}`, demo)))
	api := strings.TrimPrefix(p.api, "http://")
	gw := strings.TrimPrefix(p.gw, "http://")
	profile := []string{"goroutine profile", "heap profile", "Types of profiles available", "ferry\x00serve", "go_goroutines", "process_open_fds", "ferry_runs"}
	for _, tc := range []struct{ addr, method, path, auth string }{
		{api, "GET", "/debug/pprof/", ""},
		{api, "GET", "/debug/pprof", ""},
		{api, "GET", "/debug/pprof/cmdline", ""},
		{api, "GET", "/debug/pprof/goroutine?debug=2", ""},
		{api, "HEAD", "/debug/pprof/heap", ""},
		{api, "POST", "/debug/pprof/symbol", ""},
		{api, "GET", "/debug/pprof/../pprof/cmdline", ""},
		{api, "GET", "//debug/pprof/cmdline", ""},
		{api, "GET", "/debug//pprof/cmdline", ""},
		{api, "GET", "/debug/pprof/%2e%2e/pprof/cmdline", ""},
		{api, "GET", "/debug/%70prof/cmdline", ""},
		{api, "GET", "/api/../debug/pprof/cmdline", ""},
		{api, "GET", "/hooks/../debug/pprof/cmdline", ""},
		{api, "GET", "/debug/pprof/cmdline", "Bearer " + serveToken + "x"},
		{api, "GET", "/debug/pprof/cmdline", "bearer " + serveToken[:len(serveToken)-1]},
		{api, "GET", "/debug/pprof/cmdline", "Basic " + serveToken},
		{api, "GET", "/metrics", ""},
		{api, "GET", "/metrics/", ""},
		{api, "GET", "/metrics?format=text", "Bearer "},
		{api, "HEAD", "/metrics", ""},
		{gw, "GET", "/debug/pprof/cmdline", ""},
		{gw, "GET", "/metrics", ""},
		{gw, "GET", "/dev/../debug/pprof/cmdline", ""},
		{gw, "GET", "/dev/../_ferry/metrics", ""},
		{gw, "GET", "/_ferry/metrics", ""},
		{gw, "GET", "/_ferry//metrics", ""},
	} {
		req := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", tc.method, tc.path, tc.addr)
		if tc.auth != "" {
			req += "Authorization: " + tc.auth + "\r\n"
		}
		if tc.method == "POST" {
			req += "Content-Length: 0\r\n"
		}
		status, body := rawRequest(t, tc.addr, req+"\r\n")
		where := "the API"
		if tc.addr == gw {
			where = "the gateway"
		}
		for _, leak := range profile {
			if strings.Contains(body, leak) {
				t.Errorf("%s %s on %s (auth %q) = %s, with %q:\n%.300s", tc.method, tc.path, where, tc.auth, status, leak, body)
			}
		}
		if tc.addr == api && strings.Contains(status, " 200 ") {
			t.Errorf("%s %s on the API (auth %q) = %s, want it refused", tc.method, tc.path, tc.auth, status)
		}
	}
	// Still served to whom it is for.
	req, _ := http.NewRequest("GET", p.api+"/debug/pprof/cmdline", nil)
	req.Header.Set("Authorization", "Bearer "+serveToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), "serve") {
		t.Errorf("an admin's /debug/pprof/cmdline = %d %.200s", resp.StatusCode, b)
	}
}
