package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/accessibility"
	"github.com/chromedp/cdproto/dom"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// The dashboard's accessibility checks (issue 16, point 4): names from
// Chromium's own accessibility tree, pages that fit a phone and a laptop
// without scrolling sideways, and keyboard-only use. TestDashboard runs
// them over its one ferry serve and browser.

// a11yLaptopHeight is the laptop of the width checks (the harness's
// window is taller; the width is what matters).
const a11yLaptopHeight = 800

// a11yNamedRoles are the roles whose elements must have an accessible
// name: everything one can press, type into or pick, and tables.
var a11yNamedRoles = map[string]bool{
	"button": true, "link": true, "textbox": true, "searchbox": true,
	"combobox": true, "checkbox": true, "radio": true, "switch": true,
	"slider": true, "spinbutton": true, "listbox": true, "option": true,
	"menuitem": true, "tab": true, "table": true, "grid": true, "treegrid": true,
}

// a11yPage is one page of the sweep: where, and what shows it is drawn.
type a11yPage struct {
	path, sel string
	shot      string // a phone screenshot's name, when one is wanted
}

// a11ySweep opens each page once and checks, on it: names in the
// accessibility tree, the document's structure, and that neither a
// laptop's nor a phone's width makes it scroll sideways.
func a11ySweep(t *testing.T, tb *tab, base string, pages []a11yPage) {
	t.Helper()
	for _, p := range pages {
		tb.open(t, base+p.path, p.sel)
		if bad := a11yUnnamed(t, tb); len(bad) > 0 {
			tb.fail(t, "%s: Chromium's accessibility tree has controls or tables with no name:\n%s", p.path, strings.Join(bad, "\n"))
		}
		if bad := evalJS[[]string](t, tb, a11yStructureJS); len(bad) > 0 {
			tb.fail(t, "%s:\n%s", p.path, strings.Join(bad, "\n"))
		}
		for _, w := range []struct {
			width, height int64
			mobile        bool
		}{{laptopWidth, a11yLaptopHeight, false}, {phoneWidth, phoneHeight, true}} {
			if msg := a11yFits(t, tb, w.width, w.height, w.mobile); msg != "" {
				tb.fail(t, "%s %s", p.path, msg)
			}
		}
		if p.shot != "" {
			tb.shot(t, p.shot+"-phone")
		}
		tb.do(t, "a laptop's window again", chromedp.EmulateViewport(laptopWidth, laptopHeight))
	}
}

// a11yUnnamed lists the visible controls and tables of the page that
// Chromium gives no accessible name, each with its HTML.
func a11yUnnamed(t *testing.T, tb *tab) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, waitBound)
	defer cancel()
	tree, err := chromedp.Call(ctx, accessibility.GetFullAXTree, accessibility.GetFullAXTreeParams{})
	if err != nil {
		tb.fail(t, "reading the accessibility tree: %v", err)
	}
	var bad []string
	links := 0
	for _, n := range tree.Nodes {
		// why: ignored nodes are hidden from people (display: none, the
		// skip link off screen still counts: it is not ignored).
		if n.Ignored {
			continue
		}
		role := axString(n.Role)
		if !a11yNamedRoles[role] {
			continue
		}
		if role == "link" {
			links++
		}
		if strings.TrimSpace(axString(n.Name)) != "" {
			continue
		}
		html := "(no DOM node)"
		if n.BackendDOMNodeID != 0 {
			if h, err := chromedp.Call(ctx, dom.GetOuterHTML, dom.GetOuterHTMLParams{BackendNodeID: n.BackendDOMNodeID}); err == nil {
				html = h.OuterHTML[:min(len(h.OuterHTML), 200)]
			}
		}
		bad = append(bad, role+": "+html)
	}
	// why: every page has the skip link at least; none means the tree
	// was not read, and an empty list would prove nothing.
	if links == 0 {
		tb.fail(t, "the accessibility tree (%d nodes) has no link at all", len(tree.Nodes))
	}
	return bad
}

// axString is an accessibility value as text ("" when absent or not a
// string).
func axString(v *accessibility.Value) string {
	if v == nil || len(v.Value) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(v.Value, &s) != nil {
		return ""
	}
	return s
}

