package embedded

import (
	"net/http"
	"strings"
	"testing"
)

// Every environment shares the gateway's origin (GATEWAY/<env>/...). A
// preview runs a pull request's code: its answers must not set cookies
// on that origin (prod's session cookie, tossed or overwritten), nor run
// as a page of that origin that reads prod's answers with the visitor's
// cookies. A stage's answers are passed as they are.
func TestGatewayUntrustedAnswersAreSandboxed(t *testing.T) {
	g := newGateway()
	hostile := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Set-Cookie", "session=attacker; Path=/prod")
		w.Header().Add("Set-Cookie", "x=1")
		w.Header().Set("Content-Security-Policy", "default-src *")
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte("<script>fetch('/prod/me')</script>"))
	}
	g.setRoutes("pr-1-app", []gatewayRoute{{Path: "/page", Function: "page", Backend: handlerBackend(t, hostile), Untrusted: true}})
	g.setRoutes("prod", []gatewayRoute{{Path: "/page", Function: "page", Backend: handlerBackend(t, hostile)}})
	url := serveGateway(t, g)

	a := do(t, "GET", url+"/pr-1-app/page", "", nil, nil)
	if a.code != http.StatusOK || !strings.Contains(a.body, "<script>") {
		t.Fatalf("the preview answered %d %q; want its page", a.code, a.body)
	}
	if c := a.header.Values("Set-Cookie"); len(c) != 0 {
		t.Errorf("a preview set cookies on the gateway's origin: %q", c)
	}
	csp := a.header.Values("Content-Security-Policy")
	if len(csp) != 1 || !strings.HasPrefix(csp[0], "sandbox") || strings.Contains(csp[0], "allow-same-origin") {
		t.Errorf("a preview's answer has Content-Security-Policy %q; want one sandbox without allow-same-origin", csp)
	}

	a = do(t, "GET", url+"/prod/page", "", nil, nil)
	if c := a.header.Values("Set-Cookie"); len(c) != 2 || a.header.Get("Content-Security-Policy") != "default-src *" {
		t.Errorf("a stage's answer was changed: cookies %q, CSP %q", c, a.header.Get("Content-Security-Policy"))
	}
}
