package test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrycd/ferry/internal/gitauth/sshtest"
	"github.com/ferrycd/ferry/server"
	"github.com/ferrycd/ferry/test/gitserver"
	"github.com/ferrycd/ferry/test/testreg"
)

// frontServer is where a source points: until to is set it accepts
// connections and never writes a byte (a hung Git server); after, it
// passes new connections on to the address to (a working one).
type frontServer struct {
	ln     net.Listener
	to     atomic.Pointer[string]
	closed atomic.Int64 // hung connections the client gave up
	mu     sync.Mutex
	conns  []net.Conn
}

func newFrontServer(t *testing.T) *frontServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &frontServer{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.conns = append(f.conns, c)
			f.mu.Unlock()
			go f.serve(c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		f.mu.Lock()
		for _, c := range f.conns {
			c.Close()
		}
		f.mu.Unlock()
	})
	return f
}

func (f *frontServer) serve(c net.Conn) {
	to := f.to.Load()
	if to == nil {
		io.Copy(io.Discard, c) // never answers; returns when ferry closes it
		f.closed.Add(1)
		return
	}
	back, err := net.Dial("tcp", *to)
	if err != nil {
		c.Close()
		return
	}
	go func() { io.Copy(back, c); back.Close() }()
	io.Copy(c, back)
	c.Close()
}

// A Git server that accepts and never answers, over HTTP and over SSH
// (whose handshake go-git does not bound itself), with the source's
// timeout 2s: the source shows "failing: no answer within 2s", backs off
// (2s, 4s, 8s after the first three failures), ferry sources sync answers
// with the outcome instead of blocking, and once a working server answers
// at that address the source recovers and its code deploys.
func TestHungGitServer(t *testing.T) {
	// why parallel: these tests mostly wait for timeouts and back-off,
	// so they overlap with the other waiting tests at little cost.
	t.Parallel()
	for _, proto := range []string{"http", "ssh"} {
		t.Run(proto, func(t *testing.T) {
			t.Parallel()
			gs := gitserver.Start(t, "", "")
			pythonRepo(t, gs, "demo", nil)
			front := newFrontServer(t)
			var source, target string
			switch proto {
			case "http":
				source = fmt.Sprintf(`- {name: hung, url: "http://%s/demo.git", branch: main, interval: 1s, timeout: 2s}`, front.ln.Addr())
				target = strings.TrimPrefix(gs.URL, "http://")
			case "ssh":
				key, pub := sshtest.NewKey(t, "")
				keyFile := filepath.Join(t.TempDir(), "deploy-key")
				if err := os.WriteFile(keyFile, []byte(key), 0o600); err != nil {
					t.Fatal(err)
				}
				ss := sshtest.NewServer(t, pub)
				bare := filepath.Join(gs.Root, "demo.git")
				source = fmt.Sprintf(`- {name: hung, url: "ssh://git@%s%s", branch: main, interval: 1s, timeout: 2s, sshKeyFile: %q}`, front.ln.Addr(), bare, keyFile)
				target = strings.TrimPrefix(strings.TrimSuffix(ss.URL(bare), bare), "ssh://git@")
			}
			p := startServe(t, writeServeConfig(t, source))
			remote := []string{"--server", p.api, "--token", serveToken}
			c := p.client(t)

			// Three failures: about 2+2+2+4+2 s; bounded only to catch a
			// hang.
			var hung server.SourceView
			for deadline := time.Now().Add(3 * time.Minute); ; {
				srcs, err := c.Sources(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				hung = srcs[0]
				if hung.Failures >= 3 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the source did not fail three times: %+v\n%s", hung, p.output)
				}
				time.Sleep(100 * time.Millisecond)
			}
			if !strings.HasPrefix(hung.LastError, "no answer within 2s from "+proto+"://") ||
				!strings.Contains(hung.LastError, "check that the Git server answers") || hung.Timeout != "2s" || hung.LastCommit != "" {
				t.Errorf("the hung source's status: %+v", hung)
			}
			// The watcher's back-off doubles the 1s interval after each
			// failure.
			for i, next := range []string{"2s", "4s", "8s"} {
				if want := fmt.Sprintf("(failure %d in a row; next try in %s)", i+1, next); !strings.Contains(p.output.String(), want) {
					t.Errorf("the log does not say %q:\n%s", want, p.output)
				}
			}
			r := ferry(t, append([]string{"sources", "list"}, remote...)...)
			if r.code != 0 || !strings.Contains(r.stdout, "failing: no answer within 2s") {
				t.Errorf("ferry sources list: %d\n%s%s", r.code, r.stdout, r.stderr)
			}
			// The sync answers within a fetch or two (ferry gives up on
			// it after a minute, far beyond).
			r = ferry(t, append([]string{"sources", "sync", "hung"}, remote...)...)
			if r.code != 1 || !strings.Contains(r.stderr, "no answer within 2s from") {
				t.Errorf("ferry sources sync of the hung source: %d\n%s%s", r.code, r.stdout, r.stderr)
			}
			if front.closed.Load() < 3 {
				t.Errorf("ferry closed %d connections to the hung server, want one for each failed fetch", front.closed.Load())
			}

			// A working server answers there now: the source recovers and
			// deploys.
			front.to.Store(&target)
			r = ferry(t, append([]string{"sources", "sync", "hung"}, remote...)...)
			if r.code != 0 {
				t.Fatalf("ferry sources sync after the server came back: %d\n%s%s\n%s", r.code, r.stdout, r.stderr, p.output)
			}
			r = ferry(t, append([]string{"sources", "list", "-o", "json"}, remote...)...)
			var listed []server.SourceView
			if err := json.Unmarshal([]byte(r.stdout), &listed); err != nil || len(listed) != 1 ||
				listed[0].LastError != "" || listed[0].Failures != 0 || listed[0].LastCommit == "" {
				t.Errorf("the source after it recovered: %v %s%s", err, r.stdout, r.stderr)
			}
			waitGreetingAt(t, p, p.gw+"/dev/hello", "hello from python", 3*time.Minute)

			// A source added through the CLI keeps the timeout given.
			other := newFrontServer(t)
			r = ferry(t, append([]string{"sources", "add", "slow", fmt.Sprintf("http://%s/slow.git", other.ln.Addr()), "--interval", "1h", "--timeout", "3s"}, remote...)...)
			if r.code != 0 {
				t.Fatalf("ferry sources add --timeout 3s: %d %s%s", r.code, r.stdout, r.stderr)
			}
			if !strings.Contains(r.stdout, ", each fetch within 3s") {
				t.Errorf("ferry sources add --timeout 3s does not say the timeout: %s", r.stdout)
			}
			r = ferry(t, append([]string{"sources", "sync", "slow"}, remote...)...)
			if r.code != 1 || !strings.Contains(r.stderr, "no answer within 3s from") {
				t.Errorf("ferry sources sync of a hung source added with --timeout 3s: %d\n%s%s", r.code, r.stdout, r.stderr)
			}
		})
	}
}

