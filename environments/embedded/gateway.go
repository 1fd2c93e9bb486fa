package embedded

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/ferrycd/ferry/environments"
	"github.com/ferrycd/ferry/environments/dispatch"
	"net/http"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferrycd/ferry/internal/httpstatus"
)

// Gateway limits and names.
const (
	// maxRequestBody is the largest request body the gateway forwards:
	// the common limit of function platforms (AWS Lambda's 6 MB), enough
	// for JSON events and small uploads.
	maxRequestBody = 6 << 20
	// defaultMaxInFlight is Scale.Concurrency's default.
	defaultMaxInFlight = 100
	// gatewayMetricsPath serves the gateway's metrics. "_ferry" is not a
	// DNS label, so no environment can take it.
	gatewayMetricsPath = "/_ferry/metrics"
	// hostSuffix addresses an environment by name: dev.localhost, which
	// resolves to loopback without any set-up on most systems.
	hostSuffix = ".localhost"
	// ceTypeHTTP is the type of the event a plain request becomes.
	ceTypeHTTP = "dev.ferry.http.request"
)

// gatewayBuckets are the upper bounds of ferry_gateway_duration_seconds:
// Prometheus' defaults with 1 ms in front, since a warm call through
// loopback often takes less than 5 ms.
var gatewayBuckets = [...]float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// backend is a function the gateway can call: its running instance,
// started on demand.
type backend interface {
	// acquire returns the base URL (http://127.0.0.1:PORT) of a healthy
	// instance, starting one first when the function is scaled to zero
	// (cold reports that it did); done must be called when the request is
	// over.
	acquire(ctx context.Context) (url string, cold bool, done func(), err error)
}

// gatewayRoute sends the requests of one HTTPTrigger to a function.
type gatewayRoute struct {
	Path        string   // the HTTPTrigger's path, e.g. /hello; cleaned by setRoutes
	Methods     []string // empty means every method; upper-cased by setRoutes
	Function    string
	Timeout     time.Duration // a call longer than this answers 504; 0 means 30 s
	MaxInFlight int           // calls at once; more answer 429 at once; 0 means 100
	Backend     backend
	// Trigger is the HTTPTrigger's name, counted in the trigger metrics;
	// "" for the invoke route.
	Trigger string
	// Log is the function's log, which gets an access line per call; nil
	// writes none.
	Log *FunctionLog
	// Untrusted answers (a preview's: a pull request's code) set no
	// cookie and are sandboxed pages: every environment shares the
	// gateway's origin, which theirs must not act as.
	Untrusted bool
}

// untrustedCSP makes an untrusted answer, shown as a page, a page of an
// origin of its own: its scripts run, but read neither the gateway's
// cookies nor its other environments' answers.
const untrustedCSP = "sandbox allow-scripts allow-forms allow-popups allow-modals allow-downloads"

// gateway is the one HTTP listener of every environment. Requests read
// an immutable routing table through an atomic pointer, so a request
// takes no lock and sees one environment's old routes or its new ones,
// never a mix.
type gateway struct {
	table atomic.Pointer[gatewayTable]
	pool  *connPool

	// triggerStats count what the triggers of every environment did; the
	// gateway serves them with its own metrics.
	triggerStats *dispatch.Metrics
	// metrics is what /_ferry/metrics serves (metrics_gateway.go).
	metrics *prometheus.Registry

	// mu serialises setRoutes and guards stats.
	mu sync.Mutex
	// stats of each environment's functions, by environment then
	// function. They outlive a setRoutes that keeps the function, so
	// counters do not reset on every release.
	stats map[string]map[string]*routeStats
	// removed says, per environment the host forgot, why its URLs answer
	// 404 (guarded by mu; read only on the way to a 404).
	removed map[string]string
}

// gatewayTable is the routing table: environment name to its routes.
// It is never changed once published; setRoutes publishes a new one.
type gatewayTable struct {
	envs map[string]*gatewayEnv
}

type gatewayEnv struct {
	paths map[string]*gatewayPath // by cleaned route path
}

// gatewayPath is the routes of one path: two triggers may share a path
// when their methods do not overlap.
type gatewayPath struct {
	byMethod map[string]*boundRoute
	any      *boundRoute // the route with no methods, if any
	allow    string      // the Allow header of a 405
}

