package embedded

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferrycd/ferry/build"
	"github.com/ferrycd/ferry/environments"
	"github.com/ferrycd/ferry/environments/dispatch"
	"github.com/ferrycd/ferry/internal/sandbox"
	"github.com/ferrycd/ferry/manifests"
	"github.com/ferrycd/ferry/manifests/v1alpha1"
)

// Defaults of a Target.
const (
	// defaultWarmFor keeps the processes of the release a switch replaced
	// running this long, so that rolling back to it is instant.
	defaultWarmFor = 3 * time.Minute
	// defaultIdleAfter stops a function that may scale to zero once it has
	// had no call for this long.
	defaultIdleAfter = 5 * time.Minute
)

// Config wires a Target.
type Config struct {
	// Environment is the environment's name, the first path segment of its
	// URLs on the gateway.
	Environment string
	// Images unpacks function images; one is shared by every environment.
	Images *images
	// Gateway serves every environment; GatewayURL is where it listens
	// (http://ADDR), for URL.
	Gateway    *gateway
	GatewayURL string
	// LogDir holds one log file per function.
	LogDir string
	// WarmFor and IdleAfter override the defaults above (tests).
	WarmFor, IdleAfter time.Duration
	// NATSURL is the NATS server NATSTriggers subscribe on, and
	// KafkaBrokers the Kafka cluster KafkaTriggers consume from; without
	// them a release with such a trigger is refused.
	NATSURL      string
	KafkaBrokers []string
	// Log hears what triggers report (failed dispatches, skipped ticks).
	Log func(format string, args ...any)
	// Sandbox runs the functions (nil: as ferry itself).
	Sandbox *sandbox.Sandbox
	// Env resolves each function's variables in this environment (nil:
	// plain values only; a secret reference is refused).
	Env EnvResolver
	// Untrusted environments run code no one vetted (a pull request's
	// preview): their HTTP answers set no cookie on the gateway's origin,
	// which every environment shares, and are sandboxed pages.
	Untrusted bool
	// Known returns the environments of the host, for the warning about
	// a trigger placed in none of them (nil: no warning). A func: the
	// host's environments change at run time (previews).
	Known func() []string
}

// Target is the embedded target of one environment.
type Target struct {
	cfg Config

	// mu serialises Apply and Delete, and guards live and warm.
	mu   sync.Mutex
	live *deployment
	// shown is live as Status and URL read it: set with live, read
	// without mu, so a status read (a scrape of the metrics, ferry
	// status) never waits for a deploy that pulls and starts processes.
	shown atomic.Pointer[deployment]
	// warm are the instances of replaced releases, kept running for a
	// rollback until their timers stop them.
	warm map[string]*instance
	// triggers dispatch the live release's cron and NATS triggers.
	triggers   *triggers
	triggerCfg triggerConfig
	// logs are the functions' logs, kept across releases.
	logs *functionLogs
	// removed, once the host removed the environment, says why; Apply
	// and Reload then refuse with it (guarded by mu). A deploy that held
	// the target from before would otherwise start processes no one
	// stops and routes the removed environment's URLs again.
	removed string
}

var _ environments.Target = (*Target)(nil)

// New returns the embedded target of one environment.
func New(cfg Config) (*Target, error) {
	if cfg.Environment == "" || cfg.Images == nil || cfg.Gateway == nil || cfg.LogDir == "" {
		return nil, errors.New("embedded: a target needs an environment, images, a gateway and a log folder")
	}
	if cfg.WarmFor == 0 {
		cfg.WarmFor = defaultWarmFor
	}
	if cfg.IdleAfter == 0 {
		cfg.IdleAfter = defaultIdleAfter
	}
	if cfg.Env == nil {
		cfg.Env = plainEnv
	}
	logf := cfg.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	tc := triggerConfig{Environment: cfg.Environment, NATSURL: cfg.NATSURL, KafkaBrokers: cfg.KafkaBrokers, Log: logf, Gateway: cfg.Gateway,
		Metrics: cfg.Gateway.triggerStats}
	return &Target{cfg: cfg, warm: map[string]*instance{}, triggers: newTriggers(tc), triggerCfg: tc,
		logs: newFunctionLogs(cfg.LogDir, cfg.Environment)}, nil
}

