package test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/ferrycd/ferry/test/testreg"
)

// The browser harness of the dashboard's tests: one headless Chromium per
// test, and in it tabs that each have a browser context of their own (their
// own cookies), so one test can be signed in as several people at once.

// Window sizes: a laptop, and a phone for the small-screen screenshot.
const (
	laptopWidth, laptopHeight = 1280, 900
	phoneWidth, phoneHeight   = 390, 844
)

// chromiumPath is the browser the tests drive: $FERRY_CHROMIUM, else
// Debian's chromium (or chromium-browser elsewhere) on PATH.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("FERRY_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	// why: never skip: a dashboard test that does not run must not pass.
	t.Fatal("no chromium on PATH: run hack/deps.sh (it installs Debian's chromium), or set FERRY_CHROMIUM to a Chromium binary")
	return ""
}

// browser is a running headless Chromium.
type browser struct {
	ctx    context.Context // the browser's own tab; others are opened from it
	output *testreg.SyncBuffer
}

// startBrowser starts Chromium for t, with a fresh profile; it stops at the
// test's end, or at within (a hang bound for the whole test).
func startBrowser(t *testing.T, within time.Duration) *browser {
	t.Helper()
	out := &testreg.SyncBuffer{}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		// why: several tabs are open at once; a tab in the background must
		// keep running its script (live updates, polling) at full speed.
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
		// why: /dev/shm is small in many containers; Chromium crashes when
		// it fills.
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(laptopWidth, laptopHeight),
		chromedp.CombinedOutput(out),
	}
	bound, cancelBound := context.WithTimeout(context.Background(), within)
	actx, cancelAlloc := chromedp.NewExecAllocator(bound, opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc()
		cancelBound()
		if t.Failed() && out.String() != "" {
			// why: Chromium is chatty (D-Bus, GPU); its last lines are
			// the ones that can explain a failure.
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			t.Logf("chromium's last lines:\n%s", strings.Join(lines[max(0, len(lines)-20):], "\n"))
		}
	})
	// The first action starts the browser.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting chromium: %v\n%s", err, out)
	}
	return &browser{ctx: ctx, output: out}
}

// tab is one page of the browser, with its own cookies.
type tab struct {
	ctx  context.Context
	name string // for screenshots' and failures' names
}

// tab opens a tab in a browser context of its own: signed in as nobody.
func (b *browser) tab(t *testing.T, name string) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(laptopWidth, laptopHeight)); err != nil {
		t.Fatalf("opening a tab: %v", err)
	}
	return &tab{ctx: ctx, name: name}
}

// another opens a second tab sharing tb's cookies (the same person in
// another tab).
func (tb *tab) another(t *testing.T, name string) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(tb.ctx)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(laptopWidth, laptopHeight)); err != nil {
		t.Fatalf("opening a tab: %v", err)
	}
	return &tab{ctx: ctx, name: name}
}

// waitBound bounds one wait in a tab: far above what any step takes on two
// busy cores, so only a hang reaches it.
const waitBound = 90 * time.Second

// do runs actions in the tab; a failure ends the test with a screenshot
// of the page as it was.
func (tb *tab) do(t *testing.T, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, waitBound)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.fail(t, "%s: %v", what, err)
	}
}

// fail ends the test saying what failed, where the tab was and what it
// showed, with a screenshot.
func (tb *tab) fail(t *testing.T, format string, args ...any) {
	t.Helper()
	tb.shot(t, "failed")
	ctx, cancel := context.WithTimeout(tb.ctx, 10*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	t.Fatalf("%s: %s\n(at %s, showing:)\n%s", tb.name, fmt.Sprintf(format, args...), loc, text)
}

// eval evaluates a JavaScript expression in the page.
func evalJS[T any](t *testing.T, tb *tab, js string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, waitBound)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		tb.fail(t, "evaluating %s: %v", js, err)
	}
	return v
}

// until waits, without reloading, until the JavaScript expression js is
// truthy in the page; what says what is awaited.
func (tb *tab) until(t *testing.T, what, js string) {
	t.Helper()
	pollValue[chromedp.Void](t, tb, what, js)
}

// pollValue waits until the JavaScript expression js is truthy in the page
// and returns its value.
func pollValue[T any](t *testing.T, tb *tab, what, js string) T {
	t.Helper()
	deadline := time.Now().Add(waitBound)
	for {
		ctx, cancel := context.WithDeadline(tb.ctx, deadline.Add(5*time.Second))
		v, err := chromedp.Run(ctx, chromedp.Poll[T](js,
			chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(time.Until(deadline))))
		cancel()
		if err == nil {
			return v
		}
		if time.Now().After(deadline) || tb.ctx.Err() != nil {
			tb.fail(t, "waiting until %s: %v", what, err)
		}
		// why: a page that goes elsewhere (a form's redirect) ends the
		// poll; it starts again on the next page, once that has begun.
		time.Sleep(50 * time.Millisecond)
	}
}

