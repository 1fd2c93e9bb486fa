package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Live updates: GET /live?path=P is a stream of server-sent events. Each
// Poll it renders P's live part again, as the session, and sends it as a
// "live" event when it differs from the last one sent; the script swaps
// it in. Rendering is what decides "changed", so every page is live with
// no per-page code, and a page shows nothing the API would not show its
// session. When the session ends the stream says "signedout" and closes.

func (u *uiServer) live(w http.ResponseWriter, r *http.Request) {
	s, ok := u.sessions.fromRequest(r, u.tokens)
	if !ok {
		http.Error(w, "sign in first", http.StatusUnauthorized)
		return
	}
	p := r.URL.Query().Get("path")
	target, err := url.Parse(p)
	if err != nil || !localPath(p) || strings.HasPrefix(target.Path, "/live") {
		http.Error(w, "path: give a dashboard page's path, e.g. /environments", http.StatusBadRequest)
		return
	}
	if !u.sessions.openLive(s) {
		http.Error(w, fmt.Sprintf("this session has %d pages open with live updates already; close some, then reload this one", maxLiveStreams), http.StatusTooManyRequests)
		return
	}
	defer u.sessions.closeLive(s)
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc.Flush()

	ctx := r.Context()
	var last []byte
	tick := time.NewTicker(u.cfg.Poll)
	defer tick.Stop()
	keepAlive := time.Now()
	for first := true; ; first = false {
		if !first {
			select {
			case <-ctx.Done():
				return
			case <-u.cfg.Stopping:
				return
			case <-tick.C:
			}
		}
		cur, ok := u.sessions.get(s.key, u.tokens)
		if !ok {
			io.WriteString(w, "event: signedout\ndata: \n\n")
			rc.Flush()
			return
		}
		body, code := u.fragment(ctx, cur, target)
		if code != http.StatusOK {
			continue // a page that fails now keeps what it showed
		}
		if first && liveHash(body) == r.URL.Query().Get("h") {
			// why: the page was drawn from the same data just before; an
			// unchanged page gets no event.
			last = body
			continue
		}
		if !bytes.Equal(body, last) {
			last = body
			io.WriteString(w, "event: live\n")
			// why: an EventSource ends a line at CR too, so a bare CR in
			// what the page shows (a run's reason) would end the data
			// line early and let the rest pose as fields and events. HTML
			// reads CR as LF anyway.
			text := strings.ReplaceAll(strings.ReplaceAll(string(body), "\r\n", "\n"), "\r", "\n")
			for line := range strings.SplitSeq(text, "\n") {
				io.WriteString(w, "data: "+line+"\n")
			}
			io.WriteString(w, "\n")
			rc.Flush()
			keepAlive = time.Now()
		} else if time.Since(keepAlive) > 15*time.Second {
			io.WriteString(w, ": keep-alive\n\n")
			rc.Flush()
			keepAlive = time.Now()
		}
	}
}

// fragment renders target's live part as s.
func (u *uiServer) fragment(ctx context.Context, s *uiSession, target *url.URL) ([]byte, int) {
	ctx = context.WithValue(context.WithValue(ctx, fragmentKey{}, true), sessionKey{}, s)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target.RequestURI(), nil)
	if err != nil {
		return nil, http.StatusBadRequest
	}
	rec := newRecorder()
	u.mux.ServeHTTP(rec, req)
	if rec.code == http.StatusOK && !strings.HasPrefix(rec.header.Get("Content-Type"), "text/html") {
		// why: only a page has a live part; an asset swapped into #live
		// would replace the page with its text.
		return nil, http.StatusUnsupportedMediaType
	}
	return rec.body.Bytes(), rec.code
}

// maxLiveStreams bounds the live streams one session holds open. why:
// each renders its page every Poll; a script opening thousands would
// have ferry render thousands of pages a second. A person's open tabs
// stay well below it.
const maxLiveStreams = 32

// openLive counts a live stream of s, or says false when s has
// maxLiveStreams open already.
func (ss *sessions) openLive(s *uiSession) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.live == nil {
		ss.live = map[[sha256.Size]byte]int{}
	}
	if ss.live[s.key] >= maxLiveStreams {
		return false
	}
	ss.live[s.key]++
	return true
}

func (ss *sessions) closeLive(s *uiSession) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.live[s.key]--; ss.live[s.key] <= 0 {
		delete(ss.live, s.key)
	}
}
