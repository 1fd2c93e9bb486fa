package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// defaultRetryAfter is the wait after a 429 or 503 that says none.
const defaultRetryAfter = 30 * time.Second

// post sends body to u and sorts the answer for the worker: 2xx is done;
// 429 and 503 ask for a wait (Retry-After); other 5xx and network errors
// are retried with back-off; any other answer (4xx: a malformed request,
// a hook that was removed) is permanent. Errors name u's host only: a
// webhook's URL is often its secret (Slack's is).
func post(ctx context.Context, client *http.Client, u string, body []byte, header http.Header) error {
	host := "the receiver"
	if pu, err := url.Parse(u); err == nil && pu.Host != "" {
		host = pu.Host
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return &PermanentError{Err: fmt.Errorf("POST to %s: a malformed request", host)}
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "ferry")
	// why: a redirect is never followed. Go would send the POST on with
	// the secret URL in Referer, to wherever the receiver says, an
	// address inside ferry's network as well; a moved hook is mended in
	// the configuration.
	c := *client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Do(req)
	if err != nil {
		// why: url.Error repeats the whole URL; only its cause is said.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("POST to %s: %w", host, err)
	}
	defer resp.Body.Close()
	// why: a short excerpt of the answer says why (Slack's no_service);
	// the rest is read off so the connection can be used again.
	excerpt, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	err = fmt.Errorf("POST to %s: %s: %q", host, resp.Status, bytes.TrimSpace(excerpt))
	switch {
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		// why: Location is not repeated: it may carry a secret too.
		return &PermanentError{Err: fmt.Errorf("POST to %s: %s: ferry does not follow redirects; put the new address in the configuration", host, resp.Status)}
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable:
		return &RetryError{After: retryAfter(resp.Header.Get("Retry-After"), time.Now()), Err: err}
	case resp.StatusCode >= 500:
		return err
	case resp.StatusCode == http.StatusRequestTimeout:
		return err
	}
	return &PermanentError{Err: err}
}

// retryAfter reads a Retry-After header: seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), time.Second)
	}
	return defaultRetryAfter
}