// deployment is a release as it runs: an instance per function.
type deployment struct {
	release   *build.Release
	instances map[string]*instance
}

// instance is one function of a release with its process. It is the
// gateway's backend for the function's routes.
type instance struct {
	key     string // image and settings: two instances with one key are interchangeable
	name    string
	spec    processSpec
	min     int32
	timeout time.Duration
	// redactor hides the function's secrets in what ferry quotes of its
	// answers (nil: none).
	redactor *strings.Replacer

	// concurrency is the function's Scale.Concurrency: as many calls
	// still running past their timeout restart it (overran).
	concurrency int
	// env names the environment, and logf is ferry's log, for the line
	// that says why a function restarted.
	env  string
	logf func(format string, args ...any)

	mu       sync.Mutex
	proc     *process
	gen      *generation   // proc's calls; nil when proc is
	retiring []*generation // replaced processes still finishing calls
	recycled int           // restarts for calls past their timeout
	inFlight int           // calls on every process of the instance
	lastUsed time.Time
	stopped  bool
	idle     *time.Timer
	idleFor  time.Duration
	retire   *time.Timer
}

// generation counts the calls on one process of an instance.
type generation struct {
	proc     *process
	url      string
	inFlight int
	overdue  int // of inFlight, those past their timeout
	// kill, set once the process is retiring, ends its graceful stop:
	// called when only overdue calls are left on it, with the reason the
	// process's log gives.
	kill context.CancelCauseFunc
}

// setProc makes p the process new calls go to; in.mu is held.
func (in *instance) setProc(p *process) {
	in.proc = p
	in.gen = nil
	if p != nil {
		in.gen = &generation{proc: p, url: p.URL()}
	}
}

// acquire implements backend: the running process, started first when the
// function was scaled to zero or restarted.
func (in *instance) acquire(ctx context.Context) (string, bool, func(), error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.stopped {
		return "", false, nil, fmt.Errorf("function %s has been stopped", in.name)
	}
	cold := false
	if in.proc == nil {
		p, err := startProcess(ctx, in.spec)
		if err != nil {
			return "", false, nil, err
		}
		in.setProc(p)
		cold = true
	}
	g := in.gen
	g.inFlight++
	in.inFlight++
	return g.url, cold, func() {
		in.mu.Lock()
		g.inFlight--
		in.inFlight--
		in.lastUsed = time.Now()
		in.killIfDrained(g)
		in.mu.Unlock()
	}, nil
}

// overran implements overrunner: a call on the process at url is still
// running past its timeout. When such calls fill the function's
// concurrency, the function is restarted as a managed runtime recycles an
// environment whose invocations time out: new calls go to a fresh
// process, and the old one gets SIGTERM, then SIGKILL as soon as only
// overdue calls are left on it (or after its StopGrace). Its calls keep
// their slots until their connection ends with it.
func (in *instance) overran(url string) (end func(), restarted bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	g := in.gen
	if g == nil || g.url != url {
		g = nil
		for _, r := range in.retiring {
			if r.url == url {
				g = r
			}
		}
	}
	if g == nil {
		return func() {}, false
	}
	g.overdue++
	limit := in.concurrency
	if limit <= 0 {
		limit = defaultMaxInFlight
	}
	if g == in.gen && !in.stopped && g.overdue >= limit {
		in.recycle(g, limit)
		restarted = true
	}
	in.killIfDrained(g)
	return func() {
		in.mu.Lock()
		g.overdue--
		in.mu.Unlock()
	}, restarted
}