// hang makes f a hung server again: new connections get no answer, and
// the ones passed on before are closed.
func (f *frontServer) hang() {
	f.to.Store(nil)
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.conns {
		c.Close()
	}
	f.conns = nil
}

// A registry that accepts connections and never answers, with
// registryTimeout 2s: the run's build step fails saying so, instead of
// the run staying running, and marked as failed by ferry's
// infrastructure. Once the registry answers, the head deploys: after a
// restart, and without one.
func TestHungRegistry(t *testing.T) {
	t.Parallel() // it mostly waits for the registry's timeout
	gs := gitserver.Start(t, "", "")
	url, work := pythonRepo(t, gs, "demo", nil)
	hung := newFrontServer(t) // no target yet: it never answers
	reg := testreg.Embedded(t, t.TempDir())
	cfg := writeServeConfig(t, fmt.Sprintf(`- {name: demo, url: %q, branch: main, interval: 1s}`, url))
	b, err := os.ReadFile(cfg.path)
	if err != nil {
		t.Fatal(err)
	}
	external := strings.Replace(string(b), "registry: embedded\n", fmt.Sprintf("registry: %s/ferry\nregistryTimeout: 2s\n", hung.ln.Addr()), 1)
	if external == string(b) {
		t.Fatal("the configuration has no registry: embedded line to replace")
	}
	if err := os.WriteFile(cfg.path, []byte(external), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startServe(t, cfg)
	c := p.client(t)

	// Three tries of each 2s wait, and the build: bounded only to catch
	// a hang.
	var run server.RunView
	for deadline := time.Now().Add(5 * time.Minute); ; {
		runs, err := c.Runs(t.Context(), "demo", 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(runs.Items) > 0 && runs.Items[0].Status != "queued" && runs.Items[0].Status != "running" {
			if run, err = c.Run(t.Context(), runs.Items[0].ID); err != nil {
				t.Fatal(err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the run did not end: %+v\n%s\n%s", runs.Items, p.output, p.runsReport(t))
		}
		time.Sleep(200 * time.Millisecond)
	}
	want := fmt.Sprintf("no answer from the registry %s within 2s; check that the registry is up and answers", hung.ln.Addr())
	if run.Status != "failed" || !strings.Contains(run.Reason, want) {
		t.Fatalf("the run against a hung registry: %s %q, want failed saying %q\n%s", run.Status, run.Reason, want, p.runsReport(t))
	}
	var failedStep bool
	for _, s := range run.Steps {
		if s.Status == "failed" && strings.Contains(s.Reason, want) {
			failedStep = true
		}
	}
	if !failedStep {
		t.Errorf("no step failed saying %q: %+v", want, run.Steps)
	}
	if !run.InfraFailed || !strings.Contains(run.Reason, "ferry runs the branch head again") {
		t.Errorf("the run is not marked as failed by ferry's infrastructure: %+v", run)
	}

	// The registry answers by the next start: the head runs again from
	// its build step, and deploys.
	p.stop(t)
	hung.to.Store(&reg.Addr)
	p = startServe(t, cfg)
	waitGreeting(t, p, "hello from python", 5*time.Minute)
	after := waitRunDone(t, p, run.ID)
	if after.Status != "succeeded" || after.InfraFailed {
		t.Errorf("the run after the restart: %s %q (marked %v)", after.Status, after.Reason, after.InfraFailed)
	}
	for i := range 2 {
		if !after.Steps[i].Started.Equal(run.Steps[i].Started) {
			t.Errorf("step %s ran again (started %s, then %s)", after.Steps[i].Name, run.Steps[i].Started, after.Steps[i].Started)
		}
	}

	// The registry hangs again for c2's run, which fails; it answers
	// again and c2 deploys without a restart.
	hung.hang()
	commitGreeting(t, work, "", "hello from c2")
	c = p.client(t)
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		r2, err := c.Run(t.Context(), run.ID+1)
		if err == nil && r2.Status == "failed" {
			if !r2.InfraFailed || !strings.Contains(r2.Reason, want) {
				t.Errorf("c2's run against the hung registry: %+v", r2)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("c2's run did not fail against the hung registry: %+v, %v\n%s", r2, err, p.output)
		}
	}
	hung.to.Store(&reg.Addr)
	waitGreeting(t, p, "hello from c2", 5*time.Minute)
	waitSaid(t, p, "failed because ferry's infrastructure did; it runs again in", time.Minute)
}
