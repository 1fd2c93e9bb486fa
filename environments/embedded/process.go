package embedded

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ferrycd/ferry/internal/sandbox"
)

// Defaults of a processSpec, each used when its field is zero.
const (
	// defaultStartTimeout: an interpreter with a few imports is healthy in
	// well under a second; 20 s leaves room for a loaded machine and heavy
	// dependencies without hiding a function that will never come up.
	defaultStartTimeout = 20 * time.Second
	// defaultFunctionTimeout is the invokers' own default FUNCTION_TIMEOUT.
	defaultFunctionTimeout = 30 * time.Second
	// stopGraceExtra is added to the function's timeout for the default
	// StopGrace: after SIGTERM an invoker gives calls in flight
	// FUNCTION_TIMEOUT plus one second, and needs a moment to exit.
	stopGraceExtra = 2 * time.Second
	// Restart backoff: quick enough that one crash costs a fraction of a
	// second, capped so a function that keeps crashing costs little, and
	// forgiven once the function has stayed up for a minute.
	defaultBackoffStart = 200 * time.Millisecond
	defaultBackoffMax   = 30 * time.Second
	defaultBackoffReset = 60 * time.Second
)

const (
	// logRingLines bounds the lines kept in memory per function; with
	// maxLogLine that is at most 16 MiB even for a function that only
	// writes very long lines.
	logRingLines = 1000
	// maxLogLine caps one line; the rest of a longer line is dropped.
	maxLogLine = 16 << 10
	// startLogTail is how many log lines a failed start's error carries.
	startLogTail = 20
	// healthPoll is the pause between /healthz probes: cheap on loopback,
	// and short because it adds straight to a cold start.
	healthPoll = 5 * time.Millisecond
	// healthProbeTimeout bounds one probe, so a function that accepts a
	// connection and never answers is probed again.
	healthProbeTimeout = time.Second
	// drainTimeout bounds the wait for a stopped process's output to reach
	// the log; only a program that escaped the group could hold it longer.
	drainTimeout = 2 * time.Second
	// groupGoneTimeout bounds the wait for the killed group to be dead.
	groupGoneTimeout = 2 * time.Second
)

// truncatedMark ends a line cut at maxLogLine.
const truncatedMark = " …[line truncated at 16 KiB]"

// processSpec says how to run one function as a child process.
type processSpec struct {
	Name string // function name, for logs and errors
	// Argv and Dir are paths as the program sees them: inside the
	// sandbox, where Root's folders are at /.
	Argv []string
	// Sandbox runs the program (nil: as ferry); Root is the unpacked
	// image, UID the user, TmpSize the size of its /tmp in bytes.
	Sandbox *sandbox.Sandbox
	Root    string
	UID     int
	TmpSize int64
	// Env is the base environment (from command). The supervisor adds
	// UserEnv, then PORT, FUNCTION_NAME, FUNCTION_TIMEOUT and FUNCTION_MEMORY;
	// a later value of a name replaces an earlier one, so the contract's
	// variables cannot be overridden (the manifest refuses them anyway).
	Env     []string
	UserEnv map[string]string
	// Secrets are the values of UserEnv that came from secrets; the log
	// shows none of them (see secretRedactor).
	Secrets []string
	Timeout time.Duration // FUNCTION_TIMEOUT; default 30 s
	Memory  string        // FUNCTION_MEMORY, e.g. "128Mi"; left out when empty (not enforced: it is the function's hint)
	Dir     string        // working folder: the image's /ferry/function
	// Log is the function's log, which every line goes to as well as the
	// process's own ring: it outlives the process. Nil: a log of this
	// process alone, written to LogFile.
	Log          *FunctionLog
	LogFile      string        // where Log writes; named in a failed start's error
	StartTimeout time.Duration // how long to wait for GET /healthz == 200; default 20 s
	StopGrace    time.Duration // SIGTERM, then SIGKILL after this; default Timeout + 2 s

	// Restart backoff after a crash: the first wait, its cap (it doubles
	// each time), and how long the function must run healthy for the next
	// crash to start again from the first wait. Defaults 200 ms, 30 s, 60 s.
	BackoffStart time.Duration
	BackoffMax   time.Duration
	BackoffReset time.Duration
}

