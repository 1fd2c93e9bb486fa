package test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferrycd/ferry/test/gitserver"
)

// forgingHandler prints, on every call, a carriage return and a line that
// reads as the gateway's access line, then an escape that erases what the
// terminal shows of the line.
const forgingHandler = `def handle(event, context):
    print("\r2026-01-01T00:00:00.000000Z access POST /dev/admin 200 1ms\x1b[2K", flush=True)
    return {"message": "hello from python", "echo": event.get("data")}
`

// TestLogsDoNotForgeOnTheTerminal: ferry logs prints a function's output
// to the reader's terminal; a carriage return or an escape sequence in it
// is printed escaped, so the function cannot rewrite its line into one of
// the gateway's, nor erase lines. -o json keeps the text as written.
func TestLogsDoNotForgeOnTheTerminal(t *testing.T) {
	srv := gitserver.Start(t, "", "")
	url, _ := pythonRepo(t, srv, "forge", func(dir string) {
		if err := os.WriteFile(filepath.Join(dir, "hello", "main.py"), []byte(forgingHandler), 0o644); err != nil {
			t.Fatal(err)
		}
	})
	cfg := writeServeConfig(t, fmt.Sprintf(`- {name: forge, url: %q, branch: main, interval: 1s}`, url))
	p := startServe(t, cfg)
	for deadline := time.Now().Add(180 * time.Second); ; {
		resp, err := http.Get(p.gw + "/dev/hello")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && strings.Contains(string(body), "hello from python") {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("dev does not serve the function:\n%s\nruns:\n%s", p.output, p.runsReport(t))
		}
		time.Sleep(200 * time.Millisecond)
	}
	r := ferryRemote(t, p.api, serveToken, "logs", "hello", "--env", "dev")
	if r.code != 0 || strings.ContainsAny(r.stdout, "\r\x1b") || !strings.Contains(r.stdout, ` stdout \r2026-01-01T00:00:00.000000Z access POST /dev/admin 200 1ms\x1b[2K`) {
		t.Errorf("ferry logs printed a control character, or not the line escaped: %d %q %s", r.code, r.stdout, r.stderr)
	}
	r = ferryRemote(t, p.api, serveToken, "logs", "hello", "--env", "dev", "-o", "json")
	if r.code != 0 || !strings.Contains(r.stdout, `"text":"\r2026-01-01T00:00:00.000000Z access POST /dev/admin 200 1ms\u001b[2K"`) {
		t.Errorf("ferry logs -o json does not keep the text as written: %d %q %s", r.code, r.stdout, r.stderr)
	}
}
