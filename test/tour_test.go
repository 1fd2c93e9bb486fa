package test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferrycd/ferry/test/testreg"
)

// TestMakeRunTour is README's "The make run tour", run as a newcomer
// would: hack/run.sh (what `make run` runs) on free ports, the two tokens
// it prints, then prod's first release through two approvals, a commit
// through dev and staging, two approvals into prod, a rollback of prod
// and a resume, each with the ferry command the README shows. A second
// hack/run.sh beside the first refuses to start and leaves its
// configuration alone.
func TestMakeRunTour(t *testing.T) {
	runDir := t.TempDir()
	listen, addr, reg := freeAddr(t), freeAddr(t), freeAddr(t)
	env := append(os.Environ(), "FERRY="+ferryBin, "FERRY_RUN_DIR="+runDir,
		"LISTEN="+listen, "ADDR="+addr, "REGISTRY_ADDR="+reg,
		"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
	cmd := exec.Command(filepath.Join(root, "hack", "run.sh"))
	cmd.Env = env
	output := &testreg.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = output, output
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		// run.sh execs ferry serve, so this is ferry serve.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Error("ferry serve did not stop on SIGTERM")
		}
		if t.Failed() {
			t.Logf("make run said:\n%s", output)
		}
	})

	// The tokens, as printed.
	var newcomer, reviewer string
	waitFor(t, "make run's banner", exited, func() bool {
		m := regexp.MustCompile(`export FERRY_SERVER=http://\S+ FERRY_TOKEN=([0-9a-f]+)\n[^\n]*\n\s+reviewer\s+FERRY_TOKEN=([0-9a-f]+)`).FindStringSubmatch(output.String())
		if m == nil {
			return false
		}
		newcomer, reviewer = m[1], m[2]
		return true
	})
	if newcomer == reviewer {
		t.Fatal("make run printed one token twice")
	}
	cli := func(token string, args ...string) result {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		c := exec.CommandContext(ctx, ferryBin, args...)
		c.Dir = root
		c.Env = append(os.Environ(), "FERRY_SERVER=http://"+listen, "FERRY_TOKEN="+token)
		out, err := c.Output()
		r := result{stdout: string(out)}
		if exit, ok := err.(*exec.ExitError); ok {
			r.code, r.stderr = exit.ExitCode(), string(exit.Stderr)
		} else if err != nil {
			t.Fatal(err)
		}
		return r
	}
	greeting := func(envName string) string {
		resp, err := http.Get("http://" + addr + "/" + envName + "/hello")
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var out struct{ Message string }
		_ = json.Unmarshal(body, &out)
		return out.Message
	}
	// pendingProd waits for prod's pending promotion and returns its ID.
	pendingProd := func() string {
		t.Helper()
		var id string
		waitFor(t, "a pending promotion into prod", exited, func() bool {
			r := cli(newcomer, "promotions", "--env", "prod", "-o", "json")
			if r.code != 0 {
				t.Fatalf("ferry promotions --env prod: %+v", r)
			}
			var page struct {
				Items []struct {
					ID     int64
					Status string
				}
			}
			if err := json.Unmarshal([]byte(r.stdout), &page); err != nil {
				t.Fatalf("ferry promotions -o json: %v\n%s", err, r.stdout)
			}
			for _, p := range page.Items {
				if p.Status == "pending" {
					id = strconv.FormatInt(p.ID, 10)
					return true
				}
			}
			return false
		})
		return id
	}
	approveTwice := func(id string) {
		t.Helper()
		if r := cli(newcomer, "approve", id); r.code != 0 {
			t.Fatalf("ferry approve %s (newcomer): %+v", id, r)
		}
		// One approval of two: prod has not moved yet.
		if r := cli(newcomer, "promotions", id, "-o", "json"); r.code != 0 || !strings.Contains(r.stdout, `"status": "pending"`) {
			t.Fatalf("after one approval of two, promotion %s: %+v", id, r)
		}
		if r := cli(reviewer, "approve", id); r.code != 0 {
			t.Fatalf("ferry approve %s (reviewer): %+v", id, r)
		}
	}
	greets := func(envName, want string) {
		t.Helper()
		waitFor(t, envName+" greeting "+strconv.Quote(want), exited, func() bool { return greeting(envName) == want })
	}

	// A second make run beside the first changes nothing and says why.
	waitFor(t, "ferry serve's API", exited, func() bool { return cli(newcomer, "status").code == 0 })
	// The files that hold tokens are their owner's alone.
	for _, f := range []string{"ferry-serve.yaml", "token", "reviewer-token", "operator-token", "webhook-secret"} {
		info, err := os.Stat(filepath.Join(runDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v; want it readable by its owner only", f, info.Mode())
		}
	}
	before, err := os.ReadFile(filepath.Join(runDir, "ferry-serve.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	second := exec.Command(filepath.Join(root, "hack", "run.sh"))
	second.Env = append(env, "LISTEN="+freeAddr(t))
	out, err := second.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "ferry is already running on "+runDir+" (pid "+strconv.Itoa(cmd.Process.Pid)+")") {
		t.Fatalf("a second make run: %v\n%s", err, out)
	}
	if after, _ := os.ReadFile(filepath.Join(runDir, "ferry-serve.yaml")); string(after) != string(before) {
		t.Fatalf("a second make run rewrote the configuration:\n%s", after)
	}

	// prod's first release: the example's, after two approvals.
	greets("staging", "hello from python")
	approveTwice(pendingProd())
	greets("prod", "hello from python")

	// A commit goes through dev and staging by itself, and into prod
	// with two approvals.
	repo := filepath.Join(runDir, "demo-repo")
	main := filepath.Join(repo, "hello", "main.py")
	src, err := os.ReadFile(main)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(main, []byte(strings.Replace(string(src), "hello from python", "hello from my commit", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	git := exec.Command("git", "-c", "user.name=me", "-c", "user.email=me@example.com", "commit", "-qam", "greet")
	git.Dir, git.Env = repo, env
	if out, err := git.CombinedOutput(); err != nil {
		t.Fatalf("git commit: %v\n%s", err, out)
	}
	greets("dev", "hello from my commit")
	greets("staging", "hello from my commit")
	if r := cli(newcomer, "status"); r.code != 0 {
		t.Fatalf("ferry status: %+v", r)
	}
	// Before approving: what prod would take, and where each run went.
	if r := cli(newcomer, "diff", "prod", "staging"); r.code != 0 || !strings.Contains(r.stdout, "hello") || strings.Contains(r.stdout, "nothing differs") {
		t.Fatalf("ferry diff prod staging: %+v", r)
	}
	if r := cli(newcomer, "runs"); r.code != 0 || !strings.Contains(r.stdout, "dev ✔") {
		t.Fatalf("ferry runs: %+v", r)
	}
	approveTwice(pendingProd())
	greets("prod", "hello from my commit")
	// The gateway wrote an access line for the greeting into prod's log.
	if r := cli(newcomer, "logs", "hello", "--env", "prod"); r.code != 0 || !strings.Contains(r.stdout, "/hello") {
		t.Fatalf("ferry logs hello --env prod: %+v", r)
	}

	// Roll prod back, then let automatic promotions in again.
	if r := cli(newcomer, "rollback", "prod"); r.code != 0 {
		t.Fatalf("ferry rollback prod: %+v", r)
	}
	greets("prod", "hello from python")
	if r := cli(newcomer, "status", "prod"); r.code != 0 || !strings.Contains(r.stdout, "prod is held") {
		t.Fatalf("ferry status prod after the rollback: %+v", r)
	}
	if r := cli(newcomer, "resume", "prod"); r.code != 0 {
		t.Fatalf("ferry resume prod: %+v", r)
	}
	if r := cli(newcomer, "resume", "prod"); r.code == 0 {
		t.Fatalf("prod was still held after ferry resume prod: %+v", r)
	}
}

// waitFor polls ok until it holds; a hang (120 s) or the process ending
// fails the test.
func waitFor(t *testing.T, what string, exited <-chan struct{}, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(120 * time.Second)
	for !ok() {
		select {
		case <-exited:
			t.Fatalf("make run exited while waiting for %s", what)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 120 s", what)
		}
	}
}