// logLine is one line of a function's output, or of its supervisor.
type logLine struct {
	Time   time.Time
	Stream string // "stdout", "stderr" or "ferry" (the supervisor)
	Text   string
}

// processPhase is where a supervised process is in its life.
type processPhase string

const (
	phaseStarting   processPhase = "starting"
	phaseRunning    processPhase = "running"
	phaseRestarting processPhase = "restarting"
	phaseStopped    processPhase = "stopped"
)

// processState is a snapshot of a supervised process.
type processState struct {
	Phase       processPhase
	PID         int       // the current child, also its process group; 0 when none runs
	Port        int       // where it serves, or will serve
	Restarts    int       // restarts after crashes so far
	NextAttempt time.Time // when restarting: the next start
	LastExit    string    // why the last run ended, empty before any ended
}

// process is a function's child process under supervision: started in its
// own process group, restarted with backoff when it crashes, its output
// kept in a ring and a file.
type process struct {
	spec processSpec
	logs *logSink
	// ln is the function's listening socket on 127.0.0.1, opened by ferry
	// in the host's network and handed to every run as fd 3: a sandboxed
	// function has a network of its own, and the port stays the same
	// across restarts.
	ln *net.TCPListener

	stopCtx  context.Context // cancelled by Stop: ends waits for restarts
	stopNow  context.CancelFunc
	stopOnce sync.Once
	kill     chan struct{} // closed when a Stop's ctx ended: skip the grace
	killOnce sync.Once
	killWhy  error         // the cause of that ctx, for the log; set before kill closes
	done     chan struct{} // closed when the supervisor has stopped the child

	mu    sync.Mutex
	state processState
}

// run is one start of the child.
type run struct {
	cmd     *exec.Cmd
	port    int
	healthy time.Time     // when /healthz first answered 200
	exited  chan struct{} // closed when the child has exited
	err     error         // Wait's result; read after exited
	output  sync.WaitGroup
}

// startProcess starts spec's program on a free loopback port in its own
// process group and waits until GET /healthz answers 200. If the program
// exits first, or is not healthy within StartTimeout, or ctx ends, the
// group is killed and the error carries the last log lines. ctx bounds
// only the start: the process runs until Stop.
func startProcess(ctx context.Context, spec processSpec) (*process, error) {
	if spec.Name == "" || len(spec.Argv) == 0 {
		return nil, fmt.Errorf("starting a function process: name and argv are required")
	}
	if spec.Timeout <= 0 {
		spec.Timeout = defaultFunctionTimeout
	}
	if spec.StartTimeout <= 0 {
		spec.StartTimeout = defaultStartTimeout
	}
	if spec.StopGrace <= 0 {
		spec.StopGrace = spec.Timeout + stopGraceExtra
	}
	if spec.BackoffStart <= 0 {
		spec.BackoffStart = defaultBackoffStart
	}
	if spec.BackoffMax <= 0 {
		spec.BackoffMax = defaultBackoffMax
	}
	if spec.BackoffReset <= 0 {
		spec.BackoffReset = defaultBackoffReset
	}
	own := spec.Log == nil
	if own {
		spec.Log = NewFunctionLog(spec.LogFile)
	}
	logs := &logSink{out: spec.Log, own: own, redact: secretRedactor(spec.Secrets)}
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		logs.close()
		return nil, fmt.Errorf("function %s: opening its loopback socket: %w", spec.Name, err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	stopCtx, stopNow := context.WithCancel(context.Background())
	p := &process{
		spec:    spec,
		logs:    logs,
		ln:      ln,
		stopCtx: stopCtx,
		stopNow: stopNow,
		kill:    make(chan struct{}),
		done:    make(chan struct{}),
		state:   processState{Phase: phaseStarting, Port: port},
	}
	r, err := p.launch(ctx, port)
	if err != nil {
		stopNow()
		p.setState(func(s *processState) { s.Phase, s.PID = phaseStopped, 0 })
		logs.close()
		ln.Close()
		return nil, err
	}
	p.setState(func(s *processState) { s.Phase = phaseRunning })
	go p.supervise(r)
	return p, nil
}

// URL is where the function serves now; it changes only when a restart
// had to move to another port.
func (p *process) URL() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return "http://127.0.0.1:" + strconv.Itoa(p.state.Port)
}

