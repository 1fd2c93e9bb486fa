package embedded

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferrycd/ferry/build/invoker"
	"github.com/ferrycd/ferry/internal/sandbox"
)

// testServer is a tiny function for the supervisor's tests, run by a
// shell-script "binary": it serves /healthz, exits 3 on /crash, answers
// /env with its environment and /pid with its process id.
const testServer = `import http.server, json, os, socket, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/crash":
            sys.stderr.write("crashing on request\n"); sys.stderr.flush()
            os._exit(3)
        body = {"/healthz": "ok", "/pid": os.getpid()}.get(self.path, dict(os.environ))
        data = json.dumps(body).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(data))); self.end_headers()
        self.wfile.write(data)
    def log_message(self, *a): pass
s = http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H, bind_and_activate=False)
s.socket.close()
s.socket = socket.socket(fileno=int(os.environ["FERRY_LISTEN_FD"]))
sys.stderr.write("test server listening on %d\n" % s.server_address[1]); sys.stderr.flush()
s.serve_forever()
`

// interpretedRoot lays out an image of runtime ("python", "nodejs") by
// hand: the invoker, and the example's files as the function (or files
// when given). It returns root and the image config.
func interpretedRoot(t *testing.T, runtime, example string, files map[string][]byte) (string, []string, []string) {
	t.Helper()
	root := t.TempDir()
	inv, err := invoker.Files(runtime)
	if err != nil {
		t.Fatal(err)
	}
	writeFiles(t, root, inv, 0o644)
	if files == nil {
		files = map[string][]byte{}
		entries, err := os.ReadDir(example)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Type().IsRegular() {
				b, err := os.ReadFile(filepath.Join(example, e.Name()))
				if err != nil {
					t.Fatal(err)
				}
				files[e.Name()] = b
			}
		}
	}
	fn := map[string][]byte{}
	for name, b := range files {
		fn["ferry/function/"+name] = b
	}
	writeFiles(t, root, fn, 0o644)
	entry, err := invoker.Entrypoint(runtime)
	if err != nil {
		t.Fatal(err)
	}
	handler := map[string]string{"python": "main.handle", "nodejs": "index.handler"}[runtime]
	argv, env, err := command(root, configWith(entry, "FERRY_HANDLER="+handler, "PYTHONUNBUFFERED=1"))
	if err != nil {
		t.Fatal(err)
	}
	return root, argv, env
}

// scriptRoot lays out a "go" image whose /ferry/bin/function is script,
// with the test server beside it as /ferry/function/server.py.
func scriptRoot(t *testing.T, script string) (string, []string, []string) {
	t.Helper()
	root := t.TempDir()
	writeFiles(t, root, map[string][]byte{"ferry/function/server.py": []byte(testServer)}, 0o644)
	writeFiles(t, root, map[string][]byte{"ferry/bin/function": []byte("#!/bin/sh\n" + script)}, 0o755)
	argv, env, err := command(root, configWith([]string{"/ferry/bin/function"}))
	if err != nil {
		t.Fatal(err)
	}
	return root, argv, env
}

func testSpec(t *testing.T, root string, argv, env []string) processSpec {
	return processSpec{
		Name:         "fn-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")),
		Argv:         argv,
		Env:          env,
		Timeout:      5 * time.Second,
		Memory:       "128Mi",
		Dir:          filepath.Join(root, "ferry", "function"),
		LogFile:      filepath.Join(t.TempDir(), "logs", "fn.log"),
		StartTimeout: time.Minute,
		StopGrace:    3 * time.Second,
	}
}

func start(t *testing.T, spec processSpec) *process {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	p, err := startProcess(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := p.Stop(ctx); err != nil {
			t.Error(err)
		}
	})
	return p
}

