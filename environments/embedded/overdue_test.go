package embedded

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// hangHandlers are functions whose handler, on the data "hang", never
// answers within the test (ten minutes, deaf to any deadline), and
// otherwise answers "ok".
var hangHandlers = map[string]map[string][]byte{
	"python": {"main.py": []byte(`import time

def handle(event, context):
    if event["data"] == "hang":
        time.sleep(600)
    return "ok"
`)},
	"nodejs": {"index.js": []byte(`exports.handler = async (event) => {
  if (event.data === "hang") await new Promise((resolve) => setTimeout(resolve, 600000));
  return "ok";
};
`)},
}

// TestOverdueStorms sends storms of calls whose handler hangs far past
// its timeout to real Python and Node.js invokers behind the gateway.
// Every caller sees 504 (or 429 while the function's slots are held),
// never a 500; the slots in use never exceed the function's concurrency;
// the process's threads stay bounded; the function is restarted with
// the reason in its log and ferry's; after the storms it answers.
func TestOverdueStorms(t *testing.T) {
	t.Parallel()
	for runtime, files := range hangHandlers {
		t.Run(runtime, func(t *testing.T) {
			t.Parallel()
			testOverdueStorms(t, runtime, files)
		})
	}
}

func testOverdueStorms(t *testing.T, runtime string, files map[string][]byte) {
	const (
		concurrency = 8
		timeout     = 200 * time.Millisecond
	)
	root, argv, env := interpretedRoot(t, runtime, "", files)
	spec := testSpec(t, root, argv, env)
	spec.Name = "hang"
	spec.Timeout = timeout
	logFile := filepath.Join(t.TempDir(), "hang.log")
	spec.Log = NewFunctionLog(logFile)
	var ferryLog struct {
		sync.Mutex
		lines []string
	}
	in := &instance{key: "hang", name: "hang", spec: spec, timeout: timeout, idleFor: time.Hour,
		concurrency: concurrency, env: "dev", logf: func(format string, args ...any) {
			ferryLog.Lock()
			defer ferryLog.Unlock()
			ferryLog.lines = append(ferryLog.lines, fmt.Sprintf(format, args...))
		}}
	startInstance(t, in)
	g := newGateway()
	t.Cleanup(g.pool.closeAll)
	g.setRoutes("dev", []gatewayRoute{{Path: "/hang", Function: "hang", Timeout: timeout, MaxInFlight: concurrency, Backend: in}})
	url := serveGateway(t, g)
	st := g.stats["dev"]["hang"]

	stormOverdue(t, in, st, url+"/dev/hang", concurrency, `"ok"`)
	want := fmt.Sprintf("function hang restarted: %d calls still running past their %s timeout (concurrency %d)", concurrency, timeout, concurrency)
	ferryLog.Lock()
	said := strings.Join(ferryLog.lines, "\n")
	ferryLog.Unlock()
	if !strings.Contains(said, "environment dev: "+want) {
		t.Errorf("ferry's log does not say %q; it has:\n%s", want, said)
	}
	b, err := os.ReadFile(logFile)
	if err != nil || !strings.Contains(string(b), "ferry "+want) {
		t.Errorf("the function's log does not say %q (%v)", want, err)
	}
	// The replaced process's kill is said once, with its reason.
	const killed = " ferry function hang killed (SIGKILL): a newer process replaced it and only calls past their timeout are left on it ("
	kills := 0
	for line := range strings.Lines(string(b)) {
		if strings.Contains(line, " ferry ") && strings.Contains(line, "kill") {
			if !strings.Contains(line, killed) {
				t.Errorf("the function's log says a kill other than %q: %s", killed, line)
			}
			kills++
		}
	}
	if kills == 0 {
		t.Errorf("the function's log does not say %q:\n%s", killed, b)
	}
}

// hangingGo is the Go example's handler made to hang on the data "hang",
// deaf to its context's deadline, as a handler stuck in a call without
// one would be.
const hangingGo = `package hello

import (
	"context"
	"encoding/json"
	"time"
)

// Handle sleeps ten minutes on "hang", and greets otherwise.
func Handle(ctx context.Context, data json.RawMessage) (any, error) {
	if string(data) == ` + "`\"hang\"`" + ` {
		time.Sleep(10 * time.Minute)
	}
	return "ok", nil
}
`