// boundRoute is a route as the gateway serves it, with what a request
// needs worked out once.
type boundRoute struct {
	gatewayRoute
	source string // the event's source, for a plain request
	stats  *routeStats
	// trigger counts the calls of an HTTPTrigger's route; nil for others.
	trigger *dispatch.Counters
}

// routeStats counts the calls of one function in one environment. Only
// atomics: the hot path takes no lock.
type routeStats struct {
	env, function string

	calls    [10]atomic.Uint64 // by status class: calls[2] is 2xx
	failures atomic.Uint64
	cold     atomic.Uint64
	inFlight atomic.Int64
	// overdue are the calls in flight past their timeout (answered 504,
	// their handler still running); restarts counts the restarts they
	// caused (instance.overran).
	overdue  atomic.Int64
	restarts atomic.Uint64
	// waiters are the trigger calls waiting for a slot (takeWait); freed
	// is closed, and replaced, when a slot frees while any wait.
	waiters atomic.Int64
	mu      sync.Mutex
	freed   chan struct{}
	// buckets holds the observations per bucket, not cumulative; the last
	// one is +Inf.
	buckets [len(gatewayBuckets) + 1]atomic.Uint64
	sumNs   atomic.Uint64
}

// newGateway returns a gateway serving no environment.
func newGateway() *gateway {
	g := &gateway{stats: map[string]map[string]*routeStats{}, removed: map[string]string{}, pool: newConnPool(), triggerStats: dispatch.NewMetrics()}
	g.metrics = newGatewayRegistry(g)
	g.table.Store(&gatewayTable{envs: map[string]*gatewayEnv{}})
	return g
}

// copyBufferPool lends the forwarder its 32 KiB copy buffers.
var copyBufferPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// setRoutes replaces env's routes with routes in one step; nil or empty
// removes env. A route's path is cleaned and its methods upper-cased.
// Two routes on one path with a method in common: the later wins, as the
// manifests refuse such triggers before they get here.
func (g *gateway) setRoutes(env string, routes []gatewayRoute) {
	g.mu.Lock()
	defer g.mu.Unlock()

	old := g.table.Load()
	next := &gatewayTable{envs: make(map[string]*gatewayEnv, len(old.envs)+1)}
	for name, e := range old.envs {
		if name != env {
			next.envs[name] = e
		}
	}
	if len(routes) == 0 {
		delete(g.stats, env)
		g.table.Store(next)
		return
	}

	oldStats := g.stats[env]
	stats := map[string]*routeStats{}
	e := &gatewayEnv{paths: map[string]*gatewayPath{}}
	for _, rt := range routes {
		rt.Path = cleanRoutePath(rt.Path)
		methods := make([]string, 0, len(rt.Methods))
		for _, m := range rt.Methods {
			methods = append(methods, strings.ToUpper(m))
		}
		rt.Methods = methods
		if rt.Timeout <= 0 {
			rt.Timeout = defaultFunctionTimeout
		}
		if rt.MaxInFlight <= 0 {
			rt.MaxInFlight = defaultMaxInFlight
		}
		st := stats[rt.Function]
		if st == nil {
			st = oldStats[rt.Function]
		}
		if st == nil {
			st = &routeStats{env: env, function: rt.Function}
		}
		stats[rt.Function] = st
		b := &boundRoute{
			gatewayRoute: rt,
			source:       "/" + env + rt.Path,
			stats:        st,
		}
		if rt.Trigger != "" {
			b.trigger = g.triggerStats.Counters(env, dispatch.KindHTTP, rt.Trigger)
		}
		p := e.paths[rt.Path]
		if p == nil {
			p = &gatewayPath{byMethod: map[string]*boundRoute{}}
			e.paths[rt.Path] = p
		}
		if len(rt.Methods) == 0 {
			p.any = b
		}
		for _, m := range rt.Methods {
			p.byMethod[m] = b
		}
	}
	for _, p := range e.paths {
		p.allow = strings.Join(slices.Sorted(func(yield func(string) bool) {
			for m := range p.byMethod {
				if !yield(m) {
					return
				}
			}
		}), ", ")
	}
	next.envs[env] = e
	g.stats[env] = stats
	g.table.Store(next)
}

// setRemoved makes env's URLs answer 404 with why (its routes are gone
// already); "" forgets that, for an environment made again.
func (g *gateway) setRemoved(env, why string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if why == "" {
		delete(g.removed, env)
		return
	}
	g.removed[env] = why
}