// postEvent sends a binary-mode CloudEvent with JSON data.
func postEvent(t *testing.T, url, data string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("ce-specversion", "1.0")
	req.Header.Set("ce-id", "evt-1")
	req.Header.Set("ce-source", "/test")
	req.Header.Set("ce-type", "dev.ferry.test")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

func get(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func hasLine(lines []logLine, stream, substr string) bool {
	return countLines(lines, stream, substr) > 0
}

// countLines counts the lines of stream ("" for any) holding substr.
func countLines(lines []logLine, stream, substr string) int {
	n := 0
	for _, l := range lines {
		if (stream == "" || l.Stream == stream) && strings.Contains(l.Text, substr) {
			n++
		}
	}
	return n
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", d, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// assertGroupGone checks that no process of the group is alive right
// away, and that the group is gone (ESRCH) once init has reaped the
// zombies of its orphans, which on some machines takes a second or two.
func assertGroupGone(t *testing.T, pgid int) {
	t.Helper()
	if groupAlive(pgid) {
		t.Errorf("a process of group %d is still alive after Stop", pgid)
	}
	waitFor(t, 30*time.Second, "kill(-pgid, 0) still finds the group", func() bool {
		return errors.Is(syscall.Kill(-pgid, 0), syscall.ESRCH)
	})
}

var logFileLine = regexp.MustCompile(`(?m)^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d) stderr ferry invoker: serving `)

func TestProcessInterpretedExamples(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ runtime, example, message string }{
		{"python", "../../examples/python/hello", "hello from python"},
		{"nodejs", "../../examples/nodejs/hello", "hello from nodejs"},
	} {
		t.Run(tc.runtime, func(t *testing.T) {
			t.Parallel()
			root, argv, env := interpretedRoot(t, tc.runtime, tc.example, nil)
			spec := testSpec(t, root, argv, env)
			// why: a busy machine may be slow to exit; the log, not the
			// clock, says whether SIGTERM was enough.
			spec.StopGrace = time.Minute
			p := start(t, spec)
			if s := p.State(); s.Phase != phaseRunning || s.PID == 0 {
				t.Errorf("state = %+v, want running with a pid", s)
			}

			code, body := postEvent(t, p.URL()+"/", `{"n":1}`)
			if code != http.StatusOK {
				t.Fatalf("POST = %d %s", code, body)
			}
			var got, want any
			json.Unmarshal([]byte(body), &got)
			json.Unmarshal([]byte(`{"message":"`+tc.message+`","echo":{"n":1}}`), &want)
			if gb, _ := json.Marshal(got); string(gb) != mustJSON(want) {
				t.Errorf("answer = %s, want %s", body, mustJSON(want))
			}

			if !hasLine(p.Logs(0), "stderr", "ferry invoker: serving") {
				t.Errorf("logs hold no startup line: %+v", p.Logs(0))
			}
			file, err := os.ReadFile(spec.LogFile)
			if err != nil {
				t.Fatal(err)
			}
			if !logFileLine.Match(file) {
				t.Errorf("log file has no timestamped startup line:\n%s", file)
			}

			// SIGTERM is honoured: the invoker drains and exits 0.
			pgid := p.State().PID
			if err := p.Stop(context.Background()); err != nil {
				t.Fatal(err)
			}
			if hasLine(p.Logs(0), "ferry", "did not exit within") {
				t.Errorf("SIGTERM was not honoured: the function was killed after the grace: %+v", p.Logs(5))
			}
			if !hasLine(p.Logs(0), "stderr", "SIGTERM: finishing") || !hasLine(p.Logs(0), "ferry", "exited with status 0") {
				t.Errorf("logs do not show a clean SIGTERM exit: %+v", p.Logs(5))
			}
			if s := p.State(); s.Phase != phaseStopped {
				t.Errorf("state after Stop = %+v", s)
			}
			assertGroupGone(t, pgid)
		})
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestProcessGoFunction(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	writeFiles(t, src, map[string][]byte{
		"go.mod": []byte("module example.com/fn\n\ngo 1.26\n"),
		"main.go": []byte(`package main

import (
	"io"
	"net"
	"net/http"
	"os"
)

func main() {
	http.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		io.WriteString(w, os.Getenv("FUNCTION_NAME")+" got "+string(body))
	})
	os.Stderr.WriteString("go function serving\n")
	l, err := net.FileListener(os.NewFile(3, "listener"))
	if err == nil {
		err = http.Serve(l, nil)
	}
	if err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(1)
	}
}
`),
	}, 0o644)
	root := t.TempDir()
	build := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(root, "ferry", "bin", "function"), ".")
	build.Dir = src
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=", "GOTOOLCHAIN=local")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	argv, env, err := command(root, configWith([]string{"/ferry/bin/function"}))
	if err != nil {
		t.Fatal(err)
	}
	spec := testSpec(t, root, argv, env)
	spec.Dir = root // a Go image has no /ferry/function
	p := start(t, spec)
	code, body := postEvent(t, p.URL()+"/", `{"n":1}`)
	if want := spec.Name + ` got {"n":1}`; code != http.StatusOK || body != want {
		t.Errorf("POST = %d %q, want 200 %q", code, body, want)
	}
	if !hasLine(p.Logs(0), "stderr", "go function serving") {
		t.Errorf("logs = %+v", p.Logs(0))
	}
}

func TestProcessEnv(t *testing.T) {
	t.Parallel()
	handler := "import os\n\ndef handle(event, context):\n    return {k: os.environ.get(k) for k in event['data']}\n"
	root, argv, env := interpretedRoot(t, "python", "", map[string][]byte{"main.py": []byte(handler)})
	spec := testSpec(t, root, argv, env)
	spec.UserEnv = map[string]string{"SIZE": "128", "GREETING": "hi there"}
	spec.Timeout = 7 * time.Second
	spec.Memory = "256Mi"
	p := start(t, spec)

	keys := []string{"SIZE", "GREETING", "FUNCTION_NAME", "FUNCTION_TIMEOUT", "FUNCTION_MEMORY", "PORT", "FERRY_HANDLER", "PATH", "HOME"}
	code, body := postEvent(t, p.URL()+"/", mustJSON(keys))
	if code != http.StatusOK {
		t.Fatalf("POST = %d %s", code, body)
	}
	var got map[string]*string
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	port := strings.TrimPrefix(p.URL(), "http://127.0.0.1:")
	for k, want := range map[string]string{
		"SIZE": "128", "GREETING": "hi there", "FUNCTION_NAME": spec.Name, "FUNCTION_TIMEOUT": "7s",
		"FUNCTION_MEMORY": "256Mi", "PORT": port, "FERRY_HANDLER": "main.handle",
	} {
		if got[k] == nil || *got[k] != want {
			t.Errorf("%s = %v, want %q", k, got[k], want)
		}
	}
	if got["PATH"] == nil || *got["PATH"] != sandbox.SystemPath {
		t.Errorf("PATH = %v, want the fixed %q, never ferry's", got["PATH"], sandbox.SystemPath)
	}
	if got["HOME"] != nil {
		t.Errorf("HOME = %q: the host's environment leaked into the function", *got["HOME"])
	}
}

func TestProcessCrashRestart(t *testing.T) {
	t.Parallel()
	root, argv, env := scriptRoot(t, "sleep 1000 &\nexec python3 server.py\n") // a child that outlives the crash
	spec := testSpec(t, root, argv, env)
	// why: the restarting state lasts the backoff; a second is long enough
	// to see on a busy machine.
	spec.BackoffStart = time.Second
	p := start(t, spec)
	url := p.URL()
	pid := p.State().PID

	if _, err := get(url + "/crash"); err == nil {
		t.Fatal("GET /crash answered; the function should have died")
	}
	waitFor(t, 30*time.Second, "state never showed restarting", func() bool {
		return p.State().Phase == phaseRestarting
	})
	if s := p.State(); s.NextAttempt.IsZero() || !strings.Contains(s.LastExit, "exited with status 3") {
		t.Errorf("restarting state = %+v, want a next attempt and the exit status", s)
	}
	waitFor(t, 30*time.Second, "not running again", func() bool { return p.State().Phase == phaseRunning })
	s := p.State()
	if s.Restarts != 1 || s.PID == pid || s.PID == 0 {
		t.Errorf("state after restart = %+v, want restart 1 with a new pid (old %d)", s, pid)
	}
	assertGroupGone(t, pid) // the crashed run's child too
	if p.URL() != url {
		t.Errorf("URL moved from %s to %s though the port was free", url, p.URL())
	}
	if body, err := get(p.URL() + "/healthz"); err != nil || body != `"ok"` {
		t.Errorf("after the restart: %q, %v", body, err)
	}
	if !hasLine(p.Logs(0), "ferry", "exited with status 3") || !hasLine(p.Logs(0), "stderr", "crashing on request") {
		t.Errorf("logs do not show the crash: %+v", p.Logs(0))
	}

	// A second crash soon after waits twice as long.
	get(p.URL() + "/crash")
	waitFor(t, 30*time.Second, "not running after the second crash", func() bool {
		s := p.State()
		return s.Phase == phaseRunning && s.Restarts == 2
	})
	if !hasLine(p.Logs(0), "ferry", "restarting function "+spec.Name+" in 2s") {
		t.Errorf("the second restart did not back off to 2s: %+v", p.Logs(0))
	}
}

// TestProcessRestartKeepsItsPort: ferry holds the function's socket, so
// no other program can take the port during the backoff, and the function
// serves on the same URL after its restart.
func TestProcessRestartKeepsItsPort(t *testing.T) {
	t.Parallel()
	root, argv, env := scriptRoot(t, "exec python3 server.py\n")
	spec := testSpec(t, root, argv, env)
	spec.BackoffStart = time.Second // long enough to see the restarting state on a busy machine
	p := start(t, spec)
	oldURL := p.URL()
	get(p.URL() + "/crash")
	waitFor(t, 30*time.Second, "not restarting", func() bool { return p.State().Phase == phaseRestarting })
	if l, err := net.Listen("tcp", strings.TrimPrefix(oldURL, "http://")); err == nil {
		l.Close()
		t.Fatalf("another program could take the port of a restarting function")
	}
	waitFor(t, 30*time.Second, "not running again", func() bool { return p.State().Phase == phaseRunning })
	if p.URL() != oldURL {
		t.Fatalf("restarted on %s, want the same %s", p.URL(), oldURL)
	}
	if body, err := get(p.URL() + "/healthz"); err != nil || body != `"ok"` {
		t.Errorf("on %s: %q, %v", p.URL(), body, err)
	}
}

func TestProcessCrashAtStart(t *testing.T) {
	t.Parallel()
	root, argv, env := scriptRoot(t, "echo 'cannot load handler: boom' >&2\nexit 3\n")
	spec := testSpec(t, root, argv, env)
	_, err := startProcess(context.Background(), spec)
	if err == nil {
		t.Fatal("startProcess succeeded for a function that exits at once")
	}
	for _, want := range []string{"exited with status 3 before it was healthy", "stderr cannot load handler: boom", spec.LogFile} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
}

func TestProcessNeverHealthy(t *testing.T) {
	t.Parallel()
	root, argv, env := scriptRoot(t, "echo waiting forever\nsleep 1000 &\nexec sleep 1000\n")
	spec := testSpec(t, root, argv, env)
	spec.StartTimeout = time.Second
	begin := time.Now()
	_, err := startProcess(context.Background(), spec)
	if err == nil {
		t.Fatal("startProcess succeeded for a function that never serves")
	}
	if took := time.Since(begin); took > 30*time.Second { // a hang bound
		t.Errorf("startProcess took %s with StartTimeout 1s", took)
	}
	for _, want := range []string{"was not healthy within 1s", "stdout waiting forever"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
}

func TestProcessStartCancelled(t *testing.T) {
	t.Parallel()
	root, argv, env := scriptRoot(t, "exec sleep 1000\n")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := startProcess(ctx, testSpec(t, root, argv, env))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the ctx's deadline", err)
	}
}

func TestProcessStopKillsWhatIgnoresSIGTERM(t *testing.T) {
	t.Parallel()
	// The function ignores SIGTERM and leaves a child of its own behind.
	root, argv, env := scriptRoot(t, "trap '' TERM\nsleep 1000 &\nexec python3 server.py\n")
	spec := testSpec(t, root, argv, env)
	spec.StopGrace = 300 * time.Millisecond
	p := start(t, spec)
	pgid := p.State().PID

	begin := time.Now()
	if err := p.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	// why: the grace is a real minimum; the upper bound only catches a hang.
	if took := time.Since(begin); took < spec.StopGrace || took > spec.StopGrace+30*time.Second {
		t.Errorf("Stop took %s, want the %s grace then SIGKILL", took, spec.StopGrace)
	}
	if !hasLine(p.Logs(0), "ferry", "did not exit within 300ms of SIGTERM") {
		t.Errorf("logs do not show the kill: %+v", p.Logs(5))
	}
	assertGroupGone(t, pgid)

	// Stop again: the same end, with no second SIGTERM and grace; and no
	// restart ever follows.
	if err := p.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := countLines(p.Logs(0), "ferry", "did not exit within"); n != 1 {
		t.Errorf("%d kills after two Stops, want 1: %+v", n, p.Logs(0))
	}
	time.Sleep(300 * time.Millisecond)
	if s := p.State(); s.Phase != phaseStopped || s.PID != 0 {
		t.Errorf("state after Stop = %+v", s)
	}
}

func TestProcessStopCancelledKillsAtOnce(t *testing.T) {
	t.Parallel()
	root, argv, env := scriptRoot(t, "trap '' TERM\nexec python3 server.py\n")
	spec := testSpec(t, root, argv, env)
	spec.StopGrace = time.Minute
	p := start(t, spec)
	pgid := p.State().PID
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := p.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop = %v, want the ctx's deadline", err)
	}
	if err := p.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	assertGroupGone(t, pgid)
}

func TestProcessLogSink(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "a", "b", "fn.log")
	s := &logSink{out: NewFunctionLog(path), own: true}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go s.read(&wg, r, "stdout", 42)
	long := strings.Repeat("x", maxLogLine+100)
	var in bytes.Buffer
	for i := range logRingLines + 5 {
		in.WriteString("line " + strconv.Itoa(i) + "\r\n")
	}
	in.WriteString(long + "\nafter long\nno newline at the end")
	w.Write(in.Bytes())
	w.Close()
	wg.Wait()
	s.close()

	all := s.last(0)
	if len(all) != logRingLines {
		t.Fatalf("ring holds %d lines, want %d", len(all), logRingLines)
	}
	last := all[len(all)-3:]
	if !strings.HasSuffix(last[0].Text, truncatedMark) || len(last[0].Text) != maxLogLine+len(truncatedMark) {
		t.Errorf("long line kept as %d bytes", len(last[0].Text))
	}
	if last[1].Text != "after long" || last[2].Text != "no newline at the end" {
		t.Errorf("lines after the long one = %q, %q", last[1].Text, last[2].Text)
	}
	if got := s.last(2); len(got) != 2 || got[1].Text != "no newline at the end" {
		t.Errorf("last(2) = %+v", got)
	}
	if got := s.out.Lines(LogQuery{Tail: 1}); len(got) != 1 || got[0].PID != 42 || got[0].Stream != "stdout" {
		t.Errorf("the function's log got %+v, want the line with its pid and stream", got)
	}
	if all[0].Text != "line 8" {
		t.Errorf("oldest line = %q, want line 8 (no \\r, the first ones dropped)", all[0].Text)
	}
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
		t.Errorf("log file mode = %s", fi.Mode().Perm())
	}
	if n := strings.Count(string(file), "\n"); n != logRingLines+5+3 {
		t.Errorf("log file has %d lines, want every one", n)
	}
	if !regexp.MustCompile(`(?m)^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z stdout line 0$`).Match(file) {
		t.Errorf("log file's first line = %q", strings.SplitN(string(file), "\n", 2)[0])
	}
}

