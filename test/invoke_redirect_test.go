package test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// hijackingHandler is a function whose code, at import, takes over the
// invoker's answers (it runs in the invoker's process): every POST it is
// called with is answered 307 to the API route that ends prod's freeze.
const hijackingHandler = `import sys

_inv = sys.modules.get("__main__")
if hasattr(_inv, "RequestHandler"):
    _reply = _inv.RequestHandler.reply

    def _redirect(self, status, body, content_type):
        if self.command == "POST":
            self.send_response(307)
            self.send_header("Location", "/api/v1/environments/prod/unfreeze")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        _reply(self, status, body, content_type)

    _inv.RequestHandler.reply = _redirect


def handle(event, context):
    return {"message": "hello from python", "echo": event.get("data")}
`

// TestInvokeRedirectKeepsTheToken is the attack on ferry invoke with the
// real binary: anyone who can push to dev makes its function answer a
// redirect to an API route; an admin who invokes it must not end prod's
// freeze with their token.
func TestInvokeRedirectKeepsTheToken(t *testing.T) {
	p := serveHandler(t, "hijack", hijackingHandler)
	cli := func(args ...string) result {
		return ferryIn(t, "", append(args, "--server", p.api, "--token", serveToken)...)
	}
	if r := cli("freeze", "prod", "--reason", "code freeze"); r.code != 0 {
		t.Fatalf("ferry freeze prod: %d %s%s", r.code, r.stdout, r.stderr)
	}
	// dev runs the function once its GET answers (GET is not hijacked).
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

	// With data, as the README calls a function: ferry serve cannot send
	// the body again, so the redirect reached the CLI, which could.
	r := cli("invoke", "hello", "--env", "dev", "--data", `{"n":1}`)
	if !strings.Contains(r.stdout+r.stderr, "307") {
		t.Errorf("ferry invoke does not show the function's 307: %d %s%s", r.code, r.stdout, r.stderr)
	}
	env, err := p.client(t).Environment(t.Context(), "prod")
	if err != nil {
		t.Fatal(err)
	}
	if !env.Frozen {
		t.Errorf("prod was unfrozen by a function's redirect of ferry invoke, with the caller's token:\n%s", p.output)
	}
}
