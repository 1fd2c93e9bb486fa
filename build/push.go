package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// httpRoundTripper is http.RoundTripper, named for WithTransport.
type httpRoundTripper = http.RoundTripper

type transportWrapper = func(http.RoundTripper) http.RoundTripper

// backoffPolicy is how registry calls are retried.
type backoffPolicy struct {
	steps  int
	first  time.Duration
	factor float64
}

// defaultBackoff tries three times, waiting 1 s then 3 s: enough to ride
// out a registry restart or a proxy hiccup, short enough that a registry
// that is really down is reported within seconds.
var defaultBackoff = backoffPolicy{steps: 3, first: time.Second, factor: 3}

// DefaultRegistryTimeout bounds the wait for a registry's answer to one
// request, once the request is sent: registries answer in well under a
// second, and one finishing a large upload within seconds. A registry that
// accepts the connection and never answers fails the call (after the
// retries) instead of holding the build for good.
const DefaultRegistryTimeout = 60 * time.Second

// pushTimeout bounds one image's push as a whole, which each request's
// bounds do not: a registry that trickles its answers.
const pushTimeout = 30 * time.Minute

// ImageTransferBound bounds one image's whole pull (or push): each answer
// is due within the registry timeout and a body that stops for as long
// fails, but a registry can trickle a byte now and then for ever.
const ImageTransferBound = pushTimeout

// pullBound bounds a release's pull as a whole: its three requests (the
// registry's ping, the manifest, the release's layer), each tried as the
// backoff says and answered within the registry timeout, and the waits
// between tries.
func (o *options) pullBound() time.Duration {
	steps := max(o.backoff.steps, 1)
	bound := time.Duration(3*steps) * o.registryTimeout
	wait := o.backoff.first
	for i := 1; i < steps; i++ {
		bound += wait
		wait = time.Duration(float64(wait) * o.backoff.factor)
	}
	return bound
}

// RegistryTransport is the HTTP transport of ferry's registry calls: go-
// containerregistry's (connecting within 30 s, the TLS handshake within
// 10 s) with each answer's headers due within timeout; a request that
// meets that bound fails with a NoAnswerError.
//
// One transport is kept per timeout, so that every push and pull with the
// same bound shares its idle connections: a transport per call would leave
// each call's connections open until their idle timeout, hundreds in a
// storm of runs.
func RegistryTransport(timeout time.Duration) http.RoundTripper {
	if tr, ok := registryTransports.Load(timeout); ok {
		return tr.(http.RoundTripper)
	}
	tr := remote.DefaultTransport.(*http.Transport).Clone()
	tr.ResponseHeaderTimeout = timeout
	got, _ := registryTransports.LoadOrStore(timeout, &answerBound{inner: tr, timeout: timeout})
	return got.(http.RoundTripper)
}

// registryTransports holds RegistryTransport's transports by timeout.
var registryTransports sync.Map

// answerBound names the bound a request met, which net/http does not.
type answerBound struct {
	inner   http.RoundTripper
	timeout time.Duration
}

func (a *answerBound) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := a.inner.RoundTrip(req)
	if err != nil && req.Context().Err() == nil && strings.Contains(err.Error(), "timeout awaiting response headers") {
		return nil, &NoAnswerError{Host: req.URL.Host, Within: a.timeout}
	}
	if err == nil && resp.Body != nil && resp.Body != http.NoBody {
		resp.Body = newStallBody(resp.Body, req.URL.Host, a.timeout)
	}
	return resp, err
}

// stallBody is an answer's body that fails once no byte of it arrived for
// timeout: headers on time say nothing about a body that then stops.
type stallBody struct {
	inner   io.ReadCloser
	host    string
	timeout time.Duration
	timer   *time.Timer
	stalled atomic.Bool
}

