package test

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrycd/ferry/test/gitserver"
)

// hangingHandler never answers the data "hang" within the test (it sleeps
// ten minutes, deaf to its timeout), and greets otherwise.
const hangingHandler = `import time


def handle(event, context):
    if event.get("data") == "hang":
        time.sleep(600)
    return {"message": "hello from python"}
`

// hangingManifest gives hello a 300ms timeout and a concurrency of 4.
const hangingManifest = `apiVersion: ferry.dev/v1alpha1
kind: Function
metadata:
  name: hello
spec:
  runtime: python
  handler: main.handle
  source: hello
  timeout: 300ms
  scale: {min: 1, max: 1, concurrency: 4}
---
apiVersion: ferry.dev/v1alpha1
kind: HTTPTrigger
metadata:
  name: hello
spec:
  function: hello
  path: /hello
  methods: [GET, POST]
`

// TestTimedOutCallsStayCounted runs storms of calls whose handler sleeps
// far past its timeout against ferry serve: every caller sees 504 (or 429
// while the function's slots are held by calls still running), never a
// 500; the gateway never has more calls in flight than the concurrency;
// the function's process keeps a bounded number of threads; the function
// is restarted, and ferry's log and ferry logs say why; after the storms
// it answers.
func TestTimedOutCallsStayCounted(t *testing.T) {
	const concurrency = 4
	srv := gitserver.Start(t, "", "")
	url, _ := pythonRepo(t, srv, "overdue", func(dir string) {
		os.Remove(filepath.Join(dir, "hello", "test_main.py"))
		for name, content := range map[string]string{"ferry.yaml": hangingManifest, "hello/main.py": hangingHandler} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	})
	p := startServe(t, writeServeConfig(t, fmt.Sprintf(`- {name: overdue, url: %q, branch: main, interval: 1s}`, url)))
	fn := p.gw + "/dev/hello"
	for deadline := time.Now().Add(180 * time.Second); ; {
		if code, body, _ := postData(fn, `"hi"`); code == 200 && strings.Contains(body, "hello from python") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dev does not serve the function:\n%s\nruns:\n%s", p.output, p.runsReport(t))
		}
		time.Sleep(200 * time.Millisecond)
	}

	// One storm that fills the slots: the function restarts, saying why.
	var wg sync.WaitGroup
	for range concurrency {
		wg.Go(func() {
			if code, body, err := postData(fn, `"hang"`); code != 504 {
				t.Errorf("a hanging call answered %d %s %v, want 504", code, body, err)
			}
		})
	}
	wg.Wait()
	want := fmt.Sprintf("function hello restarted: %d calls still running past their 300ms timeout (concurrency %d)", concurrency, concurrency)
	for deadline := time.Now().Add(60 * time.Second); !strings.Contains(p.output.String(), "environment dev: "+want); {
		if time.Now().After(deadline) {
			t.Fatalf("ferry's log does not say %q:\n%s", want, p.output)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r := ferryRemote(t, p.api, serveToken, "logs", "hello", "--env", "dev"); r.code != 0 || !strings.Contains(r.stdout, " ferry "+want) {
		t.Errorf("ferry logs does not say %q: %d\n%s%s", want, r.code, r.stdout, r.stderr)
	}

	// Storms: the slots and threads are watched meanwhile.
	var maxInFlight, maxThreads atomic.Int64
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if n, ok := gatewayInFlight(p.gw, "dev", "hello"); ok {
				raiseTo(&maxInFlight, n)
			}
			for _, pid := range descendants(p.cmd.Process.Pid, "ferry_invoker.py") {
				if tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid)); err == nil {
					raiseTo(&maxThreads, int64(len(tasks)))
				}
			}
		}
	}()
	const storms, callers, timeouts = 3, 2 * concurrency, 3
	var timedOut, refused atomic.Int64
	for range storms {
		for range callers {
			wg.Go(func() {
				// why: the bound on calls only catches a function that
				// never times out a call again.
				for seen, calls := 0, 0; seen < timeouts && calls < 10000; calls++ {
					code, body, err := postData(fn, `"hang"`)
					switch {
					case code == 504:
						timedOut.Add(1)
						seen++
					case code == 429:
						refused.Add(1)
						time.Sleep(20 * time.Millisecond) // pacing, as Retry-After asks
					default:
						t.Errorf("a hanging call answered %d %s %v, want 504 (or 429 while its slots are held)", code, body, err)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	close(stop)
	<-watched
	t.Logf("%d calls answered 504, %d 429; at most %d in flight, %d threads in the function", timedOut.Load(), refused.Load(), maxInFlight.Load(), maxThreads.Load())
	if want := int64(storms * callers * timeouts); timedOut.Load() != want {
		t.Errorf("%d calls answered 504, want %d", timedOut.Load(), want)
	}
	if n := maxInFlight.Load(); n > concurrency {
		t.Errorf("the gateway had %d calls in flight, more than the concurrency %d", n, concurrency)
	}
	// why: a call holds at most two threads of the Python invoker (its
	// connection's and its handler's), plus the main one.
	if n := maxThreads.Load(); n == 0 || n > 2*concurrency+8 {
		t.Errorf("the function ran %d threads at once (0: none was seen)", n)
	}

	// After the storms it answers, once a restart the last storm caused has
	// freed its slots.
	for deadline := time.Now().Add(60 * time.Second); ; {
		code, body, err := postData(fn, `"hi"`)
		if code == 200 && strings.Contains(body, "hello from python") {
			break
		}
		if code != 429 || time.Now().After(deadline) {
			t.Fatalf("after the storms: %d %s %v, want 200", code, body, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// postData posts data as JSON to url.
func postData(url, data string) (int, string, error) {
	resp, err := http.Post(url, "application/json", strings.NewReader(data))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// gatewayInFlight reads ferry_gateway_in_flight of a function from the
// gateway's metrics.
func gatewayInFlight(gw, env, function string) (int64, bool) {
	resp, err := http.Get(gw + "/_ferry/metrics")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	prefix := fmt.Sprintf(`ferry_gateway_in_flight{env=%q,function=%q} `, env, function)
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), prefix); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// raiseTo sets m to v when v is larger.
func raiseTo(m *atomic.Int64, v int64) {
	for {
		old := m.Load()
		if v <= old || m.CompareAndSwap(old, v) {
			return
		}
	}
}
