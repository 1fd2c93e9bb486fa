package github

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	gh "github.com/google/go-github/v57/github"

	"github.com/ferrycd/ferry/server/notify"
)

const (
	// minWait is the least wait a rate limit asks for: a reset already
	// past (clocks differ) still waits a moment.
	minWait = time.Second
	// secondaryWait is GitHub's advice when a secondary limit names no
	// wait: at least a minute.
	secondaryWait = time.Minute
)

// sorted sorts a go-github error for the notifier: a rate limit is a
// *notify.RetryError with GitHub's wait; a refusal no retry fixes (400,
// 403, 404, 410, 422) a *notify.PermanentError; anything else (5xx, the
// network, 401 while a token is renewed) stays plain and is retried with
// back-off.
func sorted(what string, err error, now time.Time) error {
	if err == nil {
		return nil
	}
	err = fmt.Errorf("github: %s: %w", what, err)
	var rl *gh.RateLimitError
	if errors.As(err, &rl) {
		return &notify.RetryError{After: max(rl.Rate.Reset.Time.Sub(now), minWait), Err: err}
	}
	var ab *gh.AbuseRateLimitError
	if errors.As(err, &ab) {
		wait := secondaryWait
		if ab.RetryAfter != nil {
			wait = max(*ab.RetryAfter, minWait)
		}
		return &notify.RetryError{After: wait, Err: err}
	}
	var er *gh.ErrorResponse
	if !errors.As(err, &er) || er.Response == nil {
		return err
	}
	if wait, ok := limitWait(er.Response, now); ok {
		return &notify.RetryError{After: wait, Err: err}
	}
	switch er.Response.StatusCode {
	case http.StatusBadRequest, http.StatusForbidden, http.StatusNotFound, http.StatusGone, http.StatusUnprocessableEntity:
		return &notify.PermanentError{Err: err}
	}
	return err
}

// limitWait reads a 429's or 403's Retry-After, or X-RateLimit-Reset
// when X-RateLimit-Remaining is 0 (the headers GitHub documents).
func limitWait(r *http.Response, now time.Time) (time.Duration, bool) {
	if r.StatusCode != http.StatusTooManyRequests && r.StatusCode != http.StatusForbidden {
		return 0, false
	}
	if s, err := strconv.Atoi(r.Header.Get("Retry-After")); err == nil && s >= 0 {
		return max(time.Duration(s)*time.Second, minWait), true
	}
	if r.Header.Get("X-RateLimit-Remaining") == "0" {
		if reset, err := strconv.ParseInt(r.Header.Get("X-RateLimit-Reset"), 10, 64); err == nil {
			return max(time.Unix(reset, 0).Sub(now), minWait), true
		}
	}
	if r.StatusCode == http.StatusTooManyRequests {
		return secondaryWait, true
	}
	return 0, false
}

// isStatus reports whether err is GitHub's answer with that status.
func isStatus(err error, status int) bool {
	var er *gh.ErrorResponse
	return errors.As(err, &er) && er.Response != nil && er.Response.StatusCode == status
}