func newStallBody(inner io.ReadCloser, host string, timeout time.Duration) *stallBody {
	b := &stallBody{inner: inner, host: host, timeout: timeout}
	b.timer = time.AfterFunc(timeout, func() {
		b.stalled.Store(true)
		// why: closing the body is what ends a Read blocked on the socket.
		inner.Close()
	})
	return b
}

func (b *stallBody) Read(p []byte) (int, error) {
	n, err := b.inner.Read(p)
	if b.stalled.Load() {
		return n, &NoAnswerError{Host: b.host, Within: b.timeout, Body: true}
	}
	if n > 0 {
		b.timer.Reset(b.timeout)
	}
	return n, err
}

func (b *stallBody) Close() error {
	b.timer.Stop()
	return b.inner.Close()
}

// NoAnswerError is a registry that took the request and did not answer
// within Within. It is temporary, so the call is tried again.
type NoAnswerError struct {
	Host   string
	Within time.Duration
	// Body: the answer began and then no byte of it came for Within.
	Body bool
}

func (e *NoAnswerError) Error() string {
	within := e.Within.String()
	if e.Within >= time.Second && e.Within%time.Second == 0 {
		within = fmt.Sprintf("%ds", e.Within/time.Second) // 60s, not 1m0s
	}
	if e.Body {
		return fmt.Sprintf("the registry %s stopped sending its answer for %s", e.Host, within)
	}
	return fmt.Sprintf("no answer from the registry %s within %s", e.Host, within)
}
func (e *NoAnswerError) Timeout() bool   { return true }
func (e *NoAnswerError) Temporary() bool { return true }

// remoteOptions are the options of every registry call ferry makes.
// insecureHost is the one registry (HOST[:PORT]) that --insecure lets
// ferry reach over plain HTTP, or "".
func (o *options) remoteOptions(insecureHost string) []remote.Option {
	var rt http.RoundTripper = RegistryTransport(o.registryTimeout)
	rt = &plainHTTPGuard{inner: rt, insecureHost: insecureHost}
	if o.transport != nil {
		rt = o.transport(rt)
	}
	return []remote.Option{
		remote.WithTransport(rt),
		remote.WithAuthFromKeychain(o.keychain),
		remote.WithPlatform(o.platform),
		remote.WithUserAgent("ferry/" + BuilderVersion),
		remote.WithRetryPredicate(retryable),
		remote.WithRetryBackoff(remote.Backoff{
			Duration: o.backoff.first,
			Factor:   o.backoff.factor,
			Jitter:   0.1,
			Steps:    o.backoff.steps,
		}),
	}
}