// State returns a snapshot of the process's state.
func (p *process) State() processState {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state
}

// Logs returns the last n lines (all kept when n <= 0), oldest first.
func (p *process) Logs(n int) []logLine { return p.logs.last(n) }

// Stop sends SIGTERM to the process group, SIGKILL after StopGrace, and
// returns when no process of the group is left alive. It never restarts
// the function again. If ctx ends first the group is killed at once and
// ctx's error returned. Calling it again waits for the same end.
func (p *process) Stop(ctx context.Context) error {
	p.stopOnce.Do(p.stopNow)
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		p.killOnce.Do(func() {
			p.killWhy = context.Cause(ctx)
			close(p.kill)
		})
		return fmt.Errorf("stopping function %s: %w (its processes were killed without waiting for them to finish)", p.spec.Name, ctx.Err())
	}
}

func (p *process) setState(f func(*processState)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(&p.state)
}

// supervise watches the healthy run r, restarts the child after each
// crash and stops it when Stop is called.
func (p *process) supervise(r *run) {
	defer close(p.done)
	defer p.logs.close()
	defer p.ln.Close()
	delay := p.spec.BackoffStart
	for {
		select {
		case <-r.exited:
		case <-p.stopCtx.Done():
			p.terminate(r)
			p.setState(func(s *processState) { s.Phase, s.PID = phaseStopped, 0 })
			return
		}
		why := exitReason(r.err)
		if time.Since(r.healthy) >= p.spec.BackoffReset {
			delay = p.spec.BackoffStart
		}
		// why: callers see the crash at once, not after the clean-up.
		p.setState(func(s *processState) {
			s.Phase, s.PID, s.NextAttempt, s.LastExit = phaseRestarting, 0, time.Now().Add(delay), why
		})
		p.reap(r)
		p.logs.add("ferry", 0, fmt.Sprintf("function %s %s after running %s", p.spec.Name, why, time.Since(r.healthy).Round(time.Millisecond)))
		for {
			at := time.Now().Add(delay)
			p.setState(func(s *processState) {
				s.Phase, s.PID, s.NextAttempt, s.LastExit = phaseRestarting, 0, at, why
			})
			p.logs.add("ferry", 0, fmt.Sprintf("restarting function %s in %s", p.spec.Name, delay))
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-p.stopCtx.Done():
				t.Stop()
				p.setState(func(s *processState) { s.Phase = phaseStopped })
				return
			}
			delay = min(2*delay, p.spec.BackoffMax)
			// The socket is ferry's, so the port (and every caller's URL)
			// stays.
			port := r.port
			p.setState(func(s *processState) { s.Restarts++ })
			next, err := p.launch(p.stopCtx, port)
			if err == nil {
				r = next
				p.setState(func(s *processState) { s.Phase, s.NextAttempt = phaseRunning, time.Time{} })
				p.logs.add("ferry", 0, fmt.Sprintf("function %s is healthy again on port %d", p.spec.Name, port))
				break
			}
			if p.stopCtx.Err() != nil {
				p.setState(func(s *processState) { s.Phase, s.PID = phaseStopped, 0 })
				return
			}
			// why: the error's first line says why; the log tail after it is
			// in the log already.
			why = firstLine(err.Error())
			p.logs.add("ferry", 0, fmt.Sprintf("restart of function %s failed: %s", p.spec.Name, why))
		}
	}
}

// launch starts the child on port and waits until it is healthy. On
// failure the group is gone and the error carries the log tail.
func (p *process) launch(ctx context.Context, port int) (*run, error) {
	r, err := p.spawn(port)
	if err != nil {
		return nil, err
	}
	p.setState(func(s *processState) { s.PID = r.cmd.Process.Pid })
	err = p.waitHealthy(ctx, r)
	if err == nil {
		r.healthy = time.Now()
		return r, nil
	}
	killGroup(r.cmd.Process.Pid, syscall.SIGKILL)
	<-r.exited
	p.reap(r)
	p.setState(func(s *processState) { s.PID = 0 })
	tail := formatLines(p.logs.last(startLogTail))
	p.logs.add("ferry", 0, fmt.Sprintf("start of function %s failed: %s", p.spec.Name, err))
	return nil, &startError{err: err, file: p.spec.LogFile, tail: tail}
}

