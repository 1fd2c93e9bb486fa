package test

import (
	"fmt"
	"html/template"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/ferrycd/ferry/server"
	"github.com/ferrycd/ferry/test/gitserver"
)

// dashboardPipeline: dev and staging by themselves, prod after one
// approval.
const dashboardPipeline = `---
apiVersion: ferry.dev/v1alpha1
kind: Pipeline
spec:
  stages:
  - {name: dev, auto: true}
  - {name: staging, auto: true}
  - name: prod
    approval: {required: 1}
`

// dashboardTestStep prints a numbered line every 0.3 s for 7.5 s, so a
// browser can watch the run's log grow.
const dashboardTestStep = `command: [python3, -c, "import time\nfor i in range(25):\n  print('test line', i, flush=True)\n  time.sleep(0.3)\n"]`

// TestDashboard drives the dashboard of a real ferry serve in a real
// headless Chromium, as people would: sign in; watch a run's log grow and
// its status change by itself; approve a promotion and see prod change in
// the environments matrix without reloading; roll prod back through the
// confirmation page; and check that a viewer is offered no approve button
// nor rollback link, and that forged posts (no CSRF token, another site's
// form) are refused and change nothing. Every page opened is checked for
// controls and tables without an accessible name; the approval, the
// rollback and the last sign-in use the keyboard only; and at the end
// every page is checked once in Chromium's accessibility tree and at a
// laptop's and a phone's width (dashboard_a11y_test.go). The subtests tell one story over one
// ferry serve, in order. Each saves screenshots in its output folder (go test -artifacts
// -outputdir DIR keeps them). With FERRY_SCREENSHOTS set to a folder, the
// matrix is also saved there as environments.png (make screenshots: the
// README's picture).
func TestDashboard(t *testing.T) {
	t.Parallel()
	srv := gitserver.Start(t, "", "")
	url, work := pythonRepo(t, srv, "shop", func(dir string) {
		p := filepath.Join(dir, "ferry.yaml")
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b = []byte(strings.Replace(string(b), "command: [python3, -m, unittest, -v]", dashboardTestStep, 1))
		b = append(b, dashboardPipeline...)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	})
	cfg := writeServeConfig(t, fmt.Sprintf(`- {name: shop, url: %q, branch: main, interval: 1s}`, url))
	f, err := os.OpenFile(cfg.path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The tokens list ends the file: alice deploys and rolls back, bob
	// approves, vera only looks.
	fmt.Fprintf(f, `- {name: alice, token: %s, roles: [deployer, approver], email: alice@example.com}
- {name: bob, token: %s, roles: [approver]}
- {name: vera, token: %s, roles: [viewer]}
`, aliceToken, bobToken, viewerToken)
	f.Close()
	p := startServe(t, cfg)
	base := p.api
	api := p.client(t)
	ctx := t.Context()
	br := startBrowser(t, 10*time.Minute)

	admin := br.tab(t, "admin")
	t.Run("SignIn", func(t *testing.T) {
		// A page asked for without a session leads to the sign-in form,
		// which refuses a token ferry does not have, saying so.
		admin.open(t, base+"/", "#token")
		if loc := evalJS[string](t, admin, "location.pathname + location.search"); !strings.HasPrefix(loc, "/signin?next=") {
			admin.fail(t, "an unsigned visitor is at %s, want the sign-in page", loc)
		}
		admin.do(t, "signing in with a wrong token",
			chromedp.SendKeys(chromedp.CSS("#token"), "not-a-token-of-ferry"),
			chromedp.Click(chromedp.CSS(`form[action="/signin"] button[type=submit]`)),
			chromedp.WaitVisible(chromedp.CSS(".flash.bad")))
		if msg := admin.text(t, ".flash.bad"); !strings.Contains(msg, "not one of ferry serve's API tokens") {
			admin.fail(t, "the wrong token's error says %q", msg)
		}
		if n := admin.count(t, "form.who"); n != 0 {
			admin.fail(t, "a wrong token signed in")
		}
		admin.shot(t, "wrong-token")

		admin.signIn(t, base, serveToken)
		admin.open(t, base+"/", `tr[data-source="shop"]`)
		admin.until(t, "the overview lists a run", `document.querySelector('tr[data-run] a[href^="/runs/"]') !== null`)
		if src := admin.text(t, `tr[data-source="shop"]`); !strings.Contains(src, url) {
			admin.fail(t, "the overview's source row %q lacks its URL %s", src, url)
		}
		admin.shot(t, "overview")
	})

	// prod runs the first release (bob approves through the API); the
	// second commit's run is watched, then its release waits for approval
	// before prod.
	first := pendingProd(t, p, api, "")
	bobAPI, err := server.NewClient(p.api, bobToken)
	if err != nil {
		t.Fatal(err)
	}
	approve(t, bobAPI, first.ID)
	waitIn(t, p, "prod", "hello from python", 120*time.Second)
	oldDigest := imageDigest(t, api, "prod", first.Release)
	// A second commit: its run's page is opened as soon as the run is
	// there; its test step takes about 7.5 s.
	commitGreeting(t, work, "", "hello from the dashboard")
	t.Run("RunLogsGrow", func(t *testing.T) {
		run := waitRun(t, api, 2)
		admin.open(t, fmt.Sprintf("%s/runs/%d", base, run), "#run-status")
		if st := admin.text(t, "#run-status"); st != "queued" && st != "running" {
			admin.fail(t, "run %d is %s when its page opens; the test needs it running (make its test step slower?)", run, st)
		}
		evalJS[bool](t, admin, "window.ferryNotReloaded = true")
		if ds := evalJS[string](t, admin, `document.querySelector('pre#log.log').dataset.stream`); !strings.HasPrefix(ds, fmt.Sprintf("/runs/%d/logs", run)) {
			admin.fail(t, "pre#log's data-stream is %q", ds)
		}
		// The log shows line 3 of the test step while the run is still
		// running; later lines arrive by themselves after it.
		type logSeen struct {
			Status string `json:"status"`
			Lines  int    `json:"lines"`
		}
		atLine3 := pollValue[logSeen](t, admin, "line 3 of the test step in the log",
			`document.querySelector('pre#log').textContent.includes('test line 3') &&
			 {status: document.querySelector('#run-status').textContent.trim(), lines: document.querySelectorAll('pre#log span.line').length}`)
		if atLine3.Status != "running" {
			admin.fail(t, "when line 3 showed, the run was %q, want running", atLine3.Status)
		}
		admin.shot(t, "running")
		admin.until(t, "more lines arrive", fmt.Sprintf(
			`document.querySelector('pre#log').textContent.includes('test line 14') && document.querySelectorAll('pre#log span.line').length > %d`, atLine3.Lines))
		admin.until(t, "the run's status becomes succeeded", `document.querySelector('#run-status').textContent.trim() === 'succeeded'`)
		admin.until(t, "the log says it ended", `document.querySelector('pre#log').dataset.ended === '1'`)
		if !evalJS[bool](t, admin, "window.ferryNotReloaded === true") {
			admin.fail(t, "the run page was reloaded: it must change by itself")
		}
		if n := admin.count(t, `tr[data-step="test"]`); n != 1 {
			admin.fail(t, "%d rows for the test step", n)
		}
		admin.shot(t, "succeeded")
	})

	second := pendingProd(t, p, api, first.Release)
	newDigest := imageDigest(t, api, "staging", second.Release)
	if oldDigest == newDigest {
		t.Fatalf("the two releases have one image digest %s", oldDigest)
	}

	bob := br.tab(t, "bob")
	bob.signIn(t, base, bobToken)
	t.Run("ViewerAndForgeries", func(t *testing.T) {
		vera := br.tab(t, "vera")
		vera.signIn(t, base, viewerToken)
		vera.open(t, fmt.Sprintf("%s/promotions/%d", base, second.ID), "#promotion-status")
		if st := vera.text(t, "#promotion-status"); st != "pending" {
			vera.fail(t, "the promotion is %q, want pending", st)
		}
		if n := vera.count(t, "form#approve, form#reject"); n != 0 {
			vera.fail(t, "a viewer is offered %d approve or reject forms", n)
		}
		vera.shot(t, "promotion")
		vera.open(t, base+"/environments/prod", "table#history")
		if n := vera.count(t, "a#rollback"); n != 0 {
			vera.fail(t, "a viewer is offered the rollback link")
		}
		vera.shot(t, "environment")
		forge := fmt.Sprintf(`fetch('/promotions/%d/approve', {method: 'POST', body: new URLSearchParams({comment: 'forged'})}).then(r => r.status)`, second.ID)
		if code := evalJS[int](t, vera, forge); code != http.StatusForbidden {
			vera.fail(t, "a viewer's post without a CSRF token answered %d, want 403", code)
		}
		// With her page's token, the server still checks her role.
		withToken := fmt.Sprintf(`fetch('/promotions/%d/approve', {method: 'POST', body: new URLSearchParams({comment: 'mine', csrf: document.querySelector('meta[name=csrf]').content})}).then(r => r.status)`, second.ID)
		if code := evalJS[int](t, vera, withToken); code != http.StatusForbidden {
			vera.fail(t, "a viewer's approval with the CSRF token answered %d, want 403", code)
		}

		// An approver is offered the form (so its absence above means
		// something), but a post without the token is refused too.
		bob.open(t, fmt.Sprintf("%s/promotions/%d", base, second.ID), "form#approve")
		if code := evalJS[int](t, bob, forge); code != http.StatusForbidden {
			bob.fail(t, "an approver's post without a CSRF token answered %d, want 403", code)
		}

		// Another site's page posting a form to ferry in bob's browser, even
		// with the page's CSRF token: from another port of the same host
		// (same site, other origin: the cookie goes, the Origin check
		// refuses) and from localhost (another site: SameSite=Strict keeps
		// the cookie back).
		csrf := evalJS[string](t, bob, `document.querySelector('meta[name=csrf]').content`)
		attacker := startAttacker(t, fmt.Sprintf("%s/promotions/%d/approve", base, second.ID), csrf)
		port := attacker[strings.LastIndex(attacker, ":")+1:]
		for _, forged := range []struct{ from, answer string }{
			{"http://" + attacker, "Refused"},
			{"http://localhost:" + port, "Signed out"},
		} {
			bob.do(t, "opening the attacker's page at "+forged.from, chromedp.Navigate(forged.from+"/"))
			bob.until(t, "the forged form lands on ferry", fmt.Sprintf(`location.href.startsWith(%q) && document.readyState === 'complete'`, base))
			if h := bob.text(t, "h1"); h != forged.answer {
				bob.fail(t, "the form posted from %s was answered %q, want %q", forged.from, h, forged.answer)
			}
			bob.shot(t, "forged-from-"+strings.TrimPrefix(forged.from, "http://"))
		}
		got, err := api.Promotion(ctx, second.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != "pending" || len(got.Approvals) != 0 {
			t.Fatalf("after the forged posts the promotion is %s with approvals %+v", got.Status, got.Approvals)
		}
	})

	t.Run("ApproveChangesProd", func(t *testing.T) {
		// bob keeps the matrix open in one tab and approves in another;
		// the matrix changes by itself.
		matrix := bob.another(t, "bob-matrix")
		cell := `td[data-env="prod"][data-fn="hello"] code.digest`
		matrix.open(t, base+"/environments", "table#matrix "+cell)
		if d := matrix.text(t, cell); d != shortDigest(oldDigest) {
			matrix.fail(t, "prod's cell shows %q, want %s", d, shortDigest(oldDigest))
		}
		if ref := evalJS[string](t, matrix, `document.querySelector('td[data-env="prod"][data-fn="hello"] button.copy').dataset.copy`); !strings.HasSuffix(ref, "@"+oldDigest) {
			matrix.fail(t, "prod's copy button copies %q, want the image at %s", ref, oldDigest)
		}
		evalJS[bool](t, matrix, "window.ferryNotReloaded = true")
		// Someone on the keyboard is on prod's copy button when the
		// matrix changes: they stay there.
		copyButton := `td[data-env="prod"][data-fn="hello"] button.copy`
		matrix.skipToContent(t)
		matrix.tabTo(t, copyButton, 30)
		matrix.shot(t, "before")

		bob.open(t, base+"/promotions", fmt.Sprintf(`tr[data-promotion="%d"]`, second.ID))
		if st := bob.text(t, fmt.Sprintf(`tr[data-promotion="%d"] .status`, second.ID)); st != "pending" {
			bob.fail(t, "the promotion's row says %q, want pending", st)
		}
		bob.shot(t, "promotions")
		// The approval with the keyboard only, from the page just
		// opened: skip to the content, Tab to the comment, type it, Tab
		// to Approve, Enter.
		bob.open(t, fmt.Sprintf("%s/promotions/%d", base, second.ID), "form#approve")
		bob.skipToContent(t)
		bob.tabTo(t, "#approve-comment", 30)
		bob.key(t, "typing the comment", "ship it")
		bob.tabTo(t, "form#approve button[type=submit]", 1)
		if b := bob.text(t, "form#approve button[type=submit]"); b != "Approve" {
			bob.fail(t, "the approve button reads %q", b)
		}
		bob.key(t, "Enter on Approve", kb.Enter)
		bob.until(t, "the promotion is no longer pending",
			`document.querySelector('#promotion-status') !== null && document.querySelector('#promotion-status').textContent.trim() !== 'pending' && document.querySelector('li[data-approval]') !== null`)
		if a := bob.text(t, "li[data-approval]"); !strings.Contains(a, "bob") || !strings.Contains(a, "ship it") {
			bob.fail(t, "the approval reads %q, want bob's with his comment", a)
		}
		got, err := api.Promotion(ctx, second.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Approvals) != 1 || got.Approvals[0].Actor != "bob" || !got.Approvals[0].Approve || got.Approvals[0].Comment != "ship it" {
			t.Fatalf("the API records the approvals %+v, want bob's with the comment \"ship it\"", got.Approvals)
		}
		bob.shot(t, "approved")

		matrix.until(t, "prod's cell shows the new digest", fmt.Sprintf(
			`document.querySelector(%q) !== null && document.querySelector(%q).textContent.trim() === %q`, cell, cell, shortDigest(newDigest)))
		if !evalJS[bool](t, matrix, "window.ferryNotReloaded === true") {
			matrix.fail(t, "the matrix was reloaded: it must change by itself")
		}
		if f := matrix.focused(t, copyButton); !f.Matches {
			matrix.fail(t, "after the matrix changed the focus is on %s, want still prod's copy button", f.What)
		}
		matrix.shot(t, "after")
		waitIn(t, p, "prod", "hello from the dashboard", 60*time.Second)
		waitRelease(t, api, "prod", second.Release)
	})

	t.Run("RollBack", func(t *testing.T) {
		// alice rolls back with the keyboard only.
		alice := br.tab(t, "alice")
		alice.signIn(t, base, aliceToken)
		alice.open(t, base+"/environments/prod", "a#rollback")
		alice.shot(t, "environment")
		alice.press(t, "a#rollback")
		alice.text(t, "form#rollback-form")
		if to := alice.text(t, "#rollback-to"); !strings.Contains(to, shortDigest(first.Release)) {
			alice.fail(t, "the confirmation %q does not name release %s", to, shortDigest(first.Release))
		}
		if fn := alice.text(t, `li[data-fn="hello"]`); !strings.Contains(fn, shortDigest(oldDigest)) {
			alice.fail(t, "the confirmation says of hello %q, want its digest %s", fn, shortDigest(oldDigest))
		}
		button := "form#rollback-form button[type=submit]"
		if b := alice.text(t, button); b != "Roll back prod to "+shortDigest(first.Release) {
			alice.fail(t, "the button reads %q", b)
		}
		alice.shot(t, "confirm")
		alice.press(t, button)
		alice.until(t, "back at the environment", `location.pathname === '/environments/prod' && document.querySelector('table#history') !== null`)
		alice.shot(t, "rolled-back")

		cell := `td[data-env="prod"][data-fn="hello"] code.digest`
		alice.open(t, base+"/environments", "table#matrix")
		alice.until(t, "prod's cell shows the old digest", fmt.Sprintf(
			`document.querySelector(%q) !== null && document.querySelector(%q).textContent.trim() === %q`, cell, cell, shortDigest(oldDigest)))
		waitRelease(t, api, "prod", first.Release)
		waitIn(t, p, "prod", "hello from python", 60*time.Second)
		hist, err := api.History(ctx, "prod", 1, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(hist.Items) != 1 || hist.Items[0].Kind != "rollback" || hist.Items[0].Actor != "alice" || hist.Items[0].Release != first.Release {
			t.Errorf("prod's history does not begin with alice's rollback to %s: %+v", first.Release, hist.Items)
		}
		alice.shot(t, "matrix")
		if dir := os.Getenv("FERRY_SCREENSHOTS"); dir != "" {
			saveScreenshot(t, alice, dir, "environments.png")
		}
		alice.do(t, "a phone's screen", chromedp.EmulateViewport(phoneWidth, phoneHeight, chromedp.EmulateMobile), chromedp.Reload())
		alice.text(t, "table#matrix")
		alice.shot(t, "matrix-phone")
	})

	t.Run("Accessible", func(t *testing.T) {
		// Every page, once each, in a tab that signs in with the keyboard
		// only: names, structure, and the width of a laptop and a phone.
		keys := br.tab(t, "keys")
		a11ySweep(t, keys, base, []a11yPage{{path: "/signin", sel: "#token"}})
		keys.keyboardSignIn(t, serveToken)
		run := waitRun(t, api, 1)
		a11ySweep(t, keys, base, []a11yPage{
			{path: "/", sel: `tr[data-source="shop"]`},
			{path: "/runs", sel: "main h1"},
			{path: fmt.Sprintf("/runs/%d", run), sel: "#run-status"},
			{path: "/environments", sel: "table#matrix", shot: "environments"},
			{path: "/environments/prod", sel: "table#history"},
			{path: "/environments/prod/rollback?to=" + second.Release, sel: "form#rollback-form"},
			{path: "/releases", sel: fmt.Sprintf(`tr[data-release="%s"]`, second.Release)},
			{path: "/releases/" + second.Release, sel: "main h1"},
			{path: fmt.Sprintf("/diff?from=%s&to=%s", first.Release, second.Release), sel: "table#diff"},
			{path: "/promotions", sel: fmt.Sprintf(`tr[data-promotion="%d"]`, second.ID)},
			{path: fmt.Sprintf("/promotions/%d", second.ID), sel: "#promotion-status", shot: "promotion"},
			{path: "/previews", sel: "main h1"},
			{path: "/no-such-page", sel: "main h1"},
		})
		if code := evalJS[int](t, keys, `fetch('/no-such-page').then(r => r.status)`); code != http.StatusNotFound {
			keys.fail(t, "/no-such-page answers %d, want 404", code)
		}
		// The focus is shown on a page with forms, links and buttons.
		keys.open(t, base+"/environments/prod/rollback?to="+second.Release, "form#rollback-form")
		keys.skipToContent(t)
		keys.tabTo(t, "form#rollback-form button[type=submit]", 30)
		// Space presses a button: a copy button says what it did, and
		// the focus stays on it.
		copyButton := `td[data-env="staging"][data-fn="hello"] button.copy`
		keys.open(t, base+"/environments", "table#matrix")
		keys.skipToContent(t)
		keys.tabTo(t, copyButton, 30)
		keys.key(t, "Space on the copy button", " ")
		said := pollValue[string](t, keys, "the copy button says it copied", `(s => s.startsWith('Cop') && s)(document.querySelector('#conn').textContent)`)
		t.Logf("Space on the copy button: %q", said)
		if f := keys.focused(t, copyButton); !f.Matches {
			keys.fail(t, "after Space on the copy button the focus is on %s", f.What)
		}
	})
}

// waitRelease waits until the API says env runs release.
func waitRelease(t *testing.T, c *server.Client, env, release string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		e, err := c.Environment(t.Context(), env)
		if err != nil {
			t.Fatal(err)
		}
		if e.Release == release {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the API says %s runs %s, want %s", env, e.Release, release)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitRun waits for the run of the nth commit and returns its id.
func waitRun(t *testing.T, c *server.Client, n int) int64 {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		runs, err := c.Runs(t.Context(), "", 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(runs.Items) >= n {
			// why: the newest run comes first.
			return runs.Items[len(runs.Items)-n].ID
		}
		if time.Now().After(deadline) {
			t.Fatalf("no run for commit %d: %+v", n, runs.Items)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// imageDigest is the digest (sha256:…) of the image hello runs in env, once
// env runs release.
func imageDigest(t *testing.T, c *server.Client, env, release string) string {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		e, err := c.Environment(t.Context(), env)
		if err != nil {
			t.Fatal(err)
		}
		if e.Release == release {
			for _, f := range e.Functions {
				if i := strings.LastIndex(f.Image, "@sha256:"); f.Name == "hello" && i >= 0 {
					return f.Image[i+1:]
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not run hello of release %s: %+v", env, release, e)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func shortDigest(digest string) string {
	d := strings.TrimPrefix(digest, "sha256:")
	return d[:min(12, len(d))]
}

var attackerPage = template.Must(template.New("").Parse(`<!doctype html>
<title>win a prize</title>
<form id="f" method="post" action="{{.Action}}">
<input type="hidden" name="csrf" value="{{.CSRF}}">
<input type="hidden" name="comment" value="forged">
</form>
<script>document.getElementById("f").submit()</script>
`))

// startAttacker serves, on another port of the loopback address, a page
// whose form posts itself to action at once; it returns HOST:PORT.
func startAttacker(t *testing.T, action, csrf string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		attackerPage.Execute(w, struct{ Action, CSRF string }{action, csrf})
	})}
	go hs.Serve(l)
	t.Cleanup(func() { hs.Close() })
	return l.Addr().String()
}

// saveScreenshot writes a screenshot of the page, 1280 wide and as tall
// as its content, to dir/name (a folder relative to the repository's
// root).
func saveScreenshot(t *testing.T, tb *tab, dir, name string) {
	t.Helper()
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(root, dir)
	}
	// why: the picture ends below the page's content, not at the
	// bottom of a laptop's window.
	bottom := evalJS[float64](t, tb, `document.querySelector('main').getBoundingClientRect().bottom`)
	tb.do(t, "fitting the window to the page", chromedp.EmulateViewport(laptopWidth, int64(bottom)+24))
	png, err := chromedp.Run(tb.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	tb.do(t, "a laptop's window again", chromedp.EmulateViewport(laptopWidth, laptopHeight))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", filepath.Join(dir, name))
}