func (g *gateway) removedWhy(env string) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.removed[env]
}

// cleanRoutePath is a route's path as the table keys it: rooted, clean,
// with no trailing slash.
func cleanRoutePath(p string) string {
	return path.Clean("/" + p)
}

// ServeHTTP routes a request to its function, or serves the metrics.
func (g *gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == gatewayMetricsPath {
		g.serveMetrics(w, r)
		return
	}
	env, routePath := address(r)
	e := g.table.Load().envs[env]
	if e == nil {
		if env == "" {
			writeError(w, http.StatusNotFound, "no environment in the path: call /<environment>/<path>")
			return
		}
		if why := g.removedWhy(env); why != "" {
			writeError(w, http.StatusNotFound, why)
			return
		}
		// why: the gateway knows only environments that run a release, so
		// a configured one before its first deploy looks the same as a typo.
		writeError(w, http.StatusNotFound, fmt.Sprintf("environment %q runs nothing here: it has no release yet, or there is no such environment (ferry status lists them)", env))
		return
	}
	// why: a trailing slash is tolerated, and /dev/ is the route /.
	if len(routePath) > 1 && routePath[len(routePath)-1] == '/' {
		routePath = routePath[:len(routePath)-1]
	}
	p := e.paths[routePath]
	if p == nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no route %s in environment %s", routePath, env))
		return
	}
	rt := p.byMethod[r.Method]
	if rt == nil {
		rt = p.any
	}
	if rt == nil {
		w.Header().Set("Allow", p.allow)
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s %s in environment %s answers %s only", r.Method, routePath, env, p.allow))
		return
	}
	g.call(w, r, rt)
}

// address splits a request into its environment and route path: by the
// Host header for <env>.localhost, else by the first path segment.
func address(r *http.Request) (env, routePath string) {
	if env, ok := envFromHost(r.Host); ok {
		return env, r.URL.Path
	}
	rest := strings.TrimPrefix(r.URL.Path, "/")
	env, routePath, ok := strings.Cut(rest, "/")
	if !ok {
		return env, "/"
	}
	return env, "/" + routePath
}

// envFromHost returns env of a Host header <env>.localhost[:port], in
// any case.
func envFromHost(host string) (string, bool) {
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		host = host[:i]
	}
	host = strings.TrimSuffix(host, ".") // the fully qualified form
	if len(host) <= len(hostSuffix) || !strings.EqualFold(host[len(host)-len(hostSuffix):], hostSuffix) {
		return "", false
	}
	return strings.ToLower(host[:len(host)-len(hostSuffix)]), true
}

// call is one request on its way to a function.
type call struct {
	sw     httpstatus.Writer
	route  *boundRoute
	reqCtx context.Context // the client's request
	ctx    context.Context // reqCtx with the function's timeout
	ceID   string          // the event's id: the client's, or the one prepare gave it
	url    string          // the instance's base URL, from acquire
	// release frees the call's slot in the gateway and in its backend;
	// handedOff: awaitEnd calls it once the function has answered.
	release   func()
	handedOff bool
}

// call forwards r to rt's function within its limits, and counts it.
func (g *gateway) call(w http.ResponseWriter, r *http.Request, rt *boundRoute) {
	start := time.Now()
	st := rt.stats
	c := &call{sw: httpstatus.New(w), route: rt, reqCtx: r.Context(), ceID: environments.EventID(r.Header)}
	defer func() {
		code, took := c.sw.Status(), time.Since(start)
		st.observe(code, took)
		if rt.trigger != nil {
			rt.trigger.Deliveries.Add(1)
			if code >= 500 {
				rt.trigger.Failures.Add(1)
			}
		}
		if rt.Log != nil {
			rt.Log.Add(streamAccess, 0, accessLine(r, code, took, c.ceID))
		}
	}()

	if r.ContentLength > maxRequestBody {
		writeError(&c.sw, http.StatusRequestEntityTooLarge, tooLargeMessage)
		return
	}
	if !st.take(int64(rt.MaxInFlight)) {
		c.sw.Header().Set("Retry-After", "1")
		writeError(&c.sw, http.StatusTooManyRequests, fmt.Sprintf("function %s is serving %d calls, its limit", rt.Function, rt.MaxInFlight))
		return
	}
	g.held(c, w, r)
}

