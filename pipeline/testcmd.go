package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ferrycd/ferry/internal/sandbox"
	"github.com/ferrycd/ferry/manifests"
	"github.com/ferrycd/ferry/manifests/v1alpha1"
)

// Limits of a test's log, each chosen so that a test that prints without
// end cannot fill the store.
const (
	// maxTestLines a test logs; the rest are counted.
	maxTestLines = 5000
	// maxLineLen cuts a line; a line without end is cut into pieces.
	maxLineLen = 2000
	// flushLines and flushEvery batch lines into one store write (each
	// one a synced transaction) while still showing a slow test's output
	// as it comes.
	flushLines = 500
	flushEvery = 200 * time.Millisecond
	// testWaitDelay is how long a test's output is waited for after it
	// exited or was killed: a process it left behind may hold the pipe.
	testWaitDelay = 2 * time.Second
	// testTmpSize bounds a sandboxed test's /tmp, which holds its HOME and
	// caches (Go's build cache among them): a tmpfs takes memory only as
	// it fills, and 1 GiB is room for a module's test build.
	testTmpSize = 1 << 30
	// testPath is a test's PATH: the sandbox's, with Go's usual home first
	// so that `go test` is found.
	testPath = "/usr/local/go/bin:" + sandbox.SystemPath
	// testWorkDir is where a sandboxed test sees its copy of the
	// repository.
	testWorkDir = "/work"
)

// testFunction runs f's test command in a scratch copy of the tree, with
// the function's source folder as working directory, logging its output
// line by line.
func (r *runner) testFunction(ctx context.Context, f *v1alpha1.Function) error {
	t := f.Spec.Test
	timeout := DefaultTestTimeout
	if t.Timeout != nil && t.Timeout.Duration > 0 {
		timeout = t.Timeout.Duration
	}
	if r.cfg.TestTimeout > 0 && r.cfg.TestTimeout < timeout {
		timeout = r.cfg.TestTimeout
	}
	prefix := f.Name + " | "
	dir, err := manifests.Resolve(r.tree, f.Spec.Source, true, nil)
	if err != nil {
		return fmt.Errorf("function %s: its source folder %s: %w", f.Name, f.Spec.Source, err)
	}

	scratch, err := os.MkdirTemp("", "ferry-test-")
	if err != nil {
		return fmt.Errorf("function %s: a scratch folder for its test: %w", f.Name, err)
	}
	defer os.RemoveAll(scratch)
	src, home, tmp := filepath.Join(scratch, "src"), filepath.Join(scratch, "home"), filepath.Join(scratch, "tmp")
	for _, d := range []string{home, tmp} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return fmt.Errorf("function %s: a scratch folder for its test: %w", f.Name, err)
		}
	}
	left, err := copyTree(ctx, r.tree, src)
	if err != nil {
		return fmt.Errorf("function %s: copying the repository for its test: %w", f.Name, err)
	}
	for _, l := range left {
		r.logf(ctx, StepTest, "%sleft out %s: a symlink that leads outside the repository", prefix, l)
	}

	sb := r.cfg.Sandbox
	if sb.Enabled() && os.Geteuid() == 0 {
		// why: the test runs as the sandbox's user and writes in its copy.
		if err := chownTree(src, sandbox.DefaultUID); err != nil {
			return fmt.Errorf("function %s: handing the copy of the repository to the sandbox: %w", f.Name, err)
		}
	}
	spec := sandbox.Spec{
		Program: t.Command[0], Args: t.Command[1:], Path: testPath,
		Dir:     path.Join(testWorkDir, dir),
		Binds:   []sandbox.Bind{{Src: src, Dest: testWorkDir, Write: true}},
		TmpSize: testTmpSize,
	}
	if sb.Enabled() {
		spec.Env = testEnv("/tmp", "/tmp", f)
	} else {
		spec.Env = testEnv(home, tmp, f)
	}
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	sc, err := sb.CommandContext(tctx, spec)
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return fmt.Errorf("function %s: running test %s: %w; install %s on the ferry host, or change spec.test.command", f.Name, quoteCommand(t.Command), err, t.Command[0])
		}
		return fmt.Errorf("function %s: running test %s: %w", f.Name, quoteCommand(t.Command), err)
	}
	cmd := sc.Cmd
	out := newLineLog(r, ctx, StepTest, prefix)
	cmd.Stdout, cmd.Stderr = out, out
	groupProcess(cmd, sb.Enabled())
	cmd.WaitDelay = testWaitDelay

	shown := quoteCommand(t.Command)
	r.logf(ctx, StepTest, "%s$ %s   (in %s, timeout %s)", prefix, shown, f.Spec.Source, timeout)
	start := time.Now()
	err = sc.Run()
	_ = killGroup(cmd) // what the test left running
	out.Close()

	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case tctx.Err() != nil:
		return fmt.Errorf("function %s: test %s did not finish within %s and was stopped; make it faster, or raise spec.test.timeout", f.Name, shown, timeout)
	case errors.As(err, &exit):
		return fmt.Errorf("function %s: test %s failed with %s after %s", f.Name, shown, exit.ProcessState, took(start))
	case errors.Is(err, exec.ErrWaitDelay):
		// It passed, and left a process behind that kept its output
		// open; killGroup stopped it.
		r.logf(ctx, StepTest, "%spassed in %s; processes it left running were stopped", prefix, took(start))
		return nil
	case errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("function %s: running test %s: %w; install %s on the ferry host, or change spec.test.command", f.Name, shown, err, t.Command[0])
	case err != nil:
		return fmt.Errorf("function %s: running test %s: %w", f.Name, shown, err)
	}
	r.logf(ctx, StepTest, "%spassed in %s", prefix, took(start))
	return nil
}