// retryable says whether a failed registry call may succeed if tried
// again: what go-containerregistry calls temporary, a connection cut or
// reset, and a connection refused, which is what a registry restarting
// looks like. A terminalError never is.
func retryable(err error) bool {
	var term *terminalError
	if errors.As(err, &term) {
		return false
	}
	var tmp interface{ Temporary() bool }
	if errors.As(err, &tmp) && tmp.Temporary() {
		return true
	}
	for _, e := range []error{io.EOF, io.ErrUnexpectedEOF, syscall.ECONNRESET, syscall.ECONNREFUSED, syscall.EPIPE} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// plainHTTPGuard refuses plain HTTP to a registry that is not on loopback
// unless the user asked for it, for that registry. go-containerregistry
// falls back to HTTP for private addresses on its own; credentials and
// images must not cross a network in clear text without an explicit
// --insecure, and --insecure for the registry pushed to must not also let
// a base image be fetched in clear text from elsewhere.
type plainHTTPGuard struct {
	inner        http.RoundTripper
	insecureHost string
}

func (g *plainHTTPGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" && req.URL.Host != g.insecureHost && !isLoopback(req.URL.Hostname()) {
		return nil, &terminalError{fmt.Errorf("refusing plain HTTP to %s: it is not on this machine; serve the registry over HTTPS, or pass --insecure if the network is trusted", req.URL.Host)}
	}
	return g.inner.RoundTrip(req)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// terminalError is an error no retry can fix.
type terminalError struct{ err error }

func (e *terminalError) Error() string { return e.err.Error() }
func (e *terminalError) Unwrap() error { return e.err }

// registryError turns an error of a registry call into one that says what
// to do: credentials refused, registry unreachable, or the registry's own
// words.
func registryError(op string, ref fmt.Stringer, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	var noAnswer *NoAnswerError
	if errors.As(err, &noAnswer) {
		return &UnavailableError{fmt.Errorf("%s %s: %w; check that the registry is up and answers (registryTimeout in ferry serve's configuration bounds the wait)", op, ref, noAnswer)}
	}
	var nerr net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &nerr) && nerr.Timeout() {
		return &UnavailableError{fmt.Errorf("%s %s: the registry %s did not answer in time (%v); check that it is up and reachable", op, ref, registryHost(ref), timeoutCause(err))}
	}
	var terr *transport.Error
	if errors.As(err, &terr) {
		switch terr.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			return fmt.Errorf("%s %s: the registry refused the credentials (%d); log in with `docker login %s` or fix the Docker config file (DOCKER_CONFIG): %w", op, ref, terr.StatusCode, registryHost(ref), err)
		}
		return fmt.Errorf("%s %s: %w", op, ref, err)
	}
	var oerr *net.OpError
	if errors.As(err, &oerr) || errors.As(err, &nerr) || strings.Contains(err.Error(), "connection refused") {
		return &UnavailableError{fmt.Errorf("%s %s: the registry is unreachable: %w; check that it runs and the address is right", op, ref, err)}
	}
	return fmt.Errorf("%s %s: %w", op, ref, err)
}

// UnavailableError is a registry call that failed because the registry
// did not answer, or could not be reached: a fault of where the images
// go, not of what was built, so the same call may succeed later. Its
// message says what happened and what to do.
type UnavailableError struct{ err error }

func (e *UnavailableError) Error() string { return e.err.Error() }
func (e *UnavailableError) Unwrap() error { return e.err }

// timeoutCause is which bound a timed-out registry call met, in a few
// words: go-containerregistry wraps the transport's error in its own.
func timeoutCause(err error) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "TLS handshake timeout"):
		return "no TLS handshake"
	case strings.Contains(msg, "i/o timeout") && strings.Contains(msg, "dial"):
		return "could not connect"
	}
	return "the operation's deadline passed"
}

func registryHost(ref fmt.Stringer) string {
	s := ref.String()
	if i := strings.IndexByte(s, '/'); i > 0 {
		return s[:i]
	}
	return s
}

// headDigest reports whether the registry holds the manifest ref. A 404 is
// false with no error; any other failure is an error.
func (b *builder) headDigest(ctx context.Context, ref name.Digest) (bool, error) {
	_, err := remote.Head(ref, append(b.remote, remote.WithContext(ctx))...)
	if err == nil {
		return true, nil
	}
	var terr *transport.Error
	if errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound {
		return false, nil
	}
	return false, registryError("checking", ref, err)
}

// push writes img to ref by digest. Blobs the registry has are skipped
// (remote.Write asks with HEAD first), so an edit of the code pushes the
// code layer, the config and the manifest. progress, if set, hears bytes.
func (b *builder) push(ctx context.Context, ref name.Digest, img v1.Image, progress func(done, total int64)) error {
	ctx, cancel := context.WithTimeout(ctx, pushTimeout)
	defer cancel()
	opts := append(b.remote, remote.WithContext(ctx))
	var updates chan v1.Update
	done := make(chan struct{})
	if progress != nil {
		updates = make(chan v1.Update, 16)
		opts = append(opts, remote.WithProgress(updates))
		go func() {
			defer close(done)
			for u := range updates {
				if u.Error == nil {
					progress(u.Complete, u.Total)
				}
			}
		}()
	} else {
		close(done)
	}
	err := remote.Write(ref, img, opts...)
	<-done // remote.Write closes updates when it returns
	return registryError("pushing", ref, err)
}