// recycle replaces g, the current process, with a fresh one and retires
// g; in.mu is held.
func (in *instance) recycle(g *generation, limit int) {
	in.recycled++
	timeout := in.spec.Timeout
	if timeout <= 0 {
		timeout = defaultFunctionTimeout
	}
	msg := fmt.Sprintf("function %s restarted: %d calls still running past their %s timeout (concurrency %d)",
		in.name, g.overdue, timeout, limit)
	if in.spec.Log != nil {
		in.spec.Log.Add("ferry", 0, msg)
	}
	if in.logf != nil {
		in.logf("environment %s: %s", in.env, msg)
	}
	in.setProc(nil)
	ctx, kill := context.WithCancelCause(context.Background())
	g.kill = kill
	in.retiring = append(in.retiring, g)
	go func() {
		// why: SIGTERM first, so calls still within their time finish.
		_ = g.proc.Stop(ctx)
		kill(nil)
		in.mu.Lock()
		in.retiring = slices.DeleteFunc(in.retiring, func(r *generation) bool { return r == g })
		in.mu.Unlock()
	}()
	in.killIfDrained(g)
	// why: started now, with in.mu held as a cold start holds it, so that
	// the calls waiting meanwhile find it ready instead of each starting
	// one within its own deadline. A failed start is left to the next
	// call, which tries again and reports it.
	if p, err := startProcess(context.Background(), in.spec); err == nil {
		in.setProc(p)
		in.lastUsed = time.Now()
	}
}

// killIfDrained kills a retiring process once every call left on it is
// past its timeout: nothing on it can answer in time any more; in.mu is
// held.
func (in *instance) killIfDrained(g *generation) {
	if g.kill != nil && g.inFlight <= g.overdue {
		// why: the process's stop logs the kill with this cause, once.
		why := errors.New("a newer process replaced it and no call is left on it")
		if g.overdue > 0 {
			why = fmt.Errorf("a newer process replaced it and only calls past their timeout are left on it (%d)", g.overdue)
		}
		g.kill(why)
		g.kill = nil
	}
}

// start runs the process now: Apply starts every new function once, so a
// function that cannot start fails the Apply instead of its first caller.
func (in *instance) start(ctx context.Context) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.proc != nil {
		return nil
	}
	p, err := startProcess(ctx, in.spec)
	if err != nil {
		return err
	}
	in.setProc(p)
	in.lastUsed = time.Now()
	if in.min == 0 {
		in.scheduleIdle()
	}
	return nil
}

// scheduleIdle stops the process of a function that may scale to zero
// once it has been idle for idleFor; in.mu is held.
func (in *instance) scheduleIdle() {
	in.idle = time.AfterFunc(in.idleFor, func() {
		in.mu.Lock()
		defer in.mu.Unlock()
		if in.stopped {
			return
		}
		if in.proc == nil {
			// Idle already; look again later, for after the next cold start.
			in.idle.Reset(in.idleFor)
			return
		}
		// why: a call past its timeout does not keep the process up; it
		// ends with it.
		if in.gen.inFlight > in.gen.overdue || time.Since(in.lastUsed) < in.idleFor {
			wait := in.idleFor - time.Since(in.lastUsed)
			if wait < time.Second {
				wait = time.Second
			}
			in.idle.Reset(wait)
			return
		}
		p := in.proc
		in.setProc(nil)
		go p.Stop(context.Background())
		in.idle.Reset(in.idleFor)
	})
}

// stop ends the instance for good.
func (in *instance) stop(ctx context.Context) error {
	in.mu.Lock()
	in.stopped = true
	p := in.proc
	in.setProc(nil)
	retiring := slices.Clone(in.retiring)
	if in.idle != nil {
		in.idle.Stop()
	}
	if in.retire != nil {
		in.retire.Stop()
	}
	in.mu.Unlock()
	var errs []error
	for _, g := range retiring {
		errs = append(errs, g.proc.Stop(ctx))
	}
	if p != nil {
		errs = append(errs, p.Stop(ctx))
	}
	return errors.Join(errs...)
}