// a11yStructureJS lists what the document lacks: a language, a title,
// exactly one h1, and in every table header cells with a scope.
const a11yStructureJS = `(() => {
  const bad = [];
  if (!(document.documentElement.getAttribute('lang') || '').trim()) bad.push('<html> has no lang');
  if (!document.title.trim()) bad.push('no <title>');
  const h1 = document.querySelectorAll('h1').length;
  if (h1 !== 1) bad.push(h1 + ' <h1> elements, want 1');
  document.querySelectorAll('table').forEach(e => {
    // why: a two-column table of facts is headed by its rows.
    if (!e.querySelector('th[scope=col], th[scope=row]')) bad.push('table without headers (th scope=col, or scope=row for a table of facts): ' + e.outerHTML.slice(0, 160));
  });
  return bad;
})()`

// a11yFits sets the window to width×height (a phone's when mobile) and
// says so when the page scrolls sideways, naming what sticks out
// (outside the elements meant to scroll: .scroll, pre); "" when it fits.
func a11yFits(t *testing.T, tb *tab, width, height int64, mobile bool) string {
	t.Helper()
	var opts []chromedp.EmulateViewportOption
	if mobile {
		opts = append(opts, chromedp.EmulateMobile)
	}
	tb.do(t, fmt.Sprintf("a %dx%d window", width, height), chromedp.EmulateViewport(width, height, opts...))
	type fit struct {
		Scroll, Inner int64
		Out           []string
	}
	// why: wait two frames so the layout is the new window's.
	f := evalJS[fit](t, tb, fmt.Sprintf(`new Promise(ok => requestAnimationFrame(() => requestAnimationFrame(() => {
  const w = Math.min(window.innerWidth, %d);
  const out = [];
  document.querySelectorAll('body *').forEach(e => {
    if (e.closest('.scroll, pre') && !e.matches('.scroll, pre')) return;
    const r = e.getBoundingClientRect();
    // why: text that does not wrap spills out of a box that fits.
    const spill = getComputedStyle(e).overflowX === 'visible' ? e.scrollWidth - e.clientWidth : 0;
    const right = Math.max(r.right, r.left + e.clientWidth + spill);
    if (r.width > 0 && right > w + 1 && out.length < 8) out.push(e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.className ? '.' + String(e.className).split(' ').join('.') : '') + ' ends at ' + Math.round(right));
  });
  ok({Scroll: document.documentElement.scrollWidth, Inner: window.innerWidth, Out: out});
})))`, width))
	if f.Scroll > width+1 || f.Inner > width+1 {
		return fmt.Sprintf("scrolls sideways at %dx%d: the page is %d wide (window %d); sticking out:\n%s",
			width, height, f.Scroll, f.Inner, strings.Join(f.Out, "\n"))
	}
	return ""
}

// a11yFocus is the focused element and how it shows it has the focus.
type a11yFocus struct {
	What      string `json:"what"`
	Matches   bool   `json:"matches"`
	Indicated bool   `json:"indicated"`
	Style     string `json:"style"`
}

// focusJS describes the focused element; %q is the selector it is
// compared with.
const focusJS = `(() => {
  const e = document.activeElement;
  if (!e || e === document.body) return {what: 'nothing', matches: false, indicated: false, style: ''};
  const s = getComputedStyle(e);
  const outline = s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0;
  const shadow = s.boxShadow && s.boxShadow !== 'none';
  return {what: e.outerHTML.slice(0, 120), matches: e.matches(%q), indicated: outline || shadow,
    style: 'outline: ' + s.outlineStyle + ' ' + s.outlineWidth + '; box-shadow: ' + s.boxShadow};
})()`

// focused describes the focused element, compared with sel.
func (tb *tab) focused(t *testing.T, sel string) a11yFocus {
	t.Helper()
	return evalJS[a11yFocus](t, tb, fmt.Sprintf(focusJS, sel))
}

// key presses keys (kb.Tab, kb.Enter, text) on whatever has the focus:
// keyboard events only, no mouse and no focusing by script.
func (tb *tab) key(t *testing.T, what, keys string) {
	t.Helper()
	tb.do(t, what, chromedp.KeyEvent(keys))
}

// tabTo presses Tab until the focus is on what sel matches, at most limit
// times; every element the focus passes must show that it has it.
func (tb *tab) tabTo(t *testing.T, sel string, limit int) {
	t.Helper()
	var passed []string
	for range limit {
		tb.key(t, "pressing Tab", kb.Tab)
		f := tb.focused(t, sel)
		if f.What == "nothing" {
			tb.fail(t, "after Tab nothing has the focus (passed %d elements)", len(passed))
		}
		if !f.Indicated {
			tb.fail(t, "the focused element shows no focus indicator (%s):\n%s", f.Style, f.What)
		}
		if f.Matches {
			return
		}
		passed = append(passed, f.What)
	}
	tb.fail(t, "%d presses of Tab did not reach %s; the focus went through:\n%s", limit, sel, strings.Join(passed, "\n"))
}