// TestTargetOverdueGo runs the storms against a Go function applied by a
// Target, so the routes' concurrency and ferry's log are the target's own.
func TestTargetOverdueGo(t *testing.T) {
	t.Parallel()
	const concurrency = 4
	r := newReleaser(t, "go")
	r.write("hello/hello.go", hangingGo)
	os.Remove(filepath.Join(r.dir, "hello", "hello_test.go"))
	manifest, err := os.ReadFile(filepath.Join(r.dir, "ferry.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	r.write("ferry.yaml", strings.NewReplacer("timeout: 10s", "timeout: 200ms",
		"scale: {min: 0, max: 5}", "scale: {min: 1, max: 1, concurrency: 4}").Replace(string(manifest)))

	imgs, err := newImages(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	gw := newGateway()
	srv := httptest.NewServer(gw)
	t.Cleanup(srv.Close)
	var ferryLog struct {
		sync.Mutex
		lines []string
	}
	tg, err := New(Config{Environment: "dev", Images: imgs, Gateway: gw, GatewayURL: srv.URL, LogDir: t.TempDir(),
		Log: func(format string, args ...any) {
			ferryLog.Lock()
			defer ferryLog.Unlock()
			ferryLog.lines = append(ferryLog.lines, fmt.Sprintf(format, args...))
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tg.Delete(context.Background()) })
	if err := tg.Apply(t.Context(), r.release()); err != nil {
		t.Fatal(err)
	}
	url, err := tg.URL("hello")
	if err != nil {
		t.Fatal(err)
	}
	tg.mu.Lock()
	in := tg.live.instances["hello"]
	tg.mu.Unlock()
	gw.mu.Lock()
	st := gw.stats["dev"]["hello"]
	gw.mu.Unlock()

	// The invoke route shares the function's slots, and its limit.
	if rt := gw.table.Load().envs["dev"].paths[InvokePath("hello")].byMethod[http.MethodPost]; rt.MaxInFlight != concurrency {
		t.Errorf("the invoke route allows %d calls at once, want the concurrency %d", rt.MaxInFlight, concurrency)
	}

	stormOverdue(t, in, st, url, concurrency, `"ok"`)
	want := "environment dev: function hello restarted: 4 calls still running past their 200ms timeout (concurrency 4)"
	ferryLog.Lock()
	said := strings.Join(ferryLog.lines, "\n")
	ferryLog.Unlock()
	if !strings.Contains(said, want) {
		t.Errorf("ferry's log does not say %q; it has:\n%s", want, said)
	}
	status, err := tg.Status(t.Context())
	if err != nil || len(status.Functions) != 1 || status.Functions[0].Restarts == 0 {
		t.Errorf("status does not count the restarts: %+v %v", status, err)
	}
}

// startInstance starts in's process and stops it when the test ends.
func startInstance(t *testing.T, in *instance) {
	t.Helper()
	if err := in.start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := in.stop(ctx); err != nil {
			t.Error(err)
		}
	})
}

// stormOverdue sends storms of calls that hang past their timeout to url,
// the gateway's route to in: every call is answered 504, or 429 while
// the slots are held; the slots in use never exceed concurrency; the
// process's threads stay few; the function is restarted; and after the
// storms a call answers 200 with ok.
func stormOverdue(t *testing.T, in *instance, st *routeStats, url string, concurrency int, ok string) {
	t.Helper()
	const (
		storms   = 5
		timeouts = 3 // 504s each caller waits for in a storm
	)
	callers := 2 * concurrency // at once in each storm
	// A watcher samples the slots and the process's threads while the
	// storms run.
	var maxSlots, maxThreads atomic.Int64
	stopWatch := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stopWatch:
				return
			case <-time.After(5 * time.Millisecond):
			}
			in.mu.Lock()
			slots := int64(in.inFlight)
			pid := 0
			if in.proc != nil {
				pid = in.proc.State().PID
			}
			in.mu.Unlock()
			raise(&maxSlots, max(slots, st.inFlight.Load()))
			if pid != 0 {
				if tasks, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task"); err == nil {
					raise(&maxThreads, int64(len(tasks)))
				}
			}
		}
	}()

	var codes sync.Map // status code → *atomic.Int64
	count := func(code int) {
		n, _ := codes.LoadOrStore(code, new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
	}
	for range storms {
		var wg sync.WaitGroup
		for range callers {
			wg.Go(func() {
				// why: the bound on calls only catches a function that never
				// times out a call again.
				for seen, calls := 0, 0; seen < timeouts && calls < 10000; calls++ {
					code, body, err := post(url, `"hang"`)
					if err != nil {
						t.Error(err)
						return
					}
					count(code)
					switch code {
					case http.StatusGatewayTimeout:
						seen++
					case http.StatusTooManyRequests:
						time.Sleep(10 * time.Millisecond) // pacing, as Retry-After asks
					default:
						t.Errorf("a hanging call answered %d %s, want 504 (or 429 while its slots are held)", code, body)
					}
				}
			})
		}
		wg.Wait()
	}
	close(stopWatch)
	<-watched

	got := map[int]int64{}
	total := int64(0)
	codes.Range(func(k, v any) bool {
		got[k.(int)] = v.(*atomic.Int64).Load()
		total += got[k.(int)]
		return true
	})
	t.Logf("%d calls answered %v; at most %d slots and %d threads in use; %d restarts",
		total, got, maxSlots.Load(), maxThreads.Load(), st.restarts.Load())
	if want := int64(storms * callers * timeouts); got[http.StatusGatewayTimeout] != want {
		t.Errorf("%d calls answered 504, want %d", got[http.StatusGatewayTimeout], want)
	}
	if n := maxSlots.Load(); n > int64(concurrency) {
		t.Errorf("%d slots were in use at once, more than the concurrency %d", n, concurrency)
	}
	// why: each call holds at most two threads (the connection's and, in
	// Python, the handler's); the rest is the runtime's own, about a dozen
	// in Node.js. The storms ran hundreds of hanging calls.
	if n := maxThreads.Load(); n > int64(2*concurrency+20) {
		t.Errorf("the function ran %d threads at once", n)
	}
	if st.restarts.Load() == 0 {
		t.Error("the function was never restarted")
	}
	// After the storms the function answers: at once, or once a restart
	// the last storm caused has freed its slots.
	var last string
	waitFor(t, time.Minute, "the function did not answer after the storms", func() bool {
		code, body, err := post(url, `"hello"`)
		last = fmt.Sprintf("%d %s %v", code, body, err)
		if code != 200 && code != http.StatusTooManyRequests {
			t.Fatalf("after the storms: %s, want 200 \"ok\"", last)
		}
		return code == 200 && body == ok
	})
	if n := st.inFlight.Load(); n > int64(concurrency) {
		t.Errorf("%d slots in use after the storms", n)
	}
}

// post sends data as JSON to url, for use off the test's goroutine.
func post(url, data string) (int, string, error) {
	resp, err := http.Post(url, "application/json", strings.NewReader(data))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// raise sets m to v when v is larger.
func raise(m *atomic.Int64, v int64) {
	for {
		old := m.Load()
		if v <= old || m.CompareAndSwap(old, v) {
			return
		}
	}
}