func (in *instance) state() (string, int, string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	switch {
	case in.stopped:
		return "stopped", 0, ""
	case in.proc == nil && in.recycled > 0 && len(in.retiring) > 0:
		return string(phaseRestarting), in.recycled, "calls still running past their timeout filled its concurrency"
	case in.proc == nil:
		return "idle", in.recycled, "scaled to zero; the next call starts it"
	}
	st := in.proc.State()
	msg := ""
	if st.Phase == phaseRestarting {
		msg = st.LastExit
	}
	return string(st.Phase), st.Restarts + in.recycled, msg
}

// Apply implements environments.Target.
func (t *Target) Apply(ctx context.Context, rel *build.Release) error {
	if rel == nil || rel.Set == nil {
		return errors.New("embedded: no release to apply")
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.removed != "" {
		return errors.New(t.removed)
	}
	if t.live != nil && t.live.release.Digest == rel.Digest {
		return nil // already live: Apply is idempotent
	}
	return t.apply(ctx, rel)
}

// Reload applies the live release again with each function's variables
// resolved anew: a function whose variables changed (a secret set since)
// starts again, healthy before it replaces the running one; the others
// keep their processes. With nothing live it does nothing.
func (t *Target) Reload(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.removed != "" {
		return errors.New(t.removed)
	}
	if t.live == nil {
		return nil
	}
	return t.apply(ctx, t.live.release)
}

// apply converges to rel; t.mu is held.
func (t *Target) apply(ctx context.Context, rel *build.Release) error {

	// Every function of the release gets an instance: the live one or a
	// warm one when nothing about it changed, else a new one, started now
	// and healthy before anything switches.
	next := &deployment{release: rel, instances: map[string]*instance{}}
	var started []*instance
	fail := func(err error) error {
		for _, in := range started {
			_ = in.stop(context.WithoutCancel(ctx))
		}
		// why: the caller names the release and the environment; this
		// says only what it alone knows, once.
		if t.live == nil {
			return err
		}
		const kept = "the previous release keeps serving"
		if se := (*startError)(nil); errors.As(err, &se) {
			se.note = kept
			return err
		}
		return fmt.Errorf("%w; %s", err, kept)
	}
	// Every function's variables are resolved before any starts, so a
	// missing secret fails the Apply with nothing started.
	envs := map[string]map[string]string{}
	secrets := map[string][]string{}
	for _, f := range rel.Set.Functions {
		env, sec, err := t.cfg.Env(ctx, f)
		if err != nil {
			return fail(err)
		}
		envs[f.Name], secrets[f.Name] = env, sec
	}
	for _, f := range rel.Set.Functions {
		// The key needs no image: a function that did not change keeps its
		// process without its image being looked at again.
		if reused := t.reuse(instanceKey(f, envs[f.Name])); reused != nil {
			next.instances[f.Name] = reused
			continue
		}
		in, err := t.instanceFor(ctx, f, envs[f.Name], secrets[f.Name])
		if err != nil {
			return fail(err)
		}
		// The process's errors name the function.
		if err := in.start(ctx); err != nil {
			return fail(err)
		}
		started = append(started, in)
		next.instances[f.Name] = in
	}

	// Triggers not meant for this environment (spec.environments) are
	// left out of both the routes and the dispatchers.
	set := rel.Set.In(t.cfg.Environment)
	t.warnPlacement(rel)
	routes, err := t.routes(set, next)
	if err != nil {
		return fail(err)
	}
	// Triggers switch before the routes: their apply is the last step that
	// can fail, and it changes nothing when it does.
	backends := map[string]backend{}
	for name, in := range next.instances {
		backends[name] = in
	}
	if err := t.triggers.apply(ctx, set, backends); err != nil {
		return fail(err)
	}
	for i := range routes {
		routes[i].Untrusted = t.cfg.Untrusted
	}
	t.cfg.Gateway.setRoutes(t.cfg.Environment, routes)

	// What the switch replaced stays warm for a while, for a rollback.
	if t.live != nil {
		// An instance can only be reused under its own name (its key starts
		// with it).
		for name, in := range t.live.instances {
			if next.instances[name] != in {
				t.keepWarm(in)
			}
		}
	}
	for _, in := range next.instances {
		delete(t.warm, in.key)
	}
	t.live = next
	t.shown.Store(next)
	t.cfg.Gateway.triggerStats.KeepOnly(t.cfg.Environment, dispatch.LiveTriggers(t.cfg.Environment, next.release.Set))
	return nil
}

// reuse returns the live or warm instance with key, if there is one.
func (t *Target) reuse(key string) *instance {
	if t.live != nil {
		for _, in := range t.live.instances {
			if in.key == key {
				return in
			}
		}
	}
	if in, ok := t.warm[key]; ok {
		in.mu.Lock()
		if in.retire != nil {
			in.retire.Stop()
		}
		in.mu.Unlock()
		return in
	}
	return nil
}

// keepWarm leaves a replaced instance running for WarmFor, then stops it.
func (t *Target) keepWarm(in *instance) {
	t.warm[in.key] = in
	in.mu.Lock()
	in.retire = time.AfterFunc(t.cfg.WarmFor, func() {
		// An Apply may have taken the instance back since the timer
		// fired; only one still warm is stopped.
		t.mu.Lock()
		still := t.warm[in.key] == in
		if still {
			delete(t.warm, in.key)
		}
		t.mu.Unlock()
		if still {
			_ = in.stop(context.Background())
		}
	})
	in.mu.Unlock()
}

// instanceFor unpacks a function's image and prepares its process.
func (t *Target) instanceFor(ctx context.Context, f *v1alpha1.Function, userEnv map[string]string, secrets []string) (*instance, error) {
	spec := f.Spec
	if spec.Image == "" {
		return nil, fmt.Errorf("function %s has no image; apply a release that ferry built", f.Name)
	}
	root, cfg, err := t.cfg.Images.root(ctx, spec.Image)
	if err != nil {
		return nil, fmt.Errorf("function %s: %w", f.Name, err)
	}
	argv, env, err := command(root, cfg)
	if err != nil {
		return nil, fmt.Errorf("function %s: %w", f.Name, err)
	}
	uid, err := imageUser(cfg)
	if err != nil {
		return nil, fmt.Errorf("function %s: %w", f.Name, err)
	}
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return nil, fmt.Errorf("function %s: %w", f.Name, err)
	}
	// why: the program sees the image at /, so paths in it are given as
	// the image names them.
	inside := func(p string) string {
		if rel, err := filepath.Rel(realRoot, p); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
			return "/" + strings.TrimPrefix(filepath.ToSlash(rel), ".")
		}
		return p
	}
	for i := range argv {
		argv[i] = inside(argv[i])
	}
	timeout, memory, minScale := functionSettings(spec)
	ps := processSpec{
		Name:    f.Name,
		Argv:    argv,
		Env:     env,
		UserEnv: userEnv,
		Secrets: secrets,
		Timeout: timeout,
		Memory:  memory,
		Dir:     inside(workDir(realRoot)),
		LogFile: logPath(t.cfg.LogDir, t.cfg.Environment, f.Name),
		Log:     t.logs.of(f.Name),
		Sandbox: t.cfg.Sandbox,
		Root:    realRoot,
		UID:     uid,
		TmpSize: tmpSize(spec),
	}
	return &instance{key: instanceKey(f, userEnv), name: f.Name, spec: ps, min: minScale, timeout: timeout, idleFor: t.cfg.IdleAfter, redactor: secretRedactor(secrets),
		concurrency: concurrency(f.Spec), env: t.cfg.Environment, logf: t.cfg.Log}, nil
}