// The live part of a page (#live) is replaced whenever what it shows
// changes, so an element found a moment ago may be gone: the helpers
// below read in one step, or try again on the new element.

// text is the visible text of the first element sel matches (waiting
// for it).
func (tb *tab) text(t *testing.T, sel string) string {
	t.Helper()
	v := pollValue[struct{ Text string }](t, tb, sel+" to be there",
		fmt.Sprintf(`(e => e && e.getClientRects().length > 0 && {Text: e.innerText})(document.querySelector(%q))`, sel))
	return strings.TrimSpace(v.Text)
}

// count is how many elements sel matches now.
func (tb *tab) count(t *testing.T, sel string) int {
	t.Helper()
	return evalJS[int](t, tb, fmt.Sprintf(`document.querySelectorAll(%q).length`, sel))
}

// open navigates to url, waits for sel to be visible, and checks the
// page's controls and tables can be told apart without seeing them.
func (tb *tab) open(t *testing.T, url, sel string) {
	t.Helper()
	tb.do(t, "opening "+url, chromedp.Navigate(url))
	tb.text(t, sel)
	if bad := evalJS[[]string](t, tb, unlabelledJS); len(bad) > 0 {
		tb.fail(t, "%s has controls or tables without an accessible name:\n%s", url, strings.Join(bad, "\n"))
	}
}

// unlabelledJS lists the page's controls with no accessible name (a
// label, aria-label, aria-labelledby, a title, or a button's or link's
// text), its tables with no caption or aria-labelledby, and header cells
// without a scope.
const unlabelledJS = `(() => {
  const named = e => (e.getAttribute('aria-label') || '').trim() ||
    (e.getAttribute('aria-labelledby') || '').split(/\s+/).map(id => document.getElementById(id)).filter(Boolean).map(l => l.textContent).join('').trim() ||
    (e.labels ? Array.from(e.labels).map(l => l.textContent).join('').trim() : '') ||
    ((e.tagName === 'BUTTON' || e.tagName === 'A') ? e.textContent.trim() : '') ||
    (e.getAttribute('title') || '').trim();
  const bad = [];
  document.querySelectorAll('input:not([type=hidden]), select, textarea, button, a[href]').forEach(e => {
    if (!named(e)) bad.push('unnamed control: ' + e.outerHTML.slice(0, 160));
  });
  document.querySelectorAll('table').forEach(e => {
    if (!e.querySelector('caption') && !named(e)) bad.push('unnamed table: ' + e.outerHTML.slice(0, 160));
  });
  document.querySelectorAll('thead th:not([scope])').forEach(e => bad.push('header cell without scope: ' + e.outerHTML.slice(0, 160)));
  return bad;
})()`

// act runs an action on an element (a click, typing), again when the
// element was replaced under it.
func (tb *tab) act(t *testing.T, what string, a chromedp.Action[chromedp.Void]) {
	t.Helper()
	deadline := time.Now().Add(waitBound)
	for {
		ctx, cancel := context.WithDeadline(tb.ctx, deadline)
		err := chromedp.Do(ctx, a)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) || tb.ctx.Err() != nil {
			tb.fail(t, "%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// click clicks the first visible element sel matches, as a mouse would.
func (tb *tab) click(t *testing.T, sel string) {
	t.Helper()
	tb.act(t, "clicking "+sel, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
}

// press focuses the element sel matches and presses Enter on it, as
// someone using the keyboard only would.
func (tb *tab) press(t *testing.T, sel string) {
	t.Helper()
	tb.act(t, "pressing Enter on "+sel, chromedp.Steps(chromedp.Focus(chromedp.CSS(sel), chromedp.NodeVisible), chromedp.KeyEvent(kb.Enter)))
}

// typeInto types text into the element sel matches.
func (tb *tab) typeInto(t *testing.T, sel, text string) {
	t.Helper()
	tb.act(t, "typing into "+sel, chromedp.SendKeys(chromedp.CSS(sel), text, chromedp.NodeVisible))
}

// signIn signs in through the sign-in form with token, typed and sent
// with Enter, and waits for a signed-in page.
func (tb *tab) signIn(t *testing.T, base, token string) {
	t.Helper()
	tb.do(t, "signing in",
		chromedp.Navigate(base+"/signin"),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		// why: with the keyboard only: the token, then Enter.
		chromedp.SendKeys(chromedp.CSS("#token"), token+kb.Enter),
		chromedp.WaitVisible(chromedp.CSS("form.who")),
	)
}

var unsafeName = regexp.MustCompile(`[^a-zA-Z0-9_.-]+`)

// shot saves a screenshot of the whole page as NAME.png in the test's
// output folder (kept with go test -artifacts -outputdir DIR).
func (tb *tab) shot(t *testing.T, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Errorf("%s: screenshot %s: %v", tb.name, name, err)
		return ""
	}
	p := filepath.Join(t.ArtifactDir(), unsafeName.ReplaceAllString(tb.name+"-"+name, "_")+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Errorf("screenshot %s: %v", name, err)
		return ""
	}
	return p
}