// skipToContent checks, on a page just opened, that the first Tab lands on
// the "Skip to content" link, shown, and that Enter on it moves the
// focus to main.
func (tb *tab) skipToContent(t *testing.T) {
	t.Helper()
	tb.key(t, "the first Tab", kb.Tab)
	f := tb.focused(t, "a.skip")
	if !f.Matches || !strings.Contains(f.What, "Skip to content") {
		tb.fail(t, "the first Tab lands on %s, want the Skip to content link", f.What)
	}
	if !f.Indicated {
		tb.fail(t, "the focused skip link shows no focus indicator (%s)", f.Style)
	}
	if !evalJS[bool](t, tb, `(r => r.right > 0 && r.bottom > 0 && r.left < innerWidth)(document.activeElement.getBoundingClientRect())`) {
		tb.fail(t, "the focused skip link is off screen")
	}
	tb.key(t, "Enter on the skip link", kb.Enter)
	tb.until(t, "main has the focus", `document.activeElement && document.activeElement.id === 'main'`)
}

// keyboardSignIn signs in on a page just opened at /signin with the
// keyboard only: the token field has the focus (autofocus), the token is
// typed, Enter sends it.
func (tb *tab) keyboardSignIn(t *testing.T, token string) {
	t.Helper()
	tb.until(t, "the token field has the focus", `document.activeElement && document.activeElement.id === 'token'`)
	tb.key(t, "typing the token and Enter", token+kb.Enter)
	tb.until(t, "signed in", `document.querySelector('form.who') !== null`)
}

// a11yFaultyPage has one of each fault the checks above look for.
const a11yFaultyPage = `<!doctype html><html><head><title>faulty</title></head><body>
<a href="#named">a named link</a>
<button id="unnamed-button"></button>
<input id="unnamed-input">
<table id="unnamed-table"><thead><tr><th>a</th><th>b</th></tr></thead><tbody><tr><td>1</td><td>2</td></tr></tbody></table>
<div id="too-wide" style="width: 2000px">wide</div>
<button id="no-ring" style="outline: none">no focus ring</button>
</body></html>`

// TestDashboardA11yChecks shows that the accessibility checks find what
// they look for: a page with an unnamed button, input and table, no lang
// and no h1, too wide for any window, and a button that hides its focus.
// Without it, TestDashboard's sweep passing could mean checks that see
// nothing.
func TestDashboardA11yChecks(t *testing.T) {
	t.Parallel()
	br := startBrowser(t, 3*time.Minute)
	tb := br.tab(t, "faulty")
	tb.do(t, "opening the faulty page", chromedp.Navigate("data:text/html,"+url.PathEscape(a11yFaultyPage)))
	tb.text(t, "#no-ring")

	unnamed := strings.Join(a11yUnnamed(t, tb), "\n")
	for _, want := range []string{"button: <button id=\"unnamed-button\"", "textbox: <input id=\"unnamed-input\"", "table: <table id=\"unnamed-table\""} {
		if !strings.Contains(unnamed, want) {
			t.Errorf("the accessibility tree check missed %q; it found:\n%s", want, unnamed)
		}
	}
	if strings.Contains(unnamed, "a named link") {
		t.Errorf("the check finds the named link unnamed:\n%s", unnamed)
	}
	structure := strings.Join(evalJS[[]string](t, tb, a11yStructureJS), "\n")
	for _, want := range []string{"no lang", "0 <h1>", "table without headers"} {
		if !strings.Contains(structure, want) {
			t.Errorf("the structure check missed %q; it found:\n%s", want, structure)
		}
	}
	if msg := a11yFits(t, tb, phoneWidth, phoneHeight, true); !strings.Contains(msg, "div#too-wide") {
		t.Errorf("the width check says %q, want it to name div#too-wide", msg)
	}
	tb.do(t, "a laptop's window again", chromedp.EmulateViewport(laptopWidth, laptopHeight))
	tb.key(t, "the first Tab", kb.Tab)
	if f := tb.focused(t, "a"); !f.Matches || !f.Indicated {
		t.Errorf("the first Tab is on %s, indicated %v (%s): want the link, with Chromium's own focus ring", f.What, f.Indicated, f.Style)
	}
	for range 3 {
		tb.key(t, "Tab", kb.Tab)
	}
	if f := tb.focused(t, "#no-ring"); !f.Matches || f.Indicated {
		t.Errorf("the fourth Tab is on %s, indicated %v (%s): want the button with no focus ring, seen as such", f.What, f.Indicated, f.Style)
	}
}
