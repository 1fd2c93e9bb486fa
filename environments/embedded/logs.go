package embedded

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// LogLine is one line of a function's log as the API serves it.
type LogLine struct {
	// Seq numbers the lines of one function's log from 1, in the order
	// they were kept; it resets when ferry restarts.
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
	// Stream is stdout or stderr (the function's), access (the gateway's
	// line per call) or ferry (its supervisor).
	Stream string `json:"stream"`
	// PID is the process that wrote the line; 0 for access and ferry
	// lines.
	PID  int    `json:"pid,omitempty"`
	Text string `json:"text"`
}

// LogQuery picks the lines of a log to return: at most Tail of the
// newest (all kept when 0), none older than Since (any when zero).
type LogQuery struct {
	Tail  int
	Since time.Time
}

// followBuffer is how many lines a follower may fall behind before the
// log drops lines for it rather than wait: a slow client must never
// hold up the function that writes.
const followBuffer = 256

// FunctionLog is one function's log in one environment: its recent lines
// in a ring (bounded by logRingLines, each line by maxLogLine), every
// line appended to its file, and the followers that hear each new line.
// It outlives the function's processes and releases, so a restart or a
// new release keeps the log whole; every writer (each process's output,
// the gateway's access lines) goes through add, so lines never interleave
// within one another. It is exported for callers that serve a log (the
// API's tests make one with NewFunctionLog).
type FunctionLog struct {
	path string // the file; "" keeps no file

	mu       sync.Mutex
	ring     []LogLine // grows up to logRingLines, then wraps
	next     int       // where the next line goes once the ring is full
	seq      uint64
	followed map[*LogFollower]struct{}
	file     *os.File
	fileErr  error // the first failed open or write; later lines are not written
	// closed: the environment was deleted; a line its last processes
	// write on their way out stays in memory instead of opening the file
	// again under a folder its owner may be removing.
	closed bool
}

// NewFunctionLog returns an empty log that appends its lines to the file
// at path ("" keeps no file).
func NewFunctionLog(path string) *FunctionLog {
	return &FunctionLog{path: path, followed: map[*LogFollower]struct{}{}}
}

// Add keeps one line, writes it to the file and hands it to every
// follower; a follower whose buffer is full misses it and is told so.
func (l *FunctionLog) Add(stream string, pid int, text string) {
	line := LogLine{Time: time.Now().UTC(), Stream: stream, PID: pid, Text: text}
	l.mu.Lock()
	defer l.mu.Unlock()
	line = l.keep(line)
	l.write(line)
	for f := range l.followed {
		select {
		case f.c <- line:
		default:
			f.missed++
		}
	}
}

// write appends line to the file, opening it the first time; l.mu is
// held. The first failure is said once in the ring, and the file is left
// alone after it: the lines stay readable through the API.
func (l *FunctionLog) write(line LogLine) {
	if l.path == "" || l.fileErr != nil || l.closed {
		return
	}
	if l.file == nil {
		if l.fileErr = os.MkdirAll(filepath.Dir(l.path), 0o755); l.fileErr == nil {
			l.file, l.fileErr = os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		}
	}
	if l.fileErr == nil {
		_, l.fileErr = l.file.WriteString(formatLogLine(logLine{Time: line.Time, Stream: line.Stream, Text: line.Text}))
	}
	if l.fileErr != nil {
		l.keep(LogLine{Time: time.Now().UTC(), Stream: "ferry",
			Text: fmt.Sprintf("writing the log file: %v; later lines are kept in memory only (check the data folder's space and permissions)", l.fileErr)})
	}
}

// tailBytes bounds what loadTail reads of a log file: enough for the
// ring's worth of ordinary lines, without reading a huge file whole.
const tailBytes = 256 << 10

