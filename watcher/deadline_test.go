package watcher

import (
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrycd/ferry/internal/gitauth/sshtest"
	"github.com/ferrycd/ferry/store"
)

// hungServer accepts connections and never writes a byte: a Git server
// that hangs. closed receives once for each connection the client gives
// up.
type hungServer struct {
	ln     net.Listener
	closed chan struct{}
	mu     sync.Mutex
	conns  []net.Conn
}

func newHungServer(t *testing.T) *hungServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &hungServer{ln: ln, closed: make(chan struct{}, 100)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h.mu.Lock()
			h.conns = append(h.conns, c)
			h.mu.Unlock()
			go func() {
				io.Copy(io.Discard, c) // until the client closes it
				h.closed <- struct{}{}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		h.mu.Lock()
		for _, c := range h.conns {
			c.Close()
		}
		h.mu.Unlock()
	})
	return h
}

// A server that accepts and never answers fails the fetch at the source's
// timeout, over HTTP and over SSH (whose handshake go-git does not bound
// by the context): the status says "no answer within" the timeout and
// what to do, the connection is closed, and failures count up.
func TestHungServer(t *testing.T) {
	key, _ := sshtest.NewKey(t, "")
	for _, tc := range []struct {
		name string
		url  func(addr string) string
		key  string
	}{
		{"http", func(addr string) string { return "http://" + addr + "/git/demo.git" }, ""},
		{"ssh", func(addr string) string { return "ssh://git@" + addr + "/srv/demo.git" }, key},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hung := newHungServer(t)
			tw := startWatcher(t, Config{})
			const timeout = 300 * time.Millisecond
			tw.add(t, store.Source{Name: "hung", URL: tc.url(hung.ln.Addr().String()), SSHKey: tc.key, Timeout: timeout})
			// Add fetches at once, and each Sync once more.
			for i := 1; i <= 2; i++ {
				// Bounded only to catch a hang, far beyond the timeout.
				ctx, cancel := context.WithTimeout(context.Background(), 100*timeout)
				err := tw.Sync(ctx, "hung")
				hang := ctx.Err()
				cancel()
				if err == nil || !strings.Contains(err.Error(), "no answer within 300ms from ") || hang != nil {
					t.Fatalf("Sync %d: %v, want it to fail saying there was no answer within 300ms", i, err)
				}
				st, _ := tw.Status("hung")
				if st.Failures < i || !strings.Contains(st.LastError, "check that the Git server answers") ||
					!strings.Contains(st.LastError, "raise the source's timeout") {
					t.Errorf("status after %d hung fetches: %+v", i, st)
				}
				select {
				case <-hung.closed:
				case <-time.After(100 * timeout):
					t.Fatalf("fetch %d left its connection to the hung server open", i)
				}
			}
		})
	}
}

// A source without a timeout of its own gets the watcher's, 60 s unless
// set.
func TestDefaultTimeout(t *testing.T) {
	tw := startWatcher(t, Config{})
	if got := tw.timeout(store.Source{}); got != 60*time.Second || DefaultFetchTimeout != 60*time.Second {
		t.Errorf("default timeout %v (DefaultFetchTimeout %v), want 60s", got, DefaultFetchTimeout)
	}
	if got := tw.timeout(store.Source{Timeout: 5 * time.Minute}); got != 5*time.Minute {
		t.Errorf("a source's own timeout: %v, want 5m", got)
	}
	tw2 := startWatcher(t, Config{FetchTimeout: time.Second})
	if got := tw2.timeout(store.Source{}); got != time.Second {
		t.Errorf("Config.FetchTimeout 1s: %v", got)
	}
	if err := tw.Add(context.Background(), store.Source{Name: "neg", URL: "/srv/x", Branch: "main", Interval: time.Minute, Timeout: -time.Second}); err == nil ||
		!strings.Contains(err.Error(), "timeout must not be negative") {
		t.Errorf("a negative timeout: %v", err)
	}
}
