package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrycd/ferry/test/gitserver"
)

// deafHandler, asked to "hang", starts a child in a session of its own
// that ignores SIGTERM (marked so the test can find it), and sleeps far
// past its timeout itself; otherwise it greets.
const deafHandler = `import subprocess
import time


def handle(event, context):
    if event.get("data") == "hang":
        subprocess.Popen(["sh", "-c", "trap '' TERM; exec sleep 601"], start_new_session=True)
        time.sleep(600)
    return {"message": "hello from python"}
`

// markedProcesses lists the processes whose command line is that of the
// deaf handler's child, anywhere on the machine.
func markedProcesses(t *testing.T) []string {
	t.Helper()
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if strings.ReplaceAll(string(b), "\x00", " ") == "sleep 601 " {
			// A zombie has no command line, so a match is alive.
			found = append(found, d.Name())
		}
	}
	return found
}

// A function whose timed-out calls leave children that ignore SIGTERM,
// in sessions of their own, outside the function's process group: every
// caller sees 504, never 500; the restart that the overdue calls cause
// leaves none of those children alive, and the function answers again.
func TestTimedOutCallsLeaveNoChildren(t *testing.T) {
	if n := len(markedProcesses(t)); n != 0 {
		t.Fatalf("%d processes look like the test's children before it starts", n)
	}
	const concurrency = 2
	srv := gitserver.Start(t, "", "")
	url, _ := pythonRepo(t, srv, "deaf", func(dir string) {
		os.Remove(filepath.Join(dir, "hello", "test_main.py"))
		manifest := strings.Replace(hangingManifest, "concurrency: 4", fmt.Sprintf("concurrency: %d", concurrency), 1)
		for name, content := range map[string]string{"ferry.yaml": manifest, "hello/main.py": deafHandler} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	})
	p := startServe(t, writeServeConfig(t, fmt.Sprintf(`- {name: deaf, url: %q, branch: main, interval: 1h}`, url)))
	fn := p.gw + "/dev/hello"
	for deadline := time.Now().Add(180 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if code, body, _ := postData(fn, `"hi"`); code == 200 && strings.Contains(body, "hello from python") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dev does not serve the function:\n%s\nruns:\n%s", p.output, p.runsReport(t))
		}
	}
	for round := 1; round <= 2; round++ {
		var wg sync.WaitGroup
		for range concurrency {
			wg.Go(func() {
				if code, body, err := postData(fn, `"hang"`); code != 504 {
					t.Errorf("round %d: a hanging call answered %d %s %v, want 504", round, code, body, err)
				}
			})
		}
		wg.Wait()
		// The restart ends every process of the old instance; bounded
		// only to catch one that never ends.
		deadline := time.Now().Add(60 * time.Second)
		for {
			code, body, _ := postData(fn, `"hi"`)
			left := markedProcesses(t)
			if code == 200 && len(left) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: the function answers %d %s, and %d of its timed-out calls' children are alive (%v)\n%s", round, code, body, len(left), left, p.output)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if n := strings.Count(p.output.String(), "function hello restarted: "); n < 2 {
		t.Errorf("ferry's log says %d restarts, want one each round:\n%s", n, p.output)
	}
}