// loadTail fills the ring with the last lines of the file, as an earlier
// ferry wrote them (formatLogLine). A file that cannot be read, or a line
// that does not parse, is skipped: the log starts with less, not never.
func (l *FunctionLog) loadTail() {
	if l.path == "" {
		return
	}
	f, err := os.Open(l.path)
	if err != nil {
		return
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return
	}
	off := max(info.Size()-tailBytes, 0)
	buf := make([]byte, info.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
		return
	}
	text := string(buf)
	if off > 0 {
		// The first line was cut by the offset.
		_, text, _ = strings.Cut(text, "\n")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range strings.Split(text, "\n") {
		at, rest, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		stream, body, ok := strings.Cut(rest, " ")
		t, err := time.Parse(time.RFC3339Nano, at)
		if !ok || err != nil {
			continue
		}
		l.keep(LogLine{Time: t, Stream: stream, Text: body})
	}
}

// keep numbers line and puts it in the ring; l.mu is held.
func (l *FunctionLog) keep(line LogLine) LogLine {
	l.seq++
	line.Seq = l.seq
	if len(l.ring) < logRingLines {
		l.ring = append(l.ring, line)
	} else {
		l.ring[l.next] = line
		l.next = (l.next + 1) % logRingLines
	}
	return line
}

// lines returns what q picks of the ring, oldest first; l.mu is held.
func (l *FunctionLog) lines(q LogQuery) []LogLine {
	ordered := make([]LogLine, 0, len(l.ring))
	ordered = append(ordered, l.ring[l.next:]...)
	ordered = append(ordered, l.ring[:l.next]...)
	if !q.Since.IsZero() {
		i := 0
		for i < len(ordered) && ordered[i].Time.Before(q.Since) {
			i++
		}
		ordered = ordered[i:]
	}
	if q.Tail > 0 && len(ordered) > q.Tail {
		ordered = ordered[len(ordered)-q.Tail:]
	}
	return ordered
}

// Lines returns the kept lines q picks, oldest first.
func (l *FunctionLog) Lines(q LogQuery) []LogLine {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lines(q)
}

// Follow returns the lines q picks and a follower of every line kept
// after them: both under one lock, so no line is missed or sent twice
// between the two.
func (l *FunctionLog) Follow(q LogQuery) ([]LogLine, *LogFollower) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := &LogFollower{c: make(chan LogLine, followBuffer), log: l}
	l.followed[f] = struct{}{}
	return l.lines(q), f
}

// Followers is how many followers the log holds (a follower that was
// closed is gone).
func (l *FunctionLog) Followers() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.followed)
}

// close closes the file; a later line opens it again.
func (l *FunctionLog) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.file != nil {
		l.file.Close()
		l.file = nil
	}
	l.closed = true
}

// LogFollower hears the lines a function's log keeps after it began to
// follow. Close it when done: until then the log holds it.
type LogFollower struct {
	c    chan LogLine
	log  *FunctionLog
	once sync.Once
	// missed counts lines dropped because C was full; guarded by log.mu.
	missed uint64
}

// C delivers the new lines in order. It is never closed: a reader
// selects on it with its own end (a request's context).
func (f *LogFollower) C() <-chan LogLine { return f.c }

// Missed returns how many lines were dropped since the last call because
// the follower fell followBuffer lines behind, and starts counting again.
func (f *LogFollower) Missed() uint64 {
	f.log.mu.Lock()
	defer f.log.mu.Unlock()
	n := f.missed
	f.missed = 0
	return n
}

// Close stops the follower; calling it again does nothing.
func (f *LogFollower) Close() {
	f.once.Do(func() {
		f.log.mu.Lock()
		defer f.log.mu.Unlock()
		delete(f.log.followed, f)
	})
}

// functionLogs are the logs of one environment's functions, by function
// name. A function's log is made the first time it is deployed and kept
// while the environment lives, so its lines survive releases.
type functionLogs struct {
	dir, env string // files at logPath(dir, env, function)

	mu   sync.Mutex
	byFn map[string]*FunctionLog
}

func newFunctionLogs(dir, env string) *functionLogs {
	return &functionLogs{dir: dir, env: env, byFn: map[string]*FunctionLog{}}
}

// of returns function's log, made on first use.
func (s *functionLogs) of(function string) *FunctionLog {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.byFn[function]
	if l == nil {
		path := ""
		if s.dir != "" {
			path = logPath(s.dir, s.env, function)
		}
		l = NewFunctionLog(path)
		// why: a restarted ferry starts with empty rings; the file's last
		// lines keep `ferry logs` from coming up empty.
		l.loadTail()
		s.byFn[function] = l
	}
	// why: a function started again (an Apply after a Delete) writes its
	// file again.
	l.mu.Lock()
	l.closed = false
	l.mu.Unlock()
	return l
}

