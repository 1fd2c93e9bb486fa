package dispatch

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	neturl "net/url"
	"strings"
	"time"

	"github.com/ferrycd/ferry/environments"
	"github.com/ferrycd/ferry/manifests"
)

// defaultTimeout bounds a call of a function whose timeout the plan does
// not give: the functions' own default (manifests), so a dispatcher never
// waits longer for a function than the function itself would run.
var defaultTimeout = manifests.DefaultTimeout

// headLimit is how much of an answer is kept: enough to say why a call
// failed.
const headLimit = 512

// HTTPInvoker calls functions with plain HTTP at their base URLs, as
// `ferry dispatch` does in a cluster: each function's Service spreads the
// calls over its pods, whose own limits apply.
type HTTPInvoker struct {
	urls     map[string]string
	timeouts map[string]time.Duration
	client   *http.Client
}

var _ Invoker = (*HTTPInvoker)(nil)

// NewHTTPInvoker calls each function of urls (name → base URL) by POSTing
// to "/" of its URL, bounded by its timeout in timeouts (defaultTimeout
// when absent).
func NewHTTPInvoker(urls map[string]string, timeouts map[string]time.Duration) *HTTPInvoker {
	return &HTTPInvoker{urls: urls, timeouts: timeouts, client: newClient()}
}

// newClient is a client of functions: a function's redirect is its
// answer, never followed, so an event (whose data the repository or a
// publisher wrote) is never sent to an address the function chose.
func newClient() *http.Client {
	return &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// Invoke implements Invoker.
func (h *HTTPInvoker) Invoke(ctx context.Context, function string, ev *environments.Event) (int, []byte, error) {
	base, ok := h.urls[function]
	if !ok {
		return 0, nil, fmt.Errorf("function %s has no URL in the dispatch plan", function)
	}
	timeout := cmp.Or(h.timeouts[function], defaultTimeout)
	// why WithoutCancel: a stopping dispatcher lets the call finish; the
	// timeout still bounds it.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	u := strings.TrimRight(base, "/") + "/"
	return send(cctx, h.client, u, ev, headLimit, "function "+function+" at "+u, timeout)
}

// send POSTs ev to url and returns the status and the first limit bytes
// of the answer. what names the callee in errors.
func send(ctx context.Context, c *http.Client, url string, ev *environments.Event, limit int64, what string, timeout time.Duration) (int, []byte, error) {
	req, err := ev.Request(ctx, url)
	if err != nil {
		return 0, nil, fmt.Errorf("%s: %w", what, err)
	}
	resp, err := c.Do(req)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return 0, nil, fmt.Errorf("%s did not answer within %s", what, timeout)
		}
		if ue, ok := err.(*neturl.Error); ok {
			err = ue.Err // its message repeats the URL
		}
		return 0, nil, fmt.Errorf("calling %s: %w", what, err)
	}
	defer resp.Body.Close()
	head, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return 0, nil, fmt.Errorf("%s did not finish its answer within %s", what, timeout)
	}
	// why: the rest is read (up to a bound) so the connection can serve
	// the next call.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, head, nil
}
