package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ferrycd/ferry/store"
)

// Hostile tests of the dashboard: each tries a way in an outsider or a
// lesser role might take, and asserts it is shut. The ones that found a
// hole are named in their comments.

// hostileSSE splits an event stream as a browser's EventSource does: a
// line ends at CRLF, LF or CR, and an empty line ends an event.
func hostileSSE(raw string) []runsEvent {
	raw = strings.ReplaceAll(raw, "\r\n", "\n")
	raw = strings.ReplaceAll(raw, "\r", "\n")
	var out []runsEvent
	var ev runsEvent
	data := []string{}
	for _, line := range strings.Split(raw, "\n") {
		if line == "" {
			if len(data) > 0 || ev.name != "" {
				ev.data = strings.Join(data, "\n")
				out = append(out, ev)
			}
			ev, data = runsEvent{}, []string{}
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			ev.name = value
		case "data":
			data = append(data, value)
		case "id":
			ev.id = value
		}
	}
	return out
}

// hostileFirstEvent opens /live for path as b and returns the raw bytes
// of the server's first event (up to its "\n\n").
func hostileFirstEvent(t *testing.T, b *browser, path string) string {
	t.Helper()
	// A bound against a hang only: the first event comes at once.
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b.base+"/live?path="+url.QueryEscape(path), nil)
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("live %s: %d", path, resp.StatusCode)
	}
	var all []byte
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		all = append(all, buf[:n]...)
		if i := bytes.Index(all, []byte("\n\n")); i >= 0 {
			return string(all[:i+2])
		}
		if err != nil {
			t.Fatalf("the stream ended before its first event: %v\n%q", err, all)
		}
	}
}

// TestHostileLiveFraming: a run's reason holding bare CRs once split the
// live stream, since an EventSource also ends lines at CR: the reason
// below made the browser see a "signedout" event and a "live" event of
// the outsider's choosing. Now a live event is one event, whatever the
// page holds.
func TestHostileLiveFraming(t *testing.T) {
	f := newUIFixture(t)
	evil := "boom\r\revent: signedout\rdata: x\r\revent: live\rdata: owned\r\r"
	run := runsMakeRun(t, f.store, "demo", "0123456789abcdef", store.StatusFailed, "build")
	run.Reason = evil
	if err := f.store.UpdateRun(t.Context(), run); err != nil {
		t.Fatal(err)
	}
	if err := f.store.UpdateStep(t.Context(), store.Step{RunID: run.ID, Name: "build", Index: 0, Status: store.StatusFailed, Reason: "a\rb\r\nc"}); err != nil {
		t.Fatal(err)
	}
	b := f.signIn(t, viewerSecret)
	raw := hostileFirstEvent(t, b, fmt.Sprintf("/runs/%d", run.ID))
	evs := hostileSSE(raw)
	if len(evs) != 1 || evs[0].name != "live" {
		var names []string
		for _, e := range evs {
			names = append(names, e.name)
		}
		t.Fatalf("the first live event split into %d events %v:\n%q", len(evs), names, raw)
	}
	if !strings.Contains(evs[0].data, `id="run-reason"`) || !strings.Contains(evs[0].data, "event: signedout") {
		t.Errorf("the live event lacks the run's reason, as text:\n%s", evs[0].data)
	}
}