// redact is s with the function's secrets hidden, as its log has them.
func (in *instance) redact(s string) string {
	if in.redactor == nil {
		return s
	}
	return in.redactor.Replace(s)
}

// tmpSize is the size of a function's /tmp: its spec.memory, since a
// tmpfs's pages are memory and a function cannot use more than that anyway;
// sandbox.DefaultTmpSize (64 MiB) when it sets none.
func tmpSize(spec v1alpha1.FunctionSpec) int64 {
	if spec.Memory != nil && spec.Memory.Value() > 0 {
		return spec.Memory.Value()
	}
	return sandbox.DefaultTmpSize
}

// functionSettings reads what a function's process is started with.
func functionSettings(spec v1alpha1.FunctionSpec) (timeout time.Duration, memory string, minScale int32) {
	if spec.Timeout != nil {
		timeout = spec.Timeout.Duration
	}
	if spec.Memory != nil {
		memory = spec.Memory.String()
	}
	if spec.Scale != nil && spec.Scale.Min != nil {
		minScale = *spec.Scale.Min
	}
	return timeout, memory, minScale
}

// concurrency is a function's Scale.Concurrency, or its default.
func concurrency(spec v1alpha1.FunctionSpec) int {
	if spec.Scale != nil && spec.Scale.Concurrency != nil && *spec.Scale.Concurrency > 0 {
		return int(*spec.Scale.Concurrency)
	}
	return defaultMaxInFlight
}

