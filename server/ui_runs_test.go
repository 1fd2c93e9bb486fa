package server

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferrycd/ferry/store"
)

// runsMakeRun records a run of source in the fixture's store with status,
// its steps all queued.
func runsMakeRun(t *testing.T, st store.Store, source, commit string, status store.RunStatus, steps ...string) store.Run {
	t.Helper()
	run, _, err := st.CreateRun(t.Context(), store.Run{Source: source, Branch: "main", Commit: commit, Status: status, Created: time.Now()}, steps)
	if err != nil {
		t.Fatal(err)
	}
	if status != store.StatusQueued { // CreateRun records every run queued
		run.Status = status
		if err := st.UpdateRun(t.Context(), run); err != nil {
			t.Fatal(err)
		}
	}
	return run
}

func runsLog(t *testing.T, st store.Store, run int64, step string, lines ...string) {
	t.Helper()
	if err := st.AppendLog(t.Context(), run, step, lines...); err != nil {
		t.Fatal(err)
	}
}

// runsLastSeq is the seq of run's newest log line.
func runsLastSeq(t *testing.T, st store.Store, run int64) int64 {
	t.Helper()
	ls, err := st.Logs(t.Context(), run, 0, 0)
	if err != nil || len(ls) == 0 {
		t.Fatalf("run %d's log: %d lines, %v", run, len(ls), err)
	}
	return ls[len(ls)-1].Seq
}

type runsEvent struct{ id, name, data string }

// runsOpenStream opens a server-sent event stream as b, with header
// Last-Event-ID when lastID is not "", and returns its events as they
// come; the channel closes when the stream ends.
func runsOpenStream(t *testing.T, b *browser, path, lastID string) (<-chan runsEvent, *http.Response) {
	t.Helper()
	// A bound against a hang only: every wait here takes milliseconds.
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b.base+path, nil)
	req.Header.Set("Accept", "text/event-stream")
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	out := make(chan runsEvent, 100)
	if resp.StatusCode != http.StatusOK {
		close(out)
		return out, resp
	}
	go func() {
		defer close(out)
		sc := bufio.NewScanner(resp.Body)
		var ev runsEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.name != "" {
					out <- ev
				}
				ev = runsEvent{}
			case strings.HasPrefix(line, "id: "):
				ev.id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.data += strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	return out, resp
}

// runsNext is the stream's next event; it fails the test when the stream
// ends first.
func runsNext(t *testing.T, events <-chan runsEvent) runsEvent {
	t.Helper()
	ev, ok := <-events
	if !ok {
		t.Fatal("the stream ended early")
	}
	return ev
}

func runsLine(t *testing.T, ev runsEvent) LogLineView {
	t.Helper()
	if ev.name != "line" {
		t.Fatalf("event %q (%s), want a line", ev.name, ev.data)
	}
	var l LogLineView
	if err := json.Unmarshal([]byte(ev.data), &l); err != nil {
		t.Fatal(err)
	}
	return l
}

var runsStreamRe = regexp.MustCompile(`<pre id="log" class="log"[^>]* data-stream="([^"]+)"`)

