package embedded

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrycd/ferry/build"
	"github.com/ferrycd/ferry/manifests"
	"github.com/ferrycd/ferry/test/testreg"
)

// releaser builds a copy of an example into releases in a real registry.
type releaser struct {
	t       *testing.T
	dir     string
	builder build.Builder
}

func newReleaser(t *testing.T, example string) *releaser {
	t.Helper()
	reg := testreg.Embedded(t, "").Addr
	b, err := build.New(reg+"/target", build.WithCacheDir(t.TempDir()), build.WithBase("python", build.Scratch), build.WithBase("nodejs", build.Scratch))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(filepath.Join("..", "..", "examples", example))); err != nil {
		t.Fatal(err)
	}
	return &releaser{t: t, dir: dir, builder: b}
}

// release builds the copy as it is now.
func (r *releaser) release() *build.Release {
	r.t.Helper()
	set, err := manifests.Load(context.Background(), os.DirFS(r.dir))
	if err != nil {
		r.t.Fatal(err)
	}
	res, err := r.builder.Release(context.Background(), os.DirFS(r.dir), set, build.Info{})
	if err != nil {
		r.t.Fatal(err)
	}
	return res.Release
}

func (r *releaser) write(rel, content string) {
	r.t.Helper()
	if err := os.WriteFile(filepath.Join(r.dir, rel), []byte(content), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

// newTestTarget returns a target for environment "local" behind a real
// gateway listener.
func newTestTarget(t *testing.T) (*Target, string) {
	t.Helper()
	imgs, err := newImages(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	gw := newGateway()
	srv := httptest.NewServer(gw)
	t.Cleanup(srv.Close)
	tg, err := New(Config{Environment: "local", Images: imgs, Gateway: gw, GatewayURL: srv.URL, LogDir: t.TempDir(), WarmFor: time.Minute, IdleAfter: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tg.Delete(context.Background()) })
	return tg, srv.URL
}

// message calls GET url and returns the "message" of the JSON answer.
func message(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var out struct{ Message string }
	_ = json.Unmarshal(body, &out)
	return resp.StatusCode, out.Message
}

func pid(t *testing.T, tg *Target, fn string) int {
	t.Helper()
	tg.mu.Lock()
	defer tg.mu.Unlock()
	in := tg.live.instances[fn]
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.proc == nil {
		return 0
	}
	return in.proc.State().PID
}

// TestTargetApply walks an environment through what a user does: deploy,
// deploy again, deploy an edit under load, deploy a broken release, roll
// back, delete.
func TestTargetApply(t *testing.T) {
	r := newReleaser(t, "python")
	tg, gwURL := newTestTarget(t)
	ctx := context.Background()

	rel1 := r.release()
	if err := tg.Apply(ctx, rel1); err != nil {
		t.Fatal(err)
	}
	url, err := tg.URL("hello")
	if err != nil || url != gwURL+"/local/hello" {
		t.Fatalf("URL = %q, %v", url, err)
	}
	if code, msg := message(t, url); code != 200 || msg != "hello from python" {
		t.Fatalf("first release: %d %q", code, msg)
	}
	st, err := tg.Status(ctx)
	if err != nil || st.Release != rel1.Digest.String() || len(st.Functions) != 1 || st.Functions[0].State != string(phaseRunning) {
		t.Fatalf("status %+v %v", st, err)
	}
	first := pid(t, tg, "hello")

	// Apply is idempotent: the same release changes nothing.
	if err := tg.Apply(ctx, rel1); err != nil {
		t.Fatal(err)
	}
	if pid(t, tg, "hello") != first {
		t.Fatal("applying the live release again restarted the function")
	}

	// An edit, applied under continuous calls: not one call fails.
	r.write("hello/main.py", "def handle(event, context):\n    return {'message': 'edited'}\n")
	rel2 := r.release()
	var failed, answered atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := http.Get(url)
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
				}
				answered.Add(1)
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	if err := tg.Apply(ctx, rel2); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	close(stop)
	wg.Wait()
	if failed.Load() != 0 || answered.Load() == 0 {
		t.Fatalf("%d of %d calls failed during the switch", failed.Load(), answered.Load())
	}
	if _, msg := message(t, url); msg != "edited" {
		t.Fatalf("after the switch: %q", msg)
	}

	// A release whose function crashes at start is refused; the live one
	// keeps serving, and the error carries the function's log.
	r.write("hello/main.py", "raise RuntimeError('boom at start')\n")
	broken := r.release()
	err = tg.Apply(ctx, broken)
	if err == nil || !strings.Contains(err.Error(), "boom at start") || !strings.Contains(err.Error(), "the previous release keeps serving") {
		t.Fatalf("broken release: %v", err)
	}
	if _, msg := message(t, url); msg != "edited" {
		t.Fatalf("after a failed apply: %q", msg)
	}
	if st, _ := tg.Status(ctx); st.Release != rel2.Digest.String() {
		t.Fatalf("status after a failed apply: %+v", st)
	}

	// Rolling back to the first release takes its warm process back.
	start := time.Now()
	if err := tg.Apply(ctx, rel1); err != nil {
		t.Fatal(err)
	}
	t.Logf("rollback took %v", time.Since(start))
	if pid(t, tg, "hello") != first {
		t.Fatal("the rollback started a new process instead of the warm one")
	}
	if _, msg := message(t, url); msg != "hello from python" {
		t.Fatalf("after the rollback: %q", msg)
	}

	// Delete stops everything and takes the routes away.
	if err := tg.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if code, _ := message(t, url); code != http.StatusNotFound {
		t.Fatalf("after delete: %d", code)
	}
}

// TestTargetGoAndNode: the Go and Node.js examples run too.
func TestTargetGoAndNode(t *testing.T) {
	for _, rt := range []string{"go", "nodejs"} {
		t.Run(rt, func(t *testing.T) {
			r := newReleaser(t, rt)
			tg, _ := newTestTarget(t)
			if err := tg.Apply(context.Background(), r.release()); err != nil {
				t.Fatal(err)
			}
			url, _ := tg.URL("hello")
			if code, msg := message(t, url); code != 200 || msg != "hello from "+rt {
				t.Fatalf("%d %q", code, msg)
			}
		})
	}
}

// TestTargetScaleToZero: a function with scale.min 0 stops when idle and
// starts again on its next call.
func TestTargetScaleToZero(t *testing.T) {
	r := newReleaser(t, "nodejs")
	imgs, err := newImages(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	gw := newGateway()
	srv := httptest.NewServer(gw)
	defer srv.Close()
	tg, err := New(Config{Environment: "dev", Images: imgs, Gateway: gw, GatewayURL: srv.URL, LogDir: t.TempDir(), IdleAfter: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Delete(context.Background())
	if err := tg.Apply(context.Background(), r.release()); err != nil {
		t.Fatal(err)
	}
	url, _ := tg.URL("hello")
	if code, msg := message(t, url); code != 200 || msg != "hello from nodejs" {
		t.Fatalf("%d %q", code, msg)
	}
	deadline := time.Now().Add(30 * time.Second)
	for pid(t, tg, "hello") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the idle function was not stopped")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st, _ := tg.Status(context.Background()); st.Functions[0].State != "idle" {
		t.Fatalf("status %+v", st.Functions)
	}
	if code, msg := message(t, url); code != 200 || msg != "hello from nodejs" {
		t.Fatalf("cold call: %d %q", code, msg)
	}
	// Idle again after the cold start: it stops again.
	deadline = time.Now().Add(30 * time.Second)
	for pid(t, tg, "hello") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("after a cold start, the idle function was not stopped again")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestTargetCron: a CronTrigger of the release calls its function every
// second, with no HTTP request from anyone.
func TestTargetCron(t *testing.T) {
	r := newReleaser(t, "python")
	if err := os.MkdirAll(filepath.Join(r.dir, ".ferry"), 0o755); err != nil {
		t.Fatal(err)
	}
	r.write(".ferry/cron.yaml", "apiVersion: ferry.dev/v1alpha1\nkind: CronTrigger\nmetadata: {name: tick}\nspec: {function: hello, schedule: \"@every 1s\", data: {n: 1}}\n")
	tg, gwURL := newTestTarget(t)
	if err := tg.Apply(context.Background(), r.release()); err != nil {
		t.Fatal(err)
	}
	tg.mu.Lock()
	in := tg.live.instances["hello"]
	tg.mu.Unlock()
	in.mu.Lock()
	procURL := in.proc.URL()
	in.mu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(procURL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if calls := metricValue(string(body), "function_calls_total"); calls >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cron trigger did not call the function twice in 30 s:\n%s", body)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// A release that renames the trigger drops the old name's series: a
	// name changed at each commit must not pile series up.
	gwMetrics := func() string {
		resp, err := http.Get(gwURL + "/_ferry/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body)
	}
	if m := gwMetrics(); !strings.Contains(m, `trigger="tick"`) {
		t.Fatalf("the gateway's metrics have no series of the trigger tick:\n%s", m)
	}
	r.write(".ferry/cron.yaml", "apiVersion: ferry.dev/v1alpha1\nkind: CronTrigger\nmetadata: {name: tock}\nspec: {function: hello, schedule: \"@every 1s\", data: {n: 2}}\n")
	if err := tg.Apply(context.Background(), r.release()); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		m := gwMetrics()
		if strings.Contains(m, `trigger="tick"`) {
			t.Fatalf("the renamed trigger tick still has series:\n%s", m)
		}
		if metricValue(m, `ferry_trigger_ticks_total{env="local",kind="cron",trigger="tock"}`) >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the trigger tock did not tick in 30 s:\n%s", m)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// metricValue sums the samples of a metric in Prometheus text.
func metricValue(text, name string) float64 {
	var sum float64
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, name+"{") || strings.HasPrefix(line, name+" ") {
			fields := strings.Fields(line)
			var v float64
			if _, err := fmt.Sscan(fields[len(fields)-1], &v); err == nil {
				sum += v
			}
		}
	}
	return sum
}