// instanceKey says when two releases' function is the same: same name,
// image, settings and resolved variables (env, as the process gets it).
// Such a function keeps its process.
func instanceKey(f *v1alpha1.Function, env map[string]string) string {
	timeout, memory, minScale := functionSettings(f.Spec)
	return strings.Join([]string{f.Name, f.Spec.Image, timeout.String(), memory, fmt.Sprint(minScale), envDigest(env)}, "\x01")
}

// logPath is where a function's log is written: the target writes it, and
// ferry logs reads it (LogFile).
func logPath(logDir, env, function string) string {
	return filepath.Join(logDir, env, function+".log")
}

// workDir is where a function runs: its code folder, which Python and
// Node.js images have, else the image's root (a Go image holds only its
// binary).
func workDir(root string) string {
	dir := filepath.Join(root, "ferry", "function")
	if info, err := os.Stat(dir); err == nil && info.IsDir() {
		return dir
	}
	return root
}

// routes are the gateway's routes for a release: one per HTTPTrigger.
func (t *Target) routes(set *manifests.Set, d *deployment) ([]gatewayRoute, error) {
	var routes []gatewayRoute
	for _, tr := range set.HTTPTriggers {
		name := tr.Spec.Function
		in, ok := d.instances[name]
		if !ok {
			return nil, fmt.Errorf("HTTPTrigger %s names function %q, which the release does not hold", tr.Name, name)
		}
		routes = append(routes, gatewayRoute{
			Path:        tr.Spec.Path,
			Methods:     tr.Spec.Methods,
			Function:    name,
			Trigger:     tr.Name,
			Log:         in.spec.Log,
			Timeout:     in.timeout,
			MaxInFlight: in.concurrency,
			Backend:     in,
		})
	}
	// Every function can also be called by name (ferry invoke), with or
	// without an HTTPTrigger. The manifest reserves /_ferry, so no
	// trigger's path can be one of these.
	for _, name := range slices.Sorted(maps.Keys(d.instances)) {
		in := d.instances[name]
		// why: the limit is the function's, whichever route a call takes;
		// the routes of a function share one count.
		routes = append(routes, gatewayRoute{
			Path:        InvokePath(name),
			Methods:     []string{http.MethodPost},
			Function:    name,
			Timeout:     in.timeout,
			MaxInFlight: in.concurrency,
			Backend:     in,
			Log:         in.spec.Log,
		})
	}
	return routes, nil
}

// InvokePath is the path, inside an environment on the gateway, that
// calls a function by name: POST http://GATEWAY/<env>/_ferry/invoke/<name>.
func InvokePath(function string) string { return "/_ferry/invoke/" + function }