// startError is a start that failed, with what the function logged. Its
// first line says why; the log lines follow it, so a one-line summary
// keeps the reason.
type startError struct {
	err  error
	file string // where the whole log is; "" for none
	tail string // the last lines it logged, formatted; "" for none
	// note is said after the reason, before the log lines (what the
	// failure left running).
	note string
}

func (e *startError) Error() string {
	var b strings.Builder
	b.WriteString(e.err.Error())
	if e.note != "" {
		b.WriteString("; " + e.note)
	}
	if e.tail == "" {
		b.WriteString("; it logged nothing")
		return b.String()
	}
	b.WriteString("; its last log lines")
	if e.file != "" {
		b.WriteString(" (all in " + e.file + ")")
	}
	b.WriteString(":\n" + strings.TrimRight(e.tail, "\n"))
	return b.String()
}

func (e *startError) Unwrap() error { return e.err }

// spawn starts the child on port in a new process group, its output
// going to the log.
func (p *process) spawn(port int) (*run, error) {
	sock, err := p.ln.File()
	if err != nil {
		return nil, fmt.Errorf("function %s: handing over its socket: %w", p.spec.Name, err)
	}
	defer sock.Close()
	sc, err := p.spec.Sandbox.Command(sandbox.Spec{
		Root: p.spec.Root, Program: p.spec.Argv[0], Args: p.spec.Argv[1:], Env: p.env(port), Dir: p.spec.Dir,
		TmpSize: p.spec.TmpSize, UID: p.spec.UID, ExtraFiles: []*os.File{sock},
	})
	if err != nil {
		return nil, fmt.Errorf("function %s: %w", p.spec.Name, err)
	}
	cmd := sc.Cmd
	cmd.SysProcAttr = functionProcAttr(p.spec.Sandbox.Enabled())
	// why: our own pipes rather than cmd.StdoutPipe: Wait must return when
	// the child exits even when something it spawned still holds the
	// pipe, and the readers must see every line the child wrote.
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("function %s: %w", p.spec.Name, err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, fmt.Errorf("function %s: %w", p.spec.Name, err)
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	err = sc.Start()
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return nil, fmt.Errorf("starting function %s (%s): %w", p.spec.Name, p.spec.Argv[0], err)
	}
	r := &run{cmd: cmd, port: port, exited: make(chan struct{})}
	r.output.Add(2)
	pid := cmd.Process.Pid
	go p.logs.read(&r.output, outR, "stdout", pid)
	go p.logs.read(&r.output, errR, "stderr", pid)
	go func() {
		r.err = cmd.Wait()
		close(r.exited)
	}()
	return r, nil
}

// env is the child's environment: the base, the user's, then the
// contract's variables, each name once, the last value winning.
func (p *process) env(port int) []string {
	env := append([]string(nil), p.spec.Env...)
	keys := make([]string, 0, len(p.spec.UserEnv))
	for k := range p.spec.UserEnv {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+p.spec.UserEnv[k])
	}
	env = append(env,
		"PORT="+strconv.Itoa(port),
		"FUNCTION_NAME="+p.spec.Name,
		"FUNCTION_TIMEOUT="+p.spec.Timeout.String(),
		"FERRY_LISTEN_FD=3",
	)
	if p.spec.Memory != "" {
		env = append(env, "FUNCTION_MEMORY="+p.spec.Memory)
	}
	return dedupEnv(env)
}

// dedupEnv keeps the last value of each name, at the place of its first.
func dedupEnv(env []string) []string {
	last := make(map[string]string, len(env))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		last[k] = kv
	}
	out := make([]string, 0, len(last))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if v, ok := last[k]; ok {
			out = append(out, v)
			delete(last, k)
		}
	}
	return out
}

