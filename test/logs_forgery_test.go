package test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
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
	p := serveHandler(t, "forge", forgingHandler)
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

// crashingHandler dies at import saying an escape sequence that sets the
// terminal's clipboard (OSC 52) and one that clears the screen; the
// deploy step's log quotes the function's last log lines.
const crashingHandler = `raise SystemExit("\x1b]52;c;cm0gLXJmIH4K\x07\x1b[2J boom")


def handle(event, context):
    return {}
`

// TestRunLogsDoNotReachTheTerminalRaw: a failed start's last log lines
// are in the deploy step's log; ferry runs logs prints their escape
// sequences escaped, and no other command prints them raw.
func TestRunLogsDoNotReachTheTerminalRaw(t *testing.T) {
	p := serveHandler(t, "crash", crashingHandler, "hello/test_main.py")
	c := p.client(t)
	var run int64
	for deadline := time.Now().Add(180 * time.Second); run == 0; {
		runs, err := c.Runs(t.Context(), "", 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range runs.Items {
			if r.Status == "failed" {
				run = r.ID
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failed run:\n%s\nruns:\n%s", p.output, p.runsReport(t))
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, args := range [][]string{{"runs", "logs", fmt.Sprint(run)}, {"runs"}, {"runs", fmt.Sprint(run)}, {"status"}} {
		r := ferryRemote(t, p.api, serveToken, args...)
		out := r.stdout + r.stderr
		if strings.ContainsAny(out, "\x1b\x07") {
			t.Errorf("ferry %s printed an escape sequence raw: %q", strings.Join(args, " "), out)
		}
		if len(args) > 1 && args[1] == "logs" && !strings.Contains(out, `SystemExit: \x1b]52;c;cm0gLXJmIH4K\a\x1b[2J boom`) {
			t.Errorf("ferry %s does not show the line, escaped: %q", strings.Join(args, " "), out)
		}
	}
}
