package gitauth

import (
	"context"
	"io"
	"net"
	"net/url"
	"testing"
	"time"

	"golang.org/x/net/proxy"

	"github.com/ferrycd/ferry/internal/gitauth/sshtest"
)

// Bound's proxy dials directly, and the connection ends with the
// operation's context; once released, the proxy dials no more. HTTP needs
// none.
func TestBound(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	closed := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			closed <- err
			return
		}
		defer c.Close()
		_, err = io.Copy(io.Discard, c) // never writes; ends when the client closes
		closed <- err
	}()

	key, _ := sshtest.NewKey(t, "")
	r, err := Check("ssh://git@"+ln.Addr().String()+"/srv/demo.git", Credentials{SSHKey: key}, Use{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	opts, release := r.Bound(ctx)
	u, err := url.Parse(opts.URL)
	if err != nil {
		t.Fatal(err)
	}
	d, err := proxy.FromURL(u, proxy.Direct)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := d.(proxy.ContextDialer).DialContext(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cancel()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("the server saw %v, want the connection closed", err)
		}
	case <-time.After(10 * time.Second): // only a hang takes this long
		t.Fatal("the connection outlived the operation's context")
	}
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Error("the connection still reads after the context ended")
	}
	release()
	if _, err := proxy.FromURL(u, proxy.Direct); err == nil {
		t.Error("a released operation's proxy still dials")
	}

	h, err := Check("https://example.com/demo.git", Credentials{}, Use{})
	if err != nil {
		t.Fatal(err)
	}
	if opts, release := h.Bound(context.Background()); opts.URL != "" {
		t.Errorf("over HTTPS Bound gave a proxy %q; go-git follows the context there", opts.URL)
	} else {
		release()
	}
}
