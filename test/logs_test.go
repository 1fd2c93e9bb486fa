package test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ferrycd/ferry/test/gitserver"
	"github.com/ferrycd/ferry/test/testreg"
)

const viewerToken = "e2e-viewer-token-0123456789"

// ferryRemote runs the binary with FERRY_SERVER and FERRY_TOKEN set, as a
// user of ferry serve would.
func ferryRemote(t *testing.T, api, token string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, ferryBin, args...)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "FERRY_SERVER="+api, "FERRY_TOKEN="+token)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("ferry %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// TestLogsAndInvokeThroughTheAPI deploys the Python example with ferry
// serve, then calls it and reads its log with the CLI through the API.
func TestLogsAndInvokeThroughTheAPI(t *testing.T) {
	srv := gitserver.Start(t, "", "")
	url, _ := pythonRepo(t, srv, "demo", nil)
	cfg := writeServeConfig(t, fmt.Sprintf(`- {name: demo, url: %q, branch: main, interval: 1h}`, url))
	// A second token that may only read: the tokens list ends the file.
	f, err := os.OpenFile(cfg.path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "- {name: vera, token: %s, roles: [viewer]}\n", viewerToken)
	f.Close()
	p := startServe(t, cfg)
	waitGreeting(t, p, "hello from python", 120*time.Second)

	// ferry invoke calls the function by name through the API.
	r := ferryRemote(t, p.api, serveToken, "invoke", "hello", "--env", "dev", "--data", `{"n": 42}`)
	if r.code != 0 || !strings.Contains(r.stdout, `"hello from python"`) || !strings.Contains(r.stdout, `"echo":{"n":42}`) {
		t.Fatalf("ferry invoke = %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// ... and through its HTTPTrigger with another method.
	r = ferryRemote(t, p.api, serveToken, "invoke", "hello", "--env", "dev", "--method", "GET", "--path", "/hello")
	if r.code != 0 || !strings.Contains(r.stdout, `"hello from python"`) {
		t.Errorf("ferry invoke --method GET --path /hello = %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// A path the function does not serve is refused, saying which it has.
	r = ferryRemote(t, p.api, serveToken, "invoke", "hello", "--env", "dev", "--path", "/nope")
	if r.code == 0 || !strings.Contains(r.stderr, "/hello") {
		t.Errorf("ferry invoke --path /nope = %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// A viewer may not call functions.
	r = ferryRemote(t, p.api, viewerToken, "invoke", "hello", "--env", "dev")
	if r.code == 0 || !strings.Contains(r.stderr, "403") {
		t.Errorf("a viewer's ferry invoke = %d, want 403\n%s%s", r.code, r.stdout, r.stderr)
	}
	// An unknown function is 404 naming the one there is.
	r = ferryRemote(t, p.api, serveToken, "invoke", "nope", "--env", "dev")
	if r.code == 0 || !strings.Contains(r.stderr, "404") || !strings.Contains(r.stderr, "hello") {
		t.Errorf("ferry invoke nope = %d, want 404 naming hello\n%s%s", r.code, r.stdout, r.stderr)
	}

	// ferry logs shows the access line of the call, with its status; a
	// viewer may read it.
	accessRE := regexp.MustCompile(`(?m)^\S+ access POST /dev/_ferry/invoke/hello 200 \S+ ce-id=\S+$`)
	r = ferryRemote(t, p.api, viewerToken, "logs", "hello", "--env", "dev")
	if r.code != 0 || !accessRE.MatchString(r.stdout) {
		t.Fatalf("ferry logs = %d, want the invoke's access line\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, " access GET /dev/hello 200 ") {
		t.Errorf("ferry logs lacks the GET's access line:\n%s", r.stdout)
	}
	r = ferryRemote(t, p.api, viewerToken, "logs", "hello", "--env", "qa")
	if r.code == 0 || !strings.Contains(r.stderr, "404") || !strings.Contains(r.stderr, "dev") {
		t.Errorf("ferry logs in an unknown environment = %d, want 404 naming the ones there are\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = ferryRemote(t, p.api, viewerToken, "logs", "hello", "--env", "dev", "--tail", "1", "-o", "json")
	if r.code != 0 || strings.Count(strings.TrimSpace(r.stdout), "\n") != 0 || !strings.Contains(r.stdout, `"stream":`) {
		t.Errorf("ferry logs --tail 1 -o json = %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// ferry logs -f prints a line produced after it started.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	follow := exec.CommandContext(ctx, ferryBin, "logs", "hello", "--env", "dev", "-f", "--tail", "1")
	follow.Env = append(os.Environ(), "FERRY_SERVER="+p.api, "FERRY_TOKEN="+viewerToken)
	stdout, err := follow.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &testreg.SyncBuffer{}
	follow.Stderr = stderr
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	defer func() { cancel(); <-exited }()
	lines := make(chan string, 100)
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		follow.Wait()
	}()
	// The tail line says the stream is open; only then is a call made.
	select {
	case <-lines:
	case <-time.After(60 * time.Second):
		t.Fatalf("ferry logs -f printed nothing within 60 s; stderr: %s", stderr)
	}
	resp, err := http.Post(p.gw+"/dev/hello?after=follow", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	deadline := time.After(60 * time.Second)
	for found := false; !found; {
		select {
		case l := <-lines:
			found = strings.Contains(l, " access POST /dev/hello 200 ")
		case <-deadline:
			t.Fatalf("ferry logs -f did not print the call made after it started; stderr: %s", stderr)
		}
	}
}

// TestLogsLocalShowsAccessLines checks the local mode of ferry invoke and
// ferry logs, with no server: the call goes to ferry run's gateway, and
// the log file holds its access line.
func TestLogsLocalShowsAccessLines(t *testing.T) {
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(filepath.Join(root, "examples", "python"))); err != nil {
		t.Fatal(err)
	}
	addr, dataDir, _ := startRun(t, dir)
	if r := ferry(t, "invoke", "hello", "--addr", addr, "-d", "@"+writeFile(t, `{"n": 1}`)); r.code != 0 || !strings.Contains(r.stdout, `"n"`) {
		t.Fatalf("ferry invoke -d @FILE: %+v", r)
	}
	if r := ferry(t, "invoke", "hello", "--addr", addr, "--method", "GET", "--path", "/hello"); r.code != 0 || !strings.Contains(r.stdout, "hello from python") {
		t.Fatalf("ferry invoke --path: %+v", r)
	}
	logs := ferry(t, "logs", "hello", "--data", dataDir)
	for _, want := range []string{" access POST /local/_ferry/invoke/hello 200 ", " access GET /local/hello 200 "} {
		if logs.code != 0 || !strings.Contains(logs.stdout, want) {
			t.Errorf("ferry logs lacks %q: %+v", want, logs)
		}
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "event.json")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