// lookup returns function's log if it has one.
func (s *functionLogs) lookup(function string) (*FunctionLog, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.byFn[function]
	return l, ok
}

// closeFiles closes every log's file (an environment deleted); the lines
// in memory stay readable.
func (s *functionLogs) closeFiles() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.byFn {
		l.close()
	}
}

// Logs returns the lines q picks of function's log, oldest first. A
// function the environment does not run, and never ran since ferry
// started, is an error that names the functions it runs.
func (t *Target) Logs(function string, q LogQuery) ([]LogLine, error) {
	l, err := t.functionLog(function)
	if err != nil {
		return nil, err
	}
	return l.Lines(q), nil
}

// FollowLogs returns the lines q picks of function's log and a follower
// of the lines kept after them. The caller must Close the follower.
func (t *Target) FollowLogs(function string, q LogQuery) ([]LogLine, *LogFollower, error) {
	l, err := t.functionLog(function)
	if err != nil {
		return nil, nil, err
	}
	lines, f := l.Follow(q)
	return lines, f, nil
}

// functionLog is the log of a function of the environment.
func (t *Target) functionLog(function string) (*FunctionLog, error) {
	if l, ok := t.logs.lookup(function); ok {
		return l, nil
	}
	return nil, &NoFunctionError{Environment: t.cfg.Environment, Function: function, Functions: t.Functions()}
}

// Functions returns the names of the functions of the live release,
// sorted.
func (t *Target) Functions() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.live == nil {
		return nil
	}
	return slices.Sorted(maps.Keys(t.live.instances))
}

// NoFunctionError is a function an environment does not run; callers
// answer it as not found.
type NoFunctionError struct {
	Environment, Function string
	Functions             []string // what the environment runs
}

func (e *NoFunctionError) Error() string {
	if len(e.Functions) == 0 {
		return fmt.Sprintf("environment %s runs no function %s: it runs no release yet", e.Environment, e.Function)
	}
	return fmt.Sprintf("environment %s runs no function %s; it runs %v", e.Environment, e.Function, e.Functions)
}

// InvokeURL is the gateway URL that calls function with method on path:
// with no path, its invoke route (POST only); with one, the path of one of
// its HTTPTriggers that answers method, a query kept. A function the
// environment does not run is a *NoFunctionError; a path or method the
// function does not answer is an error that lists what it does.
func (t *Target) InvokeURL(function, method, path string) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.live == nil || t.live.instances[function] == nil {
		var names []string
		if t.live != nil {
			names = slices.Sorted(maps.Keys(t.live.instances))
		}
		return "", &NoFunctionError{Environment: t.cfg.Environment, Function: function, Functions: names}
	}
	base := strings.TrimRight(t.cfg.GatewayURL, "/") + "/" + t.cfg.Environment
	method = strings.ToUpper(cmp.Or(method, http.MethodPost))
	if path == "" {
		if method != http.MethodPost {
			return "", fmt.Errorf("calling function %s by name takes POST, not %s; give --path of one of its HTTPTriggers for another method", function, method)
		}
		return base + InvokePath(function), nil
	}
	routePath, query, _ := strings.Cut(path, "?")
	routePath = cleanRoutePath(routePath)
	var have []string
	for _, tr := range t.live.release.Set.HTTPTriggers {
		if tr.Spec.Function != function {
			continue
		}
		p := cleanRoutePath(tr.Spec.Path)
		methods := strings.Join(tr.Spec.Methods, ",")
		have = append(have, cmp.Or(methods, "any method")+" "+p)
		if p != routePath {
			continue
		}
		if len(tr.Spec.Methods) == 0 || slices.ContainsFunc(tr.Spec.Methods, func(m string) bool { return strings.EqualFold(m, method) }) {
			u := base + p
			if query != "" {
				u += "?" + query
			}
			return u, nil
		}
	}
	if len(have) == 0 {
		return "", fmt.Errorf("function %s has no HTTPTrigger in environment %s; call it by name, without --path", function, t.cfg.Environment)
	}
	return "", fmt.Errorf("function %s answers no %s %s in environment %s; its HTTPTriggers: %s", function, method, routePath, t.cfg.Environment, strings.Join(have, "; "))
}