// Status implements environments.Target.
func (t *Target) Status(ctx context.Context) (*environments.Status, error) {
	live := t.shown.Load()
	st := &environments.Status{Environment: t.cfg.Environment}
	if live == nil {
		return st, nil
	}
	st.Release = live.release.Digest.String()
	for _, name := range slices.Sorted(maps.Keys(live.instances)) {
		in := live.instances[name]
		state, restarts, msg := in.state()
		url, _ := t.urlIn(live, name)
		st.Functions = append(st.Functions, environments.FunctionStatus{
			Name: name, Image: live.release.Set.Function(name).Spec.Image, URL: url,
			State: state, Restarts: restarts, Message: msg,
		})
	}
	return st, nil
}

// Delete implements environments.Target: the routes go first, then every
// process, live and warm.
func (t *Target) Delete(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.delete(ctx)
}

// remove is Delete for good: later Applies are refused with why.
func (t *Target) remove(ctx context.Context, why string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.removed = why
	return t.delete(ctx)
}

// delete is Delete with t.mu held.
func (t *Target) delete(ctx context.Context) error {
	t.cfg.Gateway.setRoutes(t.cfg.Environment, nil)
	t.triggers.stop()
	t.triggers = newTriggers(t.triggerCfg) // a later Apply starts afresh
	var all []*instance
	if t.live != nil {
		all = slices.Collect(maps.Values(t.live.instances))
	}
	all = append(all, slices.Collect(maps.Values(t.warm))...)
	var errs []error
	for _, in := range all {
		errs = append(errs, in.stop(ctx))
	}
	t.live, t.warm = nil, map[string]*instance{}
	t.shown.Store(nil)
	t.logs.closeFiles()
	t.cfg.Gateway.triggerStats.Forget(t.cfg.Environment)
	return errors.Join(errs...)
}

// URL implements environments.Target: the gateway URL of the function's
// first HTTP route.
func (t *Target) URL(function string) (string, error) {
	return t.urlIn(t.shown.Load(), function)
}

// Call implements environments.Target through the gateway, as a user's
// request would come.
func (t *Target) Call(ctx context.Context, req *http.Request) (*http.Response, error) {
	u := *req.URL
	base, err := url.Parse(strings.TrimRight(t.cfg.GatewayURL, "/") + "/" + t.cfg.Environment)
	if err != nil {
		return nil, fmt.Errorf("environment %s: gateway URL: %w", t.cfg.Environment, err)
	}
	u.Scheme, u.Host, u.User = base.Scheme, base.Host, nil
	u.Path = base.Path + "/" + strings.TrimLeft(req.URL.Path, "/")
	u.RawPath = ""
	out := req.Clone(ctx)
	out.URL, out.Host, out.RequestURI = &u, "", ""
	return callClient.Do(out)
}

// Deliver implements environments.Target through the gateway's invoke
// route, which calls the function with its timeout and concurrency.
func (t *Target) Deliver(ctx context.Context, function string, ev *environments.Event) (*http.Response, error) {
	u := strings.TrimRight(t.cfg.GatewayURL, "/") + "/" + t.cfg.Environment + InvokePath(function)
	req, err := ev.Request(ctx, u)
	if err != nil {
		return nil, err
	}
	return callClient.Do(req)
}

func (t *Target) urlIn(live *deployment, function string) (string, error) {
	if live == nil {
		return "", fmt.Errorf("environment %s runs no release", t.cfg.Environment)
	}
	for _, tr := range live.release.Set.HTTPTriggers {
		if tr.Spec.Function == function {
			return strings.TrimRight(t.cfg.GatewayURL, "/") + "/" + t.cfg.Environment + tr.Spec.Path, nil
		}
	}
	if _, ok := live.instances[function]; ok {
		return "", fmt.Errorf("function %s has no HTTPTrigger in environment %s", function, t.cfg.Environment)
	}
	return "", fmt.Errorf("environment %s has no function %s", t.cfg.Environment, function)
}