// waitHealthy probes GET /healthz until it answers 200, the child exits,
// StartTimeout passes or ctx ends.
func (p *process) waitHealthy(ctx context.Context, r *run) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	deadline := time.NewTimer(p.spec.StartTimeout)
	defer deadline.Stop()
	// why: no keep-alive, so no idle connection to a child that is about
	// to be replaced or killed is left behind.
	client := &http.Client{
		Timeout:   healthProbeTimeout,
		Transport: &http.Transport{DisableKeepAlives: true},
		// why: a redirect is not healthy, and following it would probe,
		// from the host, whatever URL the function names.
		CheckRedirect: noRedirects,
	}
	url := "http://127.0.0.1:" + strconv.Itoa(r.port) + "/healthz"
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if resp, err := client.Do(req); err == nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		t := time.NewTimer(healthPoll)
		select {
		case <-t.C:
			continue
		case <-r.exited:
			err = fmt.Errorf("function %s %s before it was healthy", p.spec.Name, exitReason(r.err))
		case <-deadline.C:
			err = fmt.Errorf("function %s was not healthy within %s (GET /healthz on port %d did not answer 200): check that it serves $PORT", p.spec.Name, p.spec.StartTimeout, r.port)
		case <-ctx.Done():
			err = fmt.Errorf("function %s was not healthy yet: %w", p.spec.Name, ctx.Err())
		}
		t.Stop()
		return err
	}
}

// terminate stops r: SIGTERM to its group, SIGKILL after StopGrace (or at
// once when a Stop's ctx ended), then waits for the group to be gone.
func (p *process) terminate(r *run) {
	pid := r.cmd.Process.Pid
	if p.spec.Sandbox.Enabled() {
		// why: bubblewrap does not pass SIGTERM on, and its death kills
		// the function at once; the function itself must hear it to
		// finish its calls.
		signalSandboxed(pid, syscall.SIGTERM)
	} else {
		killGroup(pid, syscall.SIGTERM)
	}
	t := time.NewTimer(p.spec.StopGrace)
	select {
	case <-r.exited:
		t.Stop()
		p.logs.add("ferry", 0, fmt.Sprintf("function %s stopped: %s", p.spec.Name, exitReason(r.err)))
	case <-t.C:
		p.logs.add("ferry", 0, fmt.Sprintf("function %s did not exit within %s of SIGTERM: killing it", p.spec.Name, p.spec.StopGrace))
	case <-p.kill:
		t.Stop()
		p.logs.add("ferry", 0, fmt.Sprintf("function %s killed (SIGKILL): %s", p.spec.Name, killReason(p.killWhy)))
	}
	killGroup(pid, syscall.SIGKILL)
	<-r.exited
	p.reap(r)
}

// killReason says why a stop did not wait for the function to exit: the
// cause its caller gave (a process replaced, with only calls past their
// timeout on it), or else that the caller stopped waiting.
func killReason(cause error) string {
	if cause == nil || errors.Is(cause, context.Canceled) || errors.Is(cause, context.DeadlineExceeded) {
		return "its stop was not waited for any longer"
	}
	return cause.Error()
}

// reap kills what is left of an exited run's group (children it started)
// and waits, bounded, for its output to be logged and its group to be gone.
func (p *process) reap(r *run) {
	pid := r.cmd.Process.Pid
	killGroup(pid, syscall.SIGKILL)
	drained := make(chan struct{})
	go func() {
		r.output.Wait()
		close(drained)
	}()
	t := time.NewTimer(drainTimeout)
	defer t.Stop()
	select {
	case <-drained:
	case <-t.C:
		p.logs.add("ferry", 0, fmt.Sprintf("function %s: a process outside its group still holds its output", p.spec.Name))
	}
	if !waitGroupGone(pid, groupGoneTimeout) {
		p.logs.add("ferry", 0, fmt.Sprintf("function %s: processes of group %d are still alive after SIGKILL", p.spec.Name, pid))
	}
}

// killGroup signals every process of the group pgid; a group already gone
// is no error.
func killGroup(pgid int, sig syscall.Signal) {
	_ = syscall.Kill(-pgid, sig)
}

// signalSandboxed signals the processes of the group pgid that bubblewrap
// runs: all but bubblewrap itself (pgid) and its init inside the pid
// namespace (pgid's child).
func signalSandboxed(pgid int, sig syscall.Signal) {
	for _, pr := range groupProcesses(pgid) {
		if pr.pid != pgid && pr.ppid != pgid {
			_ = syscall.Kill(pr.pid, sig)
		}
	}
}