func TestUIRunPage(t *testing.T) {
	f := newUIFixture(t)
	ctx := t.Context()
	run := runsMakeRun(t, f.store, "demo", "0123456789abcdef0123", store.StatusRunning, "checkout", "build")
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	if err := f.store.UpdateStep(ctx, store.Step{RunID: run.ID, Name: "checkout", Index: 0, Status: store.StatusSucceeded, Started: t0, Ended: t0.Add(1500 * time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	if err := f.store.UpdateStep(ctx, store.Step{RunID: run.ID, Name: "build", Index: 1, Status: store.StatusRunning, Started: t0.Add(2 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	runsLog(t, f.store, run.ID, "checkout", "cloned demo at 0123456")
	runsLog(t, f.store, run.ID, "build", "<script>alert(1)</script> & more")
	last := runsLastSeq(t, f.store, run.ID)

	b := f.signIn(t, viewerSecret)
	a := b.get(fmt.Sprintf("/runs/%d", run.ID))
	if a.code != http.StatusOK {
		t.Fatalf("run page: %d\n%s", a.code, a.body)
	}
	for _, want := range []string{
		fmt.Sprintf("<h1>Run #%d</h1>", run.ID),
		`<span id="run-status" class="badge s-running">running</span>`,
		`<tr data-step="checkout">`, `<tr data-step="build">`,
		`<span class="badge s-succeeded">succeeded</span>`,
		"1.5s", // the checkout step took
		"0123456789ab",
		`<span class="step">checkout</span>cloned demo at 0123456` + "\n</span>",
		// The log line that looks like HTML is text on the page.
		`<span class="step">build</span>&lt;script&gt;alert(1)&lt;/script&gt; &amp; more`,
		`<span id="log-count">2</span>`,
		`aria-current="page">Runs</a>`,
	} {
		if !strings.Contains(a.body, want) {
			t.Errorf("the run page lacks %s:\n%s", want, a.body)
		}
	}
	if strings.Contains(a.body, "<script>alert") {
		t.Errorf("a log line reached the page as HTML:\n%s", a.body)
	}
	if n := strings.Count(a.body, `<span class="line" data-seq="`); n != 2 {
		t.Errorf("%d log lines drawn, want 2", n)
	}
	// The stream the page follows starts after the last line it drew.
	m := runsStreamRe.FindStringSubmatch(a.body)
	if m == nil || html.UnescapeString(m[1]) != fmt.Sprintf("/runs/%d/logs?after=%d", run.ID, last) {
		t.Errorf("the log's stream: %v, want after=%d", m, last)
	}

	// A run with no lines yet streams from the start.
	empty := runsMakeRun(t, f.store, "demo", "fedcba", store.StatusQueued, "checkout")
	a = b.get(fmt.Sprintf("/runs/%d", empty.ID))
	if m := runsStreamRe.FindStringSubmatch(a.body); m == nil || m[1] != fmt.Sprintf("/runs/%d/logs", empty.ID) {
		t.Errorf("an empty log's stream: %v", m)
	}

	if a := b.get("/runs/999"); a.code != http.StatusNotFound {
		t.Errorf("a run that does not exist: %d\n%s", a.code, a.body)
	}
	if a := b.get("/runs/abc"); a.code != http.StatusBadRequest || !strings.Contains(a.body, "a run is named by its number") {
		t.Errorf("a run id that is no number: %d\n%s", a.code, a.body)
	}
}

// TestUIRunPageWhyAndWhere: a failed run says why (ferry's own failure
// explained), and where its release went links to the promotions.
func TestUIRunPageWhyAndWhere(t *testing.T) {
	f := newUIFixture(t)
	ctx := t.Context()
	run := runsMakeRun(t, f.store, "demo", "c1", store.StatusQueued, "build")
	rel, _, err := f.store.PutRelease(ctx, store.Release{ID: "sha256:" + strings.Repeat("ab", 32), Source: "demo", Commit: "c1", Ref: "r@sha256:" + strings.Repeat("ab", 32), Manifest: []byte("x"), RunID: run.ID})
	if err != nil {
		t.Fatal(err)
	}
	run.Status, run.Release, run.Reason, run.Ended = store.StatusFailed, rel.ID, "deploy to prod: registry unreachable", time.Now()
	run.InfraFailed = true
	if err := f.store.UpdateRun(ctx, run); err != nil {
		t.Fatal(err)
	}
	p, err := f.store.CreatePromotion(ctx, store.Promotion{Release: rel.ID, Environment: "dev", Status: "succeeded", Reason: "verified", Requester: "ferry", RunID: run.ID})
	if err != nil {
		t.Fatal(err)
	}

	a := f.signIn(t, viewerSecret).get(fmt.Sprintf("/runs/%d", run.ID))
	for _, want := range []string{
		`<span id="run-status" class="badge s-failed">failed</span>`,
		"deploy to prod: registry unreachable",
		html.EscapeString(infraFailedExplained),
		`href="/releases/sha256:abababababab`,
		`<tr data-env="dev">`,
		fmt.Sprintf(`<a href="/promotions/%d">#%d</a>`, p.ID, p.ID),
	} {
		if !strings.Contains(a.body, want) {
			t.Errorf("the run page lacks %s:\n%s", want, a.body)
		}
	}
	// The list says where it went too.
	a = f.signIn(t, viewerSecret).get("/runs")
	if !strings.Contains(a.body, fmt.Sprintf(`href="/promotions/%d">dev: succeeded</a>`, p.ID)) {
		t.Errorf("the runs list lacks the run's fate:\n%s", a.body)
	}
}

// TestUIRunLogStream: through the dashboard's session, the page's stream
// brings the lines written after the page was drawn, only those, and an
// end event when the run is over.
func TestUIRunLogStream(t *testing.T) {
	f := newUIFixture(t)
	ctx := t.Context()
	run := runsMakeRun(t, f.store, "demo", "c1", store.StatusRunning, "build")
	runsLog(t, f.store, run.ID, "build", "one", "two")
	drawn := runsLastSeq(t, f.store, run.ID)

	b := f.signIn(t, viewerSecret)
	m := runsStreamRe.FindStringSubmatch(b.get(fmt.Sprintf("/runs/%d", run.ID)).body)
	if m == nil {
		t.Fatal("the run page has no log stream")
	}
	events, resp := runsOpenStream(t, b, html.UnescapeString(m[1]), "")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("log stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	runsLog(t, f.store, run.ID, "build", "three")
	l := runsLine(t, runsNext(t, events))
	if l.Text != "three" || l.Seq <= drawn || l.Step != "build" {
		t.Fatalf("the first streamed line is %+v, want three after seq %d", l, drawn)
	}
	run.Status, run.Ended = store.StatusSucceeded, time.Now()
	if err := f.store.UpdateRun(ctx, run); err != nil {
		t.Fatal(err)
	}
	end := runsNext(t, events)
	if end.name != "end" || !strings.Contains(end.data, `"status":"succeeded"`) {
		t.Fatalf("after the run ended: %+v", end)
	}
	if ev, ok := <-events; ok {
		t.Errorf("an event after the end: %+v", ev)
	}

	// A reconnecting EventSource keeps the page's ?after= in its URL and
	// names the last line it got: the later one wins.
	events, _ = runsOpenStream(t, b, fmt.Sprintf("/runs/%d/logs?after=%d", run.ID, drawn-1), strconv.FormatInt(drawn, 10))
	if l := runsLine(t, runsNext(t, events)); l.Text != "three" {
		t.Errorf("after Last-Event-ID %d came %+v", drawn, l)
	}
	if ev := runsNext(t, events); ev.name != "end" {
		t.Errorf("then %+v, want the end", ev)
	}
	// From the start, every line.
	events, _ = runsOpenStream(t, b, fmt.Sprintf("/runs/%d/logs", run.ID), "")
	var got []string
	for ev := range events {
		if ev.name == "line" {
			got = append(got, runsLine(t, ev).Text)
		}
	}
	if strings.Join(got, ",") != "one,two,three" {
		t.Errorf("the whole log streamed: %v", got)
	}

	for path, code := range map[string]int{
		fmt.Sprintf("/runs/%d/logs?after=-1", run.ID): http.StatusBadRequest,
		fmt.Sprintf("/runs/%d/logs?after=x", run.ID):  http.StatusBadRequest,
		"/runs/abc/logs": http.StatusBadRequest,
		"/runs/999/logs": http.StatusNotFound,
	} {
		if a := b.get(path); a.code != code {
			t.Errorf("%s: %d, want %d\n%s", path, a.code, code, a.body)
		}
	}
}

// TestUIRunLive: the open run page's status and steps change without a
// reload; the live part never carries the log, which the stream keeps.
func TestUIRunLive(t *testing.T) {
	f := newUIFixture(t)
	run := runsMakeRun(t, f.store, "demo", "c1", store.StatusRunning, "build")
	runsLog(t, f.store, run.ID, "build", "compiling")
	b := f.signIn(t, viewerSecret)
	page := b.get(fmt.Sprintf("/runs/%d", run.ID)).body
	m := regexp.MustCompile(`data-live-hash="([0-9a-f]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("the run page is not live:\n%s", page)
	}
	events, resp := runsOpenStream(t, b, fmt.Sprintf("/live?path=/runs/%d&h=%s", run.ID, m[1]), "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("live: %d", resp.StatusCode)
	}
	run.Status, run.Reason, run.Ended = store.StatusFailed, "build: exit status 2", time.Now()
	if err := f.store.UpdateRun(t.Context(), run); err != nil {
		t.Fatal(err)
	}
	ev := runsNext(t, events)
	if ev.name != "live" || !strings.Contains(ev.data, `<span id="run-status" class="badge s-failed">failed</span>`) || !strings.Contains(ev.data, "build: exit status 2") {
		t.Fatalf("the live update: %+v", ev)
	}
	if strings.Contains(ev.data, `id="log"`) || strings.Contains(ev.data, "compiling") {
		t.Errorf("the live part carries the log: %s", ev.data)
	}
}

func TestUIRunsPaging(t *testing.T) {
	f := newUIFixture(t)
	for i := range 35 {
		runsMakeRun(t, f.store, "demo", fmt.Sprintf("d%02d", i), store.StatusQueued, "build")
	}
	for i := range 3 {
		runsMakeRun(t, f.store, "shop", fmt.Sprintf("s%02d", i), store.StatusQueued, "build")
	}
	rowRe := regexp.MustCompile(`<tr data-run="(\d+)">`)
	nextRe := regexp.MustCompile(`<a rel="next" href="([^"]+)">`)
	b := f.signIn(t, viewerSecret)

	seen := map[string]bool{}
	a := b.get("/runs")
	rows := rowRe.FindAllStringSubmatch(a.body, -1)
	if a.code != http.StatusOK || len(rows) != runsPerPage || rows[0][1] != "38" {
		t.Fatalf("the first page: %d, %d rows, want %d from run 38\n%s", a.code, len(rows), runsPerPage, a.body)
	}
	if strings.Contains(a.body, `rel="prev"`) {
		t.Errorf("the newest page links to newer ones")
	}
	for _, r := range rows {
		seen[r[1]] = true
	}
	next := nextRe.FindStringSubmatch(a.body)
	if next == nil {
		t.Fatalf("a full page has no next link:\n%s", a.body)
	}
	a = b.get(html.UnescapeString(next[1]))
	rows = rowRe.FindAllStringSubmatch(a.body, -1)
	if a.code != http.StatusOK || len(rows) != 8 || rows[0][1] != "8" || rows[7][1] != "1" {
		t.Fatalf("the second page (%s): %d, rows %v", next[1], a.code, rows)
	}
	for _, r := range rows {
		seen[r[1]] = true
	}
	if len(seen) != 38 {
		t.Errorf("the two pages show %d runs, want 38", len(seen))
	}
	if nextRe.MatchString(a.body) || !strings.Contains(a.body, `<a rel="prev" href="/runs">`) {
		t.Errorf("the last page's links:\n%s", a.body)
	}

	// One source's runs.
	a = b.get("/runs?source=shop")
	rows = rowRe.FindAllStringSubmatch(a.body, -1)
	if len(rows) != 3 || rows[0][1] != "38" || rows[2][1] != "36" || strings.Contains(a.body, ">demo <") {
		t.Errorf("shop's runs: %v\n%s", rows, a.body)
	}
	if a := b.get("/runs?before=x"); a.code != http.StatusBadRequest {
		t.Errorf("a bad before: %d", a.code)
	}
}

// TestUIRunsSignedOut: the pages send a browser with no session to sign
// in; the log stream, which a script opens, says 401.
func TestUIRunsSignedOut(t *testing.T) {
	f := newUIFixture(t)
	run := runsMakeRun(t, f.store, "demo", "c1", store.StatusRunning, "build")
	runsLog(t, f.store, run.ID, "build", "secret-ish output")
	b := f.browser(t)
	for _, p := range []string{"/runs", fmt.Sprintf("/runs/%d", run.ID)} {
		a := b.get(p)
		if a.code != http.StatusSeeOther || !strings.HasPrefix(a.header.Get("Location"), "/signin?next=") {
			t.Errorf("%s without a session: %d %q", p, a.code, a.header.Get("Location"))
		}
	}
	a := b.get(fmt.Sprintf("/runs/%d/logs", run.ID))
	if a.code != http.StatusUnauthorized || strings.Contains(a.body, "secret-ish") {
		t.Errorf("the log stream without a session: %d\n%s", a.code, a.body)
	}
}