// TestHostileSigninNext: ?next= after sign-in stays on this site. A tab
// (or newline) in it once led off-site: browsers drop tabs from a URL, so
// a Location of "/<TAB>/evil.example" is "//evil.example".
func TestHostileSigninNext(t *testing.T) {
	f := newUIFixture(t)
	signed := f.signIn(t, viewerSecret)
	for _, next := range []string{
		"//evil.example/", "/\\evil.example/", "/\t/evil.example/", "/\n/evil.example", "/\r/evil.example",
		"\t//evil.example/", " //evil.example/", "/\x00/evil.example", "/\x7f/evil.example", "/\\/evil.example",
		"https://evil.example/", "javascript:alert(1)", "http:evil.example", "%2F%2Fevil.example", "",
	} {
		// Signed in already: GET /signin sends the browser on at once.
		req, _ := http.NewRequest(http.MethodGet, f.ui+"/signin?next="+url.QueryEscape(next), nil)
		hostileLocal(t, "GET /signin next="+fmt.Sprintf("%q", next), hostileRaw(t, signed, req))
		// Signing in.
		req, _ = http.NewRequest(http.MethodPost, f.ui+"/signin", strings.NewReader(url.Values{"token": {viewerSecret}, "next": {next}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		hostileLocal(t, "POST /signin next="+fmt.Sprintf("%q", next), hostileRaw(t, newBrowser(t, f.ui), req))
	}
	// A path here is kept, query and all.
	a := signed.get("/signin?next=" + url.QueryEscape("/runs?source=demo&page=2"))
	if a.header.Get("Location") != "/runs?source=demo&page=2" {
		t.Errorf("a local next was not kept: %q", a.header.Get("Location"))
	}
}

// hostileRaw sends req with b's cookies and returns the answer as sent:
// no Location is parsed, so one a client would refuse is seen too.
func hostileRaw(t *testing.T, b *browser, req *http.Request) uiAnswer {
	t.Helper()
	for _, c := range b.c.Jar.Cookies(req.URL) {
		req.AddCookie(c)
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return uiAnswer{resp.StatusCode, string(body), resp.Header}
}

// hostileLocal fails unless a is a redirect a browser follows on this
// site only.
func hostileLocal(t *testing.T, what string, a uiAnswer) {
	t.Helper()
	loc := a.header.Get("Location")
	if a.code != http.StatusSeeOther {
		t.Errorf("%s: %d, want 303", what, a.code)
		return
	}
	// As a browser reads it: tabs and newlines dropped, leading and
	// trailing controls and spaces trimmed, \ as /.
	seen := strings.Map(func(r rune) rune {
		switch r {
		case '\t', '\n', '\r':
			return -1
		case '\\':
			return '/'
		}
		return r
	}, strings.Trim(loc, "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f "))
	for _, r := range loc {
		if r < 0x20 || r == 0x7f {
			t.Errorf("%s: Location %q holds a control character", what, loc)
			return
		}
	}
	if !strings.HasPrefix(seen, "/") || strings.HasPrefix(seen, "//") {
		t.Errorf("%s: Location %q leaves the site (a browser reads %q)", what, loc, seen)
	}
}

// hostileOpenLive opens /live?path=/ as b and returns the answer, open;
// cancel closes it.
func hostileOpenLive(t *testing.T, b *browser) (*http.Response, context.CancelFunc) {
	t.Helper()
	// A bound against a hang only.
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b.base+"/live?path=/", nil)
	resp, err := b.c.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); resp.Body.Close() })
	return resp, func() { cancel(); resp.Body.Close() }
}

// TestHostileLiveStreamsBounded: one session could open any number of
// live streams, each rendering its page every Poll. Now past
// maxLiveStreams it is told to close some; other sessions are not
// affected, and a closed stream frees its place.
func TestHostileLiveStreamsBounded(t *testing.T) {
	f := newUIFixture(t)
	b := f.signIn(t, viewerSecret)
	var closers []context.CancelFunc
	for i := range maxLiveStreams {
		resp, cancel := hostileOpenLive(t, b)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("stream %d: %d", i, resp.StatusCode)
		}
		closers = append(closers, cancel)
	}
	resp, _ := hostileOpenLive(t, b)
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("stream %d of one session: %d, want 429", maxLiveStreams+1, resp.StatusCode)
	}
	if resp, _ := hostileOpenLive(t, f.signIn(t, viewerSecret)); resp.StatusCode != http.StatusOK {
		t.Fatalf("another session's stream: %d", resp.StatusCode)
	}
	closers[0]()
	// The server sees the close at its next poll; wait for that, bounded
	// only against a hang.
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, _ := hostileOpenLive(t, b)
		if resp.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a closed stream never freed its place: %d", resp.StatusCode)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
