package gitauth

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/go-git/go-git/v5/plumbing/transport"
	"golang.org/x/net/proxy"
)

// boundScheme names ferry's own "proxy". go-git's SSH transport neither
// passes the operation's context to its dial nor bounds the handshake
// after it; the one hook it gives into the connection is the proxy, which
// it looks up by scheme in golang.org/x/net/proxy. A Bound operation's
// proxy URL names its context, and the dialer this scheme makes connects
// directly and closes the connection when that context ends, so that a
// server that accepts and never answers fails the operation at its
// deadline instead of holding it for good.
const boundScheme = "ferry-bound"

var (
	boundCtxs sync.Map // token -> context.Context
	boundNext atomic.Uint64
)

func init() {
	proxy.RegisterDialerType(boundScheme, func(u *url.URL, _ proxy.Dialer) (proxy.Dialer, error) {
		v, ok := boundCtxs.Load(u.Host)
		if !ok {
			return nil, errors.New("the operation this connection was for has ended")
		}
		return boundDialer{v.(context.Context)}, nil
	})
}

// Bound returns what ties go-git's connection for one fetch or push of r
// to ctx (its ProxyOptions), and a function to call when the operation
// ends. Over HTTP(S) go-git follows the context itself and the options
// are empty.
func (r *Remote) Bound(ctx context.Context) (transport.ProxyOptions, func()) {
	if r.keys == nil {
		return transport.ProxyOptions{}, func() {}
	}
	token := "op" + strconv.FormatUint(boundNext.Add(1), 10)
	boundCtxs.Store(token, ctx)
	return transport.ProxyOptions{URL: boundScheme + "://" + token}, func() { boundCtxs.Delete(token) }
}

// boundDialer dials directly; the connection lives no longer than ctx.
type boundDialer struct{ ctx context.Context }

func (d boundDialer) Dial(network, addr string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, addr)
}

func (d boundDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(d.ctx, cancel)
	defer stop()
	var nd net.Dialer
	conn, err := nd.DialContext(dctx, network, addr)
	if err != nil {
		return nil, err
	}
	// The handshake and everything after it read this connection; closing
	// it is what makes them return.
	context.AfterFunc(d.ctx, func() { conn.Close() })
	return conn, nil
}