func TestProcessBackoffResets(t *testing.T) {
	t.Parallel()
	root, argv, env := scriptRoot(t, "exec python3 server.py\n")
	spec := testSpec(t, root, argv, env)
	spec.BackoffReset = 50 * time.Millisecond
	p := start(t, spec)
	for i := 1; i <= 2; i++ {
		time.Sleep(2 * spec.BackoffReset) // healthy longer than BackoffReset
		get(p.URL() + "/crash")
		waitFor(t, 30*time.Second, "not running after a crash", func() bool {
			s := p.State()
			return s.Phase == phaseRunning && s.Restarts == i
		})
	}
	if hasLine(p.Logs(0), "ferry", "in 400ms") {
		t.Errorf("the backoff grew though the function had run healthy past BackoffReset: %+v", p.Logs(0))
	}
}

func TestProcessRestartKeepsFailing(t *testing.T) {
	t.Parallel()
	// Serves once; every later start fails, as a function broken by a
	// change on disk would.
	root, argv, env := scriptRoot(t, "if [ -e started ]; then echo 'broken now' >&2; exit 4; fi\n: > started\nexec python3 server.py\n")
	spec := testSpec(t, root, argv, env)
	spec.BackoffStart = 50 * time.Millisecond
	p := start(t, spec)
	get(p.URL() + "/crash")
	waitFor(t, 30*time.Second, "no second failed restart", func() bool { return p.State().Restarts >= 2 })
	s := p.State()
	if s.Phase != phaseRestarting || !strings.Contains(s.LastExit, "exited with status 4 before it was healthy") || strings.Contains(s.LastExit, "\n") {
		t.Errorf("state = %+v, want restarting with the failed start's reason on one line", s)
	}
	if !hasLine(p.Logs(0), "ferry", "restarting function "+spec.Name+" in 100ms") {
		t.Errorf("failed restarts do not back off: %+v", p.Logs(0))
	}
	if err := p.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := p.State(); s.Phase != phaseStopped {
		t.Errorf("state after Stop = %+v", s)
	}
}