// held forwards c, whose slot is taken, to its function within its
// timeout: the gateway's calls and the triggers' (invoke) alike. w is the
// server's writer under c.sw.
func (g *gateway) held(c *call, w http.ResponseWriter, r *http.Request) {
	rt, st := c.route, c.route.stats
	// why: the slot is the call's until its handler has ended, which for a
	// call the gateway stopped waiting for is later than this function's
	// return: awaitEnd frees it then (handedOff).
	c.release = st.free
	defer func() {
		if !c.handedOff {
			c.release()
		}
	}()

	// why: the deadline covers a cold start too: the caller waits for
	// both.
	ctx, cancel := context.WithTimeout(r.Context(), rt.Timeout)
	defer cancel()
	c.ctx = ctx
	url, cold, done, err := rt.Backend.acquire(ctx)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			writeError(&c.sw, http.StatusGatewayTimeout, timeoutMessage(rt))
			return
		}
		writeError(&c.sw, http.StatusServiceUnavailable, fmt.Sprintf("function %s is not available: %v", rt.Function, err))
		return
	}
	if done != nil {
		free := c.release
		c.release = func() { done(); free() }
	}
	c.url = url
	if cold {
		st.cold.Add(1)
	}
	if r.ContentLength != 0 && r.Body != nil {
		// why: w, not c.sw: MaxBytesReader tells the server to close the
		// connection after the answer, through the server's own writer.
		r.Body = http.MaxBytesReader(w, r.Body, maxRequestBody)
	}
	_, host := splitBaseURL(url)
	if err := g.forward(c, r, host); err != nil {
		forwardError(c, err)
	}
}

// invoke calls rt's function with r for a trigger, through what the
// gateway's own calls go through: a slot of the function's concurrency,
// shared with them (waited for up to the function's timeout), the
// function's timeout, answered 504 at its deadline, and a timed-out call
// keeps its slot and counts as overdue until its handler ends. ctx ends
// the wait for a slot; r's context must not end before its call does (a
// trigger's call is never cut off). It returns the answer's status and the
// start of its body, or an error when no slot freed.
func (g *gateway) invoke(ctx context.Context, r *http.Request, rt *boundRoute) (code int, head []byte, err error) {
	ans := &triggerAnswer{header: http.Header{}}
	if !rt.stats.takeWait(ctx, int64(rt.MaxInFlight), rt.Timeout) {
		if ctx.Err() != nil {
			return 0, nil, errors.New("the trigger stopped while it waited for a free slot of the function")
		}
		return 0, nil, fmt.Errorf("function %s was serving %d calls, its concurrency, for all of its %s timeout: no slot freed for this one", rt.Function, rt.MaxInFlight, rt.Timeout)
	}
	start := time.Now()
	c := &call{sw: httpstatus.New(ans), route: rt, reqCtx: r.Context(), ceID: environments.EventID(r.Header)}
	// why: each attempt is a call of the function, counted and logged as
	// the gateway's are; the trigger's own counters count the delivery.
	defer func() {
		took := time.Since(start)
		rt.stats.observe(code, took)
		if rt.Log != nil {
			rt.Log.Add(streamAccess, 0, accessLine(r, code, took, c.ceID))
		}
	}()
	func() {
		// why: the forwarder aborts an answer cut short as a server's
		// handler does; here no server recovers it.
		defer func() {
			if v := recover(); v != nil {
				if v != http.ErrAbortHandler {
					panic(v)
				}
				c.sw.WriteHeader(http.StatusBadGateway)
				ans.cut = true
			}
		}()
		g.held(c, ans, r)
	}()
	if ans.cut {
		return http.StatusBadGateway, fmt.Appendf(nil, "function %s: its answer was cut short", rt.Function), nil
	}
	return c.sw.Status(), ans.head, nil
}

// triggerAnswer is the writer of a trigger's call: it keeps the first
// 512 bytes of the answer, which explain a failure, and drops the rest.
type triggerAnswer struct {
	header http.Header
	head   []byte
	cut    bool
}

func (a *triggerAnswer) Header() http.Header { return a.header }
func (a *triggerAnswer) WriteHeader(int)     {}
func (a *triggerAnswer) Write(b []byte) (int, error) {
	if n := min(len(b), 512-len(a.head)); n > 0 {
		a.head = append(a.head, b[:n]...)
	}
	return len(b), nil
}

const tooLargeMessage = "the request body is larger than 6 MiB, the gateway's limit"

