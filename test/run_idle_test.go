package test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferrycd/ferry/test/testreg"
)

// idleFor is how long ferry run is left alone: the 30 s, in
// which the loop it had rebuilt 27 times in 8 s.
const idleFor = 30 * time.Second

// TestRunIdleMakesNoBuilds: `ferry run` with its data folder in the
// repository (the default, DIR/.ferry-data) builds once at start, not
// again while nothing is saved, and exactly once for one save; in a
// folder `ferry init` made (no Git; its .gitignore lists .ferry-data/)
// and in a Git copy of examples/nodejs, which ignores nothing, so that
// only the watcher's skipping of the data folder keeps it from building
// on its own writes.
func TestRunIdleMakesNoBuilds(t *testing.T) {
	t.Run("init", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		if r := ferryAt(t, dir, "init", "--runtime", "python", "--name", "hello"); r.code != 0 {
			t.Fatalf("ferry init: %+v", r)
		}
		idleThenSave(t, dir, filepath.Join(dir, "hello", "main.py"))
	})
	t.Run("nodejs", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		if err := os.CopyFS(dir, os.DirFS(filepath.Join(root, "examples", "nodejs"))); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "-A"}, {"-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "example"}} {
			git := exec.Command("git", args...)
			git.Dir = dir
			git.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
			if out, err := git.CombinedOutput(); err != nil {
				t.Fatalf("git %v: %v\n%s", args, err, out)
			}
		}
		idleThenSave(t, dir, filepath.Join(dir, "hello", "index.js"))
	})
}

// idleThenSave runs `ferry run` in dir, leaves it idle, then edits file
// once, checking the builds at each step by ferry run's lines.
func idleThenSave(t *testing.T, dir, file string) {
	run := startRunIn(t, dir)
	time.Sleep(idleFor)
	if n := run.count("building: "); n != 0 {
		t.Fatalf("ferry run built %d times while idle:\n%s", n, run.output)
	}
	if n := run.count("release "); n != 1 {
		t.Fatalf("%d releases while idle, want the first only:\n%s", n, run.output)
	}

	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	comment := "\n// edited\n"
	if strings.HasSuffix(file, ".py") {
		comment = "\n# edited\n"
	}
	if err := os.WriteFile(file, append(data, comment...), 0o644); err != nil {
		t.Fatal(err)
	}
	run.waitLive(t, 2)
	// A second build would start within a few looks of the first; the
	// pause gives it ample time to show.
	time.Sleep(5 * time.Second)
	want := "building: " + filepath.ToSlash(must(filepath.Rel(dir, file))) + " changed"
	if n := run.count("building: "); n != 1 || !strings.Contains(run.output.String(), want) {
		t.Fatalf("one save made %d builds, want one saying %q:\n%s", n, want, run.output)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// ferryAt runs the binary in dir; a command that hangs is killed after
// two minutes.
func ferryAt(t *testing.T, dir string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, ferryBin, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	r := result{stdout: string(out)}
	if exit, ok := err.(*exec.ExitError); ok {
		r.code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return r
}

// runProc is a `ferry run` started in its repository.
type runProc struct {
	cmd    *exec.Cmd
	output *testreg.SyncBuffer
	live   chan struct{}
	// exited is closed when the process has ended, with err its end.
	exited chan struct{}
	err    error
	lives  int
}

// startRunIn starts `ferry run` in dir with its default data folder on a
// free port, waits for its first release, and stops it with SIGINT when
// the test ends.
func startRunIn(t *testing.T, dir string, extra ...string) *runProc {
	t.Helper()
	p := launchRun(t, dir, extra...)
	p.waitLive(t, 1)
	return p
}

// launchRun starts `ferry run` in dir without waiting for anything.
func launchRun(t *testing.T, dir string, extra ...string) *runProc {
	t.Helper()
	cmd := exec.Command(ferryBin, append([]string{"run", ".", "--addr", freeAddr(t)}, extra...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &runProc{cmd: cmd, output: &testreg.SyncBuffer{}, live: make(chan struct{}, 64), exited: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.output.Write([]byte(sc.Text() + "\n"))
			if strings.HasPrefix(sc.Text(), "release ") && strings.HasSuffix(sc.Text(), " live") {
				p.live <- struct{}{}
			}
		}
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-p.exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			t.Error("ferry run did not stop on SIGINT")
		}
	})
	return p
}

// waitLive waits until the n-th release is live.
func (p *runProc) waitLive(t *testing.T, n int) {
	t.Helper()
	for p.lives < n {
		select {
		case <-p.live:
			p.lives++
		case <-p.exited:
			t.Fatalf("ferry run exited (%v):\n%s", p.err, p.output)
		case <-time.After(120 * time.Second):
			t.Fatalf("release %d did not go live:\n%s", n, p.output)
		}
	}
}

// count is how many lines of the output begin with prefix.
func (p *runProc) count(prefix string) int {
	n := 0
	for _, l := range strings.Split(p.output.String(), "\n") {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}