// waitGroupGone waits until no process of the group pgid is alive. A
// killed process stays a zombie until its parent reaps it; one whose
// parent died is reaped by init, which on some machines takes seconds, so
// zombies count as gone.
func waitGroupGone(pgid int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if !groupAlive(pgid) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// groupAlive reports whether a process of the group pgid is alive (not a
// zombie). Where /proc cannot tell, any process of the group counts.
func groupAlive(pgid int) bool {
	if err := syscall.Kill(-pgid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		return true
	}
	for _, pr := range groupProcesses(pgid) {
		if pr.state != "Z" && pr.state != "X" {
			return true
		}
	}
	return false
}

// groupProcess is a process as /proc/PID/stat shows it.
type groupProcess struct {
	pid, ppid int
	state     string
}

// groupProcesses lists the processes of the group pgid.
func groupProcesses(pgid int) []groupProcess {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []groupProcess
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		// why: the command name in parentheses may hold spaces; the fields
		// after its last ")" are: state, ppid, pgrp, ...
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) >= 3 && f[2] == strconv.Itoa(pgid) {
			ppid, _ := strconv.Atoi(f[1])
			out = append(out, groupProcess{pid: pid, ppid: ppid, state: f[0]})
		}
	}
	return out
}

// exitReason says how a child's Wait ended, for logs and errors.
func exitReason(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return "was killed by " + ws.Signal().String()
		}
		return "exited with status " + strconv.Itoa(ee.ExitCode())
	}
	if err != nil {
		return "ended: " + err.Error()
	}
	return "exited with status 0"
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func formatLines(lines []logLine) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(formatLogLine(l))
	}
	return b.String()
}

// formatLogLine is a line as the log file holds it.
func formatLogLine(l logLine) string {
	return l.Time.Format("2006-01-02T15:04:05.000000Z07:00") + " " + l.Stream + " " + l.Text + "\n"
}

// logSink keeps a process's recent lines in a ring, for the error of a
// failed start, and passes every line on to the function's log.
type logSink struct {
	out *FunctionLog
	own bool // out is this process's alone: its file closes with it
	// redact hides the process's secrets in each line (nil: none).
	redact *strings.Replacer

	mu   sync.Mutex
	ring [logRingLines]logLine
	next int // where the next line goes
	n    int // lines held
}

func (s *logSink) add(stream string, pid int, text string) {
	// why: a function that fails on a secret says it (Python's "invalid
	// literal for int(): 'VALUE'", a driver's DSN in its error); its log is
	// served to viewers, written to a file and quoted by a failed start's
	// message, which ends up in the store, the API and ferry's own log.
	if s.redact != nil {
		text = s.redact.Replace(text)
	}
	l := logLine{Time: time.Now(), Stream: stream, Text: text}
	s.mu.Lock()
	s.ring[s.next] = l
	s.next = (s.next + 1) % logRingLines
	s.n = min(s.n+1, logRingLines)
	s.mu.Unlock()
	s.out.Add(stream, pid, text)
}

// last returns the last n lines held, all when n <= 0, oldest first.
func (s *logSink) last(n int) []logLine {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n <= 0 || n > s.n {
		n = s.n
	}
	out := make([]logLine, n)
	for i := range n {
		out[i] = s.ring[(s.next-n+i+logRingLines)%logRingLines]
	}
	return out
}

// close closes the file of a log that is this process's alone.
func (s *logSink) close() {
	if s.own {
		s.out.close()
	}
}

// read logs r line by line as stream until EOF, each line cut at
// maxLogLine, then closes r.
func (s *logSink) read(wg *sync.WaitGroup, r *os.File, stream string, pid int) {
	defer wg.Done()
	defer r.Close()
	br := bufio.NewReaderSize(r, maxLogLine)
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			s.add(stream, pid, string(line)+truncatedMark)
			// why: drop the rest of the long line, not log it as more lines.
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			if err != nil {
				return
			}
			continue
		}
		if len(line) > 0 {
			line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
			s.add(stream, pid, string(line))
		}
		if err != nil {
			return
		}
	}
}
