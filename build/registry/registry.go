package registry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	"github.com/sirupsen/logrus"

	// The filesystem storage driver registers itself with distribution's
	// driver factory when imported; handlers.NewApp finds it by name.
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
)

// Timeouts of the HTTP server. There is deliberately no ReadTimeout or
// WriteTimeout: they bound a whole request or response, and would cut a
// large blob upload or download on a slow link.
const (
	// readHeaderTimeout bounds how long a client may take to send its
	// request headers, so idle half-open connections cannot pile up.
	readHeaderTimeout = 10 * time.Second
	// idleTimeout closes keep-alive connections that have been idle this
	// long; clients reconnect cheaply on loopback.
	idleTimeout = 2 * time.Minute
)

// Config says where a Registry listens and where it keeps its data.
type Config struct {
	// Addr is the host:port to listen on; port 0 picks a free one. The
	// host must be a loopback address (127.0.0.1, ::1, localhost) unless
	// Public is set.
	Addr string
	// Dir is the data folder. Blobs and manifests are stored under it,
	// and survive a restart on the same Dir. It is created if missing.
	Dir string
	// Log receives the registry's own warnings and errors; nil discards
	// them. Requests that succeed, and requests refused for the client's
	// own mistake (a missing blob, a bad name), are not logged.
	Log io.Writer
	// Public allows an Addr that is not loopback. The registry has no
	// authentication: set this only behind authentication of your own.
	Public bool
}

// Registry is an embedded OCI registry. New listens; Serve serves until
// Shutdown.
type Registry struct {
	ln     net.Listener
	srv    *http.Server
	app    *handlers.App
	conns  *freshConns
	cancel context.CancelFunc
}

// New builds a registry that stores its data under cfg.Dir and listens
// on cfg.Addr; the listener is open when New returns, so Addr tells the
// port at once and clients may connect before Serve runs. ctx bounds
// only the set-up; the registry runs until Shutdown.
func New(ctx context.Context, cfg Config) (*Registry, error) {
	if cfg.Dir == "" {
		return nil, errors.New("registry: Config.Dir is empty; give the data folder")
	}
	if err := checkAddr(cfg.Addr, cfg.Public); err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("registry: data folder %s: %w", cfg.Dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("registry: data folder: %w", err)
	}
	secret, err := randomHex(32)
	if err != nil {
		return nil, fmt.Errorf("registry: upload secret: %w", err)
	}

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("registry: listen on %s: %w (is another registry running there? pick another port, or port 0 for a free one)", cfg.Addr, err)
	}
	if !cfg.Public && !isLoopbackIP(ln.Addr()) {
		// A name such as localhost resolved to an address off the machine.
		ln.Close()
		return nil, fmt.Errorf("registry: %s resolved to %s, which is not a loopback address; %s", cfg.Addr, ln.Addr(), publicHint)
	}

	sink := newLogSink(cfg.Log)
	routeLogs()
	// The registry outlives ctx (New's ctx bounds only the set-up), and
	// every context it logs through names sink, which routeLogs uses to
	// send the entry to cfg.Log.
	base := instanceContext{Context: context.WithoutCancel(ctx), sink: sink}
	appCtx, cancel := context.WithCancel(base)
	app, err := newApp(appCtx, appConfig(dir, secret))
	if err != nil {
		cancel()
		ln.Close()
		return nil, fmt.Errorf("registry: %w", err)
	}
	conns := &freshConns{m: map[net.Conn]struct{}{}}
	srv := &http.Server{
		Handler:           app,
		ConnState:         conns.track,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		BaseContext:       func(net.Listener) context.Context { return base },
		ErrorLog:          log.New(sink.lineWriter(), "", 0),
	}
	return &Registry{ln: ln, srv: srv, app: app, conns: conns, cancel: cancel}, nil
}

// Addr is the host:port the registry listens on, with the real port when
// Config.Addr asked for port 0.
func (r *Registry) Addr() string { return r.ln.Addr().String() }

// Serve serves requests until Shutdown, then returns nil.
func (r *Registry) Serve() error {
	err := r.srv.Serve(r.ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting connections, waits for requests in flight
// until ctx is done, then releases the storage. It may be called more
// than once, and before Serve.
func (r *Registry) Shutdown(ctx context.Context) error {
	r.conns.close()
	err := r.srv.Shutdown(ctx)
	// Serve closes the listener, but Serve may never have run.
	if cerr := r.ln.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) {
		err = errors.Join(err, cerr)
	}
	if aerr := r.app.Shutdown(); aerr != nil {
		err = errors.Join(err, aerr)
	}
	r.cancel()
	if err != nil {
		return fmt.Errorf("registry: shut down %s: %w", r.Addr(), err)
	}
	return nil
}

// freshConns tracks connections that have not sent a request yet.
// http.Server.Shutdown waits up to five seconds for those (it cannot tell
// them from connections whose first request is on its way), and HTTP
// clients open them all the time: a transport dials a spare connection
// while it waits for a busy one, and parks it unused. Shutdown closes
// them at once instead.
type freshConns struct {
	mu      sync.Mutex
	closing bool
	m       map[net.Conn]struct{}
}

func (f *freshConns) track(c net.Conn, state http.ConnState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if state != http.StateNew {
		delete(f.m, c)
		return
	}
	if f.closing {
		c.Close()
		return
	}
	f.m[c] = struct{}{}
}

func (f *freshConns) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closing = true
	for c := range f.m {
		c.Close()
	}
	clear(f.m)
}