// TestProcessStopDuringBackoff: Stop ends the wait for a restart rather
// than sitting it out. The backoff is an hour, so only a hang bound is
// needed to tell the two apart.
func TestProcessStopDuringBackoff(t *testing.T) {
	t.Parallel()
	root, argv, env := scriptRoot(t, "exec python3 server.py\n")
	spec := testSpec(t, root, argv, env)
	spec.BackoffStart = time.Hour
	p := start(t, spec)
	get(p.URL() + "/crash")
	waitFor(t, 30*time.Second, "not restarting", func() bool { return p.State().Phase == phaseRestarting })
	begin := time.Now()
	if err := p.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(begin); took > 30*time.Second {
		t.Errorf("Stop during an hour's backoff took %s", took)
	}
	if s := p.State(); s.Phase != phaseStopped || s.Restarts != 0 {
		t.Errorf("state after Stop = %+v, want stopped with no restart", s)
	}
}

// TestProcessSandboxedStopsGracefully: bubblewrap does not pass SIGTERM on,
// so the supervisor signals the function inside it, which finishes and
// exits by itself rather than being killed with its sandbox.
func TestProcessSandboxedStopsGracefully(t *testing.T) {
	t.Parallel()
	sb, err := sandbox.Find(context.Background(), sandbox.ModeBwrap, sandbox.NetworkNone)
	if err != nil {
		t.Fatal(err)
	}
	root, argv, env := interpretedRoot(t, "python", filepath.Join("..", "..", "examples", "python", "hello"), nil)
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		t.Fatal(err)
	}
	argv[1] = "/" + strings.TrimPrefix(strings.TrimPrefix(argv[1], realRoot), "/")
	spec := testSpec(t, root, argv, env)
	spec.Sandbox, spec.Root, spec.Dir = sb, realRoot, "/ferry/function"
	p := start(t, spec)
	if code, body := postEvent(t, p.URL()+"/", `"x"`); code != http.StatusOK {
		t.Fatalf("POST = %d %s", code, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if !hasLine(p.Logs(0), "ferry", "stopped: exited with status 0") {
		t.Errorf("the sandboxed function did not exit by itself on SIGTERM: %+v", p.Logs(0))
	}
	if !hasLine(p.Logs(0), "stderr", "SIGTERM") {
		t.Errorf("the function never heard SIGTERM: %+v", p.Logs(0))
	}
}
