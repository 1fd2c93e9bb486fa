package test

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ferrycd/ferry/test/testreg"
)

// TestRunServesAndReloads is the loop: `ferry run examples/python`
// serves GET /local/hello from a freshly built image, and an edit of the
// handler is served, with not one call failing while it switches. How
// soon (the target is two seconds) is BenchmarkRunReload's figure: a test
// bounds the wait only to catch a hang.
func TestRunServesAndReloads(t *testing.T) {
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(filepath.Join(root, "examples", "python"))); err != nil {
		t.Fatal(err)
	}
	addr, dataDir, output := startRun(t, dir)
	url := "http://" + addr + "/local/hello"
	get := func() (int, string) { return greetingOf(url) }
	if code, msg := get(); code != 200 || msg != "hello from python" {
		t.Fatalf("GET /local/hello: %d %q", code, msg)
	}

	var failed, calls atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if code, _ := get(); code != 200 {
					failed.Add(1)
				}
				calls.Add(1)
			}
		}()
	}
	edited := time.Now()
	handler := filepath.Join(dir, "hello", "main.py")
	data, err := os.ReadFile(handler)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(handler, []byte(strings.Replace(string(data), "hello from python", "edited", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	for {
		if _, msg := get(); msg == "edited" {
			break
		}
		if time.Since(edited) > reloadHang {
			close(stop)
			wg.Wait()
			t.Fatalf("the edit was not served within %s:\n%s", reloadHang, output)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("edit served after %v", time.Since(edited))
	close(stop)
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d of %d calls failed while the edit was applied", failed.Load(), calls.Load())
	}

	// ferry invoke calls the function by name; ferry logs prints its log.
	r := ferry(t, "invoke", "hello", "--addr", addr, "--data", `{"n":1}`)
	if r.code != 0 || !strings.Contains(r.stdout, `"message": "edited"`) && !strings.Contains(r.stdout, `"message":"edited"`) || !strings.Contains(r.stdout, `"n"`) {
		t.Fatalf("ferry invoke: %+v", r)
	}
	if r := ferry(t, "invoke", "nobody", "--addr", addr); r.code != 1 || !strings.Contains(r.stderr, "404") {
		t.Fatalf("ferry invoke of an unknown function: %+v", r)
	}
	logs := ferry(t, "logs", "hello", "--data", dataDir)
	if logs.code != 0 || !strings.Contains(logs.stdout, "ferry invoker") {
		t.Fatalf("ferry logs: %+v", logs)
	}
}

// reloadHang bounds the wait for an edit to be served: about a second on
// an idle machine, so only a hang takes this long.
const reloadHang = time.Minute

// greetingOf calls url and returns the status and the answer's message
// (status 0 and the error when the call fails).
func greetingOf(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var out struct{ Message string }
	_ = json.Unmarshal(body, &out)
	return resp.StatusCode, out.Message
}

// startRun starts `ferry run dir` with extra flags on a free port, waits
// until its first release is live, and stops it with SIGINT when the test
// ends. It returns the gateway's address and the data folder.
func startRun(t testing.TB, dir string, extra ...string) (addr, dataDir string, output *testreg.SyncBuffer) {
	t.Helper()
	return startRunOf(t, ferryBin, dir, extra...)
}

// startRunOf is startRun with the ferry binary bin.
func startRunOf(t testing.TB, bin, dir string, extra ...string) (addr, dataDir string, output *testreg.SyncBuffer) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr = l.Addr().String()
	l.Close()
	dataDir = t.TempDir()
	cmd := exec.Command(bin, append([]string{"run", dir, "--addr", addr, "--data", dataDir}, extra...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	output = &testreg.SyncBuffer{}
	live := make(chan struct{}, 8)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			output.Write([]byte(sc.Text() + "\n"))
			if strings.HasPrefix(sc.Text(), "release ") && strings.HasSuffix(sc.Text(), " live") {
				live <- struct{}{}
			}
		}
	}()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
			t.Error("ferry run did not stop on SIGINT")
		}
	})
	select {
	case <-live:
	case <-done:
		t.Fatalf("ferry run exited:\n%s", output)
	case <-time.After(90 * time.Second):
		t.Fatalf("ferry run did not go live:\n%s", output)
	}
	return addr, dataDir, output
}