// appConfig is the configuration of the distribution app: filesystem
// storage under dir, deletes allowed (ferry removes previews' images), no
// redirects (there is no blob store to redirect to), an in-memory cache
// of blob descriptors, no authentication and no health checks.
func appConfig(dir, secret string) *configuration.Configuration {
	cfg := &configuration.Configuration{
		Storage: configuration.Storage{
			"filesystem": configuration.Parameters{"rootdirectory": dir},
			"delete":     configuration.Parameters{"enabled": true},
			"redirect":   configuration.Parameters{"disable": true},
			"cache":      configuration.Parameters{"blobdescriptor": "inmemory"},
		},
	}
	cfg.Log.Level = "warn"
	cfg.Log.AccessLog.Disabled = true
	// The secret signs the state of uploads in progress. A fresh one per
	// process means an upload cut by a restart starts again, which every
	// client does anyway; distribution would log a warning if it had to
	// make one up itself.
	cfg.HTTP.Secret = secret
	return cfg
}

// newApp turns handlers.NewApp's panics on bad configuration into errors.
func newApp(ctx context.Context, cfg *configuration.Configuration) (app *handlers.App, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%v", p)
		}
	}()
	return handlers.NewApp(ctx, cfg), nil
}

const publicHint = "the registry has no authentication, so it must not listen on a network: " +
	"use a loopback address such as 127.0.0.1:5000, or, behind authentication of your own, " +
	"allow it with Config.Public (ferry registry serve --public)"

// checkAddr refuses an address that is malformed, or that is not
// loopback when public is false.
func checkAddr(addr string, public bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("registry: address %q: %w (give host:port, such as 127.0.0.1:5000)", addr, err)
	}
	if public || isLoopbackHost(host) {
		return nil
	}
	return fmt.Errorf("registry: address %q is not a loopback address; %s", addr, publicHint)
}

func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

func isLoopbackIP(a net.Addr) bool {
	tcp, ok := a.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// Logging. Distribution logs through logrus's standard logger, and its
// loggers cannot be replaced from outside its module. What it does take
// from the context is the value under the string key "instance.id",
// which it copies into every entry as a field. Each Registry puts its
// logSink there, and the formatter that routeLogs installs sends entries
// that carry a logSink to it instead of to the standard logger's output.

// instanceKey is the context key distribution reads into each entry.
const instanceKey = "instance.id"

// instanceContext answers instanceKey with the registry's logSink.
type instanceContext struct {
	context.Context
	sink *logSink
}

func (c instanceContext) Value(key any) any {
	if k, ok := key.(string); ok && k == instanceKey {
		return c.sink
	}
	return c.Context.Value(key)
}

var routeOnce sync.Once

// routeLogs installs, once per process, a formatter on logrus's standard
// logger that sends the entries of embedded registries to their sinks
// and formats all others with the formatter that was there before.
func routeLogs() {
	routeOnce.Do(func() {
		std := logrus.StandardLogger()
		std.SetFormatter(&router{next: std.Formatter})
	})
}

type router struct{ next logrus.Formatter }

func (r *router) Format(e *logrus.Entry) ([]byte, error) {
	if s, ok := e.Data[instanceKey].(*logSink); ok {
		s.entry(e)
		return nil, nil // nothing for the standard logger's output
	}
	if purgerEntry(e) {
		return nil, nil
	}
	return r.next.Format(e)
}

// purgerEntry tells the two info lines of distribution's upload purger,
// which logs through the bare standard logger with no context, so no
// registry can be named: housekeeping nobody acts on, dropped rather than
// printed on ferry's output at a random minute of the first hour.
func purgerEntry(e *logrus.Entry) bool {
	return e.Level >= logrus.InfoLevel &&
		(strings.HasPrefix(e.Message, "PurgeUploads starting:") || strings.HasPrefix(e.Message, "Purge uploads finished."))
}

var sinkCount atomic.Int64

// logSink is where one Registry's log entries go.
type logSink struct {
	id     string // names the registry in the standard logger's fields
	format *logrus.TextFormatter
	mu     sync.Mutex
	w      io.Writer // nil: discard
}

func newLogSink(w io.Writer) *logSink {
	return &logSink{
		id:     fmt.Sprintf("ferry-registry-%d", sinkCount.Add(1)),
		format: &logrus.TextFormatter{DisableColors: true, TimestampFormat: time.RFC3339},
		w:      w,
	}
}

// String is how the sink shows if an entry reaches another formatter.
func (s *logSink) String() string { return s.id }

// entry writes e to the sink if it is a warning or worse and not a
// client's own mistake.
func (s *logSink) entry(e *logrus.Entry) {
	if s.w == nil || e.Level > logrus.WarnLevel || clientError(e) {
		return
	}
	data := make(logrus.Fields, len(e.Data))
	for k, v := range e.Data {
		if k != instanceKey && k != "go.version" {
			data[k] = v
		}
	}
	line, err := s.format.Format(&logrus.Entry{Data: data, Time: e.Time, Level: e.Level, Message: e.Message})
	if err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, _ = s.w.Write(line)
}

// clientError reports an entry about a request refused with a 4xx
// status: a client probing for a blob it is about to push, or sending a
// bad name. The client is told; the operator need not be.
func clientError(e *logrus.Entry) bool {
	status, ok := e.Data["http.response.status"].(int)
	return ok && status >= 400 && status < 500
}

// lineWriter adapts the sink for http.Server's ErrorLog.
func (s *logSink) lineWriter() io.Writer { return sinkLines{s} }

type sinkLines struct{ s *logSink }

func (l sinkLines) Write(p []byte) (int, error) {
	l.s.entry(&logrus.Entry{Time: time.Now(), Level: logrus.WarnLevel, Message: strings.TrimSpace(string(p))})
	return len(p), nil
}
