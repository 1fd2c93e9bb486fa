package watcher

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ferrycd/ferry/internal/gitauth/sshtest"
	"github.com/ferrycd/ferry/store"
)

// trickle writes one byte of b every gap until the client leaves; b is
// repeated, so it never ends.
func trickle(w io.Writer, flush func(), b []byte, gap time.Duration, done <-chan struct{}) {
	for i := 0; ; i++ {
		select {
		case <-done:
			return
		case <-time.After(gap):
		}
		if _, err := w.Write(b[i%len(b) : i%len(b)+1]); err != nil {
			return
		}
		flush()
	}
}

// stallConn accepts TCP connections and hands each to serve; the
// connections close with the test.
func stallConn(t *testing.T, serve func(c net.Conn, done <-chan struct{})) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { close(done); ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				go io.Copy(io.Discard, c)
				serve(c, done)
			}()
		}
	}()
	return ln.Addr().String()
}

// A hostile Git server keeps the fetch reading: it answers slowly, byte
// by byte and never finishes, or stalls after the SSH banner, in the
// middle of the key exchange, or in the TLS handshake. The source's
// timeout is a hard bound on all of them: each fetch fails saying no
// answer came within it.
func TestHostileGitServerMeetsTheTimeout(t *testing.T) {
	key, _ := sshtest.NewKey(t, "")
	const timeout = 400 * time.Millisecond
	for _, tc := range []struct {
		name string
		url  func(t *testing.T) string
		key  string
	}{
		{"http trickles the advertisement", func(t *testing.T) string {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/x-git-upload-pack-advertisement")
				w.WriteHeader(http.StatusOK)
				w.(http.Flusher).Flush()
				// A pkt-line that says it is long, sent a byte at a time.
				trickle(w, w.(http.Flusher).Flush, []byte("001e# service=git-upload-pack\n0fff"+strings.Repeat("a", 4000)), 20*time.Millisecond, r.Context().Done())
			}))
			t.Cleanup(srv.Close)
			return srv.URL + "/demo.git"
		}, ""},
		{"https stalls the handshake", func(t *testing.T) string {
			addr := stallConn(t, func(c net.Conn, done <-chan struct{}) { <-done })
			return "https://" + addr + "/demo.git"
		}, ""},
		{"ssh stalls after its banner", func(t *testing.T) string {
			addr := stallConn(t, func(c net.Conn, done <-chan struct{}) {
				io.WriteString(c, "SSH-2.0-OpenSSH_9.6\r\n")
				<-done
			})
			return "ssh://git@" + addr + "/srv/demo.git"
		}, key},
		{"ssh trickles its key exchange", func(t *testing.T) string {
			addr := stallConn(t, func(c net.Conn, done <-chan struct{}) {
				io.WriteString(c, "SSH-2.0-OpenSSH_9.6\r\n")
				// A packet length of 4000, then its bytes one by one.
				trickle(c, func() {}, append([]byte{0, 0, 0x0f, 0xa0, 4}, make([]byte, 4000)...), 20*time.Millisecond, done)
			})
			return "ssh://git@" + addr + "/srv/demo.git"
		}, key},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tw := startWatcher(t, Config{})
			tw.add(t, store.Source{Name: "hostile", URL: tc.url(t), SSHKey: tc.key, Timeout: timeout})
			// Bounded only to catch a hang, far beyond the timeout.
			ctx, cancel := context.WithTimeout(context.Background(), 50*timeout)
			defer cancel()
			err := tw.Sync(ctx, "hostile")
			if ctx.Err() != nil {
				t.Fatalf("Sync was still waiting at %v, with a timeout of %v: %v", 50*timeout, timeout, err)
			}
			if err == nil || !strings.Contains(err.Error(), "no answer within 400ms from ") {
				t.Fatalf("Sync: %v, want it to fail saying there was no answer within 400ms", err)
			}
		})
	}
}