func timeoutMessage(rt *boundRoute) string {
	return fmt.Sprintf("function %s did not answer within %s", rt.Function, rt.Timeout)
}

// splitBaseURL splits http://HOST:PORT into its scheme and host.
func splitBaseURL(base string) (scheme, host string) {
	scheme, host, ok := strings.Cut(base, "://")
	if !ok {
		scheme, host = "http", base
	}
	if i := strings.IndexByte(host, '/'); i >= 0 {
		host = host[:i]
	}
	return scheme, host
}

// streamAccess is the stream of the gateway's lines in a function's log.
const streamAccess = "access"

// accessLine is what the access line of one call says: method, path,
// status, duration and the event's id, so a function's own lines about
// the event can be found. The query is left out: it may carry secrets.
func accessLine(r *http.Request, code int, took time.Duration, ceID string) string {
	line := r.Method + " " + r.URL.Path + " " + strconv.Itoa(code) + " " + took.Round(time.Microsecond).String()
	if ceID != "" {
		line += " ce-id=" + ceID
	}
	return line
}

// forwardError answers a call the forwarder could not complete.
func forwardError(c *call, err error) {
	w := &c.sw
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, tooLargeMessage)
	case c.reqCtx.Err() != nil:
		// why: the client left; no one reads this, but the metrics must
		// not count it as the function's failure. 499 is nginx's code
		// for it.
		w.WriteHeader(499)
	case errors.Is(c.ctx.Err(), context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		// why: the connection's deadline is the call's, and may pass
		// a moment before the context notices.
		writeError(w, http.StatusGatewayTimeout, timeoutMessage(c.route))
	default:
		writeError(w, http.StatusBadGateway, fmt.Sprintf("function %s: %v", c.route.Function, err))
	}
}

// writeError answers code with {"error": msg}.
func writeError(w http.ResponseWriter, code int, msg string) {
	body, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{msg})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	w.Write(append(body, '\n'))
}

// take takes one of limit slots, if one is free. A compare-and-swap,
// not an add undone when over: the count, which the metrics show, never
// passes limit even for a moment.
func (s *routeStats) take(limit int64) bool {
	for {
		n := s.inFlight.Load()
		if n >= limit {
			return false
		}
		if s.inFlight.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// free gives back a slot taken by take or takeWait, and wakes the trigger
// calls waiting for one.
func (s *routeStats) free() {
	s.inFlight.Add(-1)
	if s.waiters.Load() > 0 {
		s.mu.Lock()
		if s.freed != nil {
			close(s.freed)
			s.freed = nil
		}
		s.mu.Unlock()
	}
}

// takeWait takes one of limit slots, waiting for one to free until ctx
// ends or for at most wait; it reports whether it took one. A trigger's
// event waits, where an HTTP caller is answered 429 at once: it has no
// one to retry it but the trigger's own policy.
func (s *routeStats) takeWait(ctx context.Context, limit int64, wait time.Duration) bool {
	if s.take(limit) {
		return true
	}
	s.waiters.Add(1)
	defer s.waiters.Add(-1)
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		// why: the channel is fetched before take tries again, so a slot
		// freed between the two closes this very channel.
		s.mu.Lock()
		if s.freed == nil {
			s.freed = make(chan struct{})
		}
		freed := s.freed
		s.mu.Unlock()
		if s.take(limit) {
			return true
		}
		select {
		case <-freed:
		case <-timer.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// functionStats is the count of env's function, shared by its routes and
// by the triggers that call it; setRoutes keeps it for a function it
// keeps.
func (g *gateway) functionStats(env, function string) *routeStats {
	g.mu.Lock()
	defer g.mu.Unlock()
	stats := g.stats[env]
	if stats == nil {
		stats = map[string]*routeStats{}
		g.stats[env] = stats
	}
	st := stats[function]
	if st == nil {
		st = &routeStats{env: env, function: function}
		stats[function] = st
	}
	return st
}

// observe counts one call answered with code after d.
func (s *routeStats) observe(code int, d time.Duration) {
	s.calls[min(max(code/100, 0), 9)].Add(1)
	if code >= 500 {
		s.failures.Add(1)
	}
	sec := d.Seconds()
	i := 0
	for i < len(gatewayBuckets) && sec > gatewayBuckets[i] {
		i++
	}
	s.buckets[i].Add(1)
	s.sumNs.Add(uint64(d))
}