// testEnv is a test's environment: the fixed testPath (nothing of
// ferry's), HOME and TMPDIR in its scratch folder (the sandbox's /tmp),
// Go kept to what is there (no network, no toolchain download), then the
// function's spec.env and its spec.test.env, the latter winning.
func testEnv(home, tmp string, f *v1alpha1.Function) []string {
	// why: no GOFLAGS=-mod=mod: a repository that vendors its modules
	// (the way to have dependencies with no network) builds from vendor/
	// by default, and -mod=mod would send it to the proxy instead.
	env := []string{"PATH=" + testPath, "HOME=" + home, "TMPDIR=" + tmp,
		"GOPROXY=off", "GOTOOLCHAIN=local"}
	add := func(m map[string]string) {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			env = append(env, k+"="+m[k])
		}
	}
	// why: a test runs in no environment, so a variable that names a
	// secret of one is left unset; the test's own env may give it a value.
	add(f.Spec.PlainEnv())
	add(f.Spec.Test.Env)
	return env
}

// chownTree gives every file under dir to uid (as its group too), not
// following links.
func chownTree(dir string, uid int) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, uid)
	})
}

// quoteCommand shows a command as a shell would need it typed.
func quoteCommand(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n\"'\\$`*?[]{}()<>|&;#~") {
			a = strconv.Quote(a)
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}

// copyTree copies the repository tree fsys into the new folder dst:
// folders, regular files (executable or not) and symlinks that stay
// inside the tree. It returns the symlinks it left out because they lead
// outside.
func copyTree(ctx context.Context, fsys fs.FS, dst string) ([]string, error) {
	var left []string
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		to := filepath.Join(dst, filepath.FromSlash(p))
		switch {
		case d.IsDir():
			return os.MkdirAll(to, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			target, err := fs.ReadLink(fsys, p)
			if err != nil || filepath.IsAbs(target) {
				left = append(left, p)
				return nil
			}
			if _, err := manifests.Resolve(fsys, p, true, nil); err != nil && !errors.Is(err, fs.ErrNotExist) {
				left = append(left, p)
				return nil
			}
			// A link inside the tree keeps its relative target, which
			// the copy's layout still satisfies.
			return os.Symlink(target, to)
		case d.Type().IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			mode := os.FileMode(0o644)
			if info.Mode().Perm()&0o111 != 0 {
				mode = 0o755
			}
			return copyFile(fsys, p, to, mode)
		}
		return nil // devices, sockets, pipes: not in a Git tree
	})
	return left, err
}

func copyFile(fsys fs.FS, name, to string, mode os.FileMode) error {
	in, err := fsys.Open(name)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// lineLog is an io.Writer that appends what is written, line by line, to
// a step's log, up to maxTestLines lines. Write only buffers: a goroutine
// of its own writes the lines to the store in batches, so a slow store
// never holds up the command's output.
type lineLog struct {
	r      *runner
	ctx    context.Context
	step   string
	prefix string

	kick    chan struct{} // a line is pending
	done    chan struct{} // closed by Close
	flushed chan struct{} // closed when the last lines are written

	mu      sync.Mutex
	partial []byte
	pending []string
	lines   int
	dropped int
}

func newLineLog(r *runner, ctx context.Context, step, prefix string) *lineLog {
	l := &lineLog{r: r, ctx: ctx, step: step, prefix: prefix,
		kick: make(chan struct{}, 1), done: make(chan struct{}), flushed: make(chan struct{})}
	go l.flusher()
	return l
}

func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.add(l.partial[:i])
		l.partial = append(l.partial[:0], l.partial[i+1:]...)
	}
	for len(l.partial) > maxLineLen {
		l.add(l.partial[:maxLineLen])
		l.partial = append(l.partial[:0], l.partial[maxLineLen:]...)
	}
	if len(l.pending) > 0 {
		select {
		case l.kick <- struct{}{}:
		default:
		}
	}
	return len(p), nil
}

// add adds one line; l.mu is held.
func (l *lineLog) add(line []byte) {
	if l.lines >= maxTestLines {
		l.dropped++
		return
	}
	line = bytes.TrimSuffix(line, []byte("\r"))
	if len(line) > maxLineLen {
		line = line[:maxLineLen]
	}
	l.lines++
	l.pending = append(l.pending, l.prefix+strings.ToValidUTF8(string(line), "\uFFFD"))
}

// flusher writes pending lines flushEvery after the first of them, until
// Close.
func (l *lineLog) flusher() {
	defer close(l.flushed)
	for {
		select {
		case <-l.kick:
		case <-l.done:
			l.writeOut()
			return
		}
		select {
		case <-time.After(flushEvery):
		case <-l.done:
		}
		l.writeOut()
	}
}

// writeOut writes the pending lines, flushLines to a store write.
func (l *lineLog) writeOut() {
	l.mu.Lock()
	lines := l.pending
	l.pending = nil
	l.mu.Unlock()
	for len(lines) > 0 {
		n := min(len(lines), flushLines)
		l.r.log(l.ctx, l.step, lines[:n]...)
		lines = lines[n:]
	}
}

// Close writes what is left, and how many lines were not kept, and waits
// until they are written.
func (l *lineLog) Close() {
	l.mu.Lock()
	if len(l.partial) > 0 {
		l.add(l.partial)
		l.partial = nil
	}
	if l.dropped > 0 {
		l.pending = append(l.pending, fmt.Sprintf("%s… %d more lines not kept (a test logs at most %d)", l.prefix, l.dropped, maxTestLines))
	}
	l.mu.Unlock()
	close(l.done)
	<-l.flushed
}
