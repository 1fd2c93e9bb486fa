package promote

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ferrycd/ferry/build"
	"github.com/ferrycd/ferry/store"
)

// Actor is who the history names for what ferry does by itself: an
// automatic promotion's requester, an automatic rollback's actor.
const Actor = "ferry"

// Defaults of a Config.
const (
	// DefaultCheckInterval: while a release soaks, its checks run again
	// every second, often enough to see a function that starts failing
	// within a short soak, rarely enough not to load it.
	DefaultCheckInterval = time.Second
	// DefaultCheckTimeout bounds a check's request that sets no
	// maxLatency: a function's own timeout is 10s by default.
	DefaultCheckTimeout = 10 * time.Second
	// reconcileEvery is how often Run looks at the queue when nothing
	// wakes it: freeze windows open and close and approvals expire
	// without any event.
	reconcileEvery = time.Second
)

// Audit actions the promoter records.
const (
	ActionPromotionCreate  = "promotion.create"
	ActionPromotionApprove = "promotion.approve"
	ActionPromotionReject  = "promotion.reject"
	ActionPromotionRefuse  = "promotion.refuse"
	ActionDeploy           = "deploy"
	ActionRollback         = "rollback"
	ActionFreeze           = "freeze"
	ActionUnfreeze         = "unfreeze"
	ActionResume           = "resume"
)

// engine is the Promoter.
//
// What runs in an environment changes only under its lock: an execution
// (deploy, verify, finish) holds it from start to end, and so do Rollback
// and Deployed, which first stop the execution in progress. Across
// restarts the promotion row in deploying or verifying status is the lock
// (the store allows one per environment), and Run takes such rows up
// first.
type engine struct {
	cfg   Config
	st    Store
	allow []ImagePrefix // Config.AllowedImages, parsed
	// envMu guards envs, floors, previews and removed: environments come
	// and go at run time (dynamic.go).
	envMu  sync.RWMutex
	envs   map[string][]window // the environments and their freeze windows
	floors map[string]Floor    // the least policy of each
	// previews are the environments made at run time for pull
	// requests; removed says why each removed one went.
	previews map[string]bool
	removed  map[string]string
	wake     chan struct{}

	mu      sync.Mutex
	state   map[string]*envState
	started bool
	// caches of immutable things: releases loaded from the store, release
	// artifacts pulled (and verified), commit authors.
	releases  map[string]*release
	artifacts map[string]*build.Release
	authors   map[string]author
}

// envState is one environment's lock and what holds it.
type envState struct {
	// lock has room for one token: whoever put it there changes what the
	// environment runs.
	lock chan struct{}
	// wanted counts callers waiting in takeEnv: no execution starts
	// meanwhile, so they get the lock next.
	wanted int
	// exec is the execution holding the lock, if one does.
	exec *execution
	// create serialises making promotions into the environment, so that
	// two requests for one release do not both pass the check for an open
	// one.
	create sync.Mutex
}

type execution struct {
	promotion int64
	cancel    context.CancelCauseFunc
}

type author struct{ name, email string }

// cacheSize bounds each cache: a release is a few kilobytes, and the
// releases in use are the live and recent ones.
const cacheSize = 64

// New returns the promoter of cfg. Run must run for promotions to execute;
// the other methods work without it.
func New(cfg Config) (Promoter, error) {
	return newEngine(cfg)
}

func newEngine(cfg Config) (*engine, error) {
	var missing []string
	if cfg.Store == nil {
		missing = append(missing, "Store")
	}
	if cfg.Target == nil {
		missing = append(missing, "Target")
	}
	if len(cfg.Environments) == 0 {
		missing = append(missing, "Environments")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("promote: the promoter needs %v in its Config", missing)
	}
	e := &engine{
		cfg:       cfg,
		st:        cfg.Store,
		envs:      map[string][]window{},
		floors:    map[string]Floor{},
		previews:  map[string]bool{},
		removed:   map[string]string{},
		wake:      make(chan struct{}, 1),
		state:     map[string]*envState{},
		releases:  map[string]*release{},
		artifacts: map[string]*build.Release{},
		authors:   map[string]author{},
	}
	for _, env := range cfg.Environments {
		if _, dup := e.envs[env.Name]; dup {
			return nil, fmt.Errorf("promote: environment %s is configured twice", env.Name)
		}
		ws, floor, err := envSettings(env)
		if err != nil {
			return nil, err
		}
		e.envs[env.Name], e.floors[env.Name] = ws, floor
	}
	allow, err := ParseImagePrefixes(cfg.AllowedImages)
	if err != nil {
		return nil, fmt.Errorf("promote: %w", err)
	}
	e.allow = allow
	if e.cfg.Pull == nil {
		opts := cfg.PushOptions
		e.cfg.Pull = func(ctx context.Context, ref string) (*build.Release, error) {
			return build.PullRelease(ctx, ref, opts...)
		}
	}
	if e.cfg.ImageExists == nil {
		e.cfg.ImageExists = HeadImage
	}
	if e.cfg.Now == nil {
		e.cfg.Now = time.Now
	}
	if e.cfg.Log == nil {
		e.cfg.Log = func(string, ...any) {}
	}
	if e.cfg.CheckInterval <= 0 {
		e.cfg.CheckInterval = DefaultCheckInterval
	}
	return e, nil
}

func (e *engine) now() time.Time { return e.cfg.Now() }

func (e *engine) logf(format string, args ...any) { e.cfg.Log("promote: "+format, args...) }

// signal wakes Run to look at the queue.
func (e *engine) signal() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

func (e *engine) known(env string) bool {
	e.envMu.RLock()
	defer e.envMu.RUnlock()
	_, ok := e.envs[env]
	return ok
}

// checkEnv refuses an environment that is not configured, or was removed.
func (e *engine) checkEnv(env string) error {
	e.envMu.RLock()
	defer e.envMu.RUnlock()
	if _, ok := e.envs[env]; ok {
		return nil
	}
	if why, ok := e.removed[env]; ok {
		return invalid("environment %s was removed (%s)", env, why)
	}
	return invalid("environment %q is not configured (the environments are %s); add it to ferry serve's configuration",
		env, strings.Join(slices.Sorted(maps.Keys(e.envs)), ", "))
}

// floor is env's least policy (the zero Floor for none).
func (e *engine) floor(env string) Floor {
	f, _ := e.floorOf(env)
	return f
}

func (e *engine) envState(env string) *envState {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.state[env]
	if st == nil {
		st = &envState{lock: make(chan struct{}, 1)}
		e.state[env] = st
	}
	return st
}

// takeEnv stops the execution in env, if one runs (it stays as it is in
// the store, for the caller to settle), and returns once the caller holds
// env's lock.
func (e *engine) takeEnv(ctx context.Context, env string, cause error) (unlock func(), err error) {
	st := e.envState(env)
	e.mu.Lock()
	st.wanted++
	if st.exec != nil {
		st.exec.cancel(cause)
	}
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		st.wanted--
		e.mu.Unlock()
	}()
	select {
	case st.lock <- struct{}{}:
		return func() {
			<-st.lock
			e.signal()
		}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// tryStart starts executing p in a goroutine of wg when env's lock is
// free and p is still where it was read (approved with claim, deploying
// or verifying without); with claim, it first moves p from approved to
// deploying. It reports whether env is busy (p started, or something else
// holds it).
func (e *engine) tryStart(ctx context.Context, wg *sync.WaitGroup, p store.Promotion, claim bool) (busy bool) {
	st := e.envState(p.Environment)
	e.mu.Lock()
	if st.wanted > 0 || st.exec != nil {
		e.mu.Unlock()
		return true
	}
	select {
	case st.lock <- struct{}{}:
	default:
		e.mu.Unlock()
		return true
	}
	xctx, cancel := context.WithCancelCause(ctx)
	st.exec = &execution{promotion: p.ID, cancel: cancel}
	e.mu.Unlock()
	release := func() {
		e.mu.Lock()
		st.exec = nil
		e.mu.Unlock()
		<-st.lock
		cancel(nil)
		e.signal()
	}
	// why: p was read before the lock was taken, and whoever held it may
	// have moved p on since (finished it, or stopped it); read it again.
	cur, err := e.st.GetPromotion(ctx, p.ID)
	if err == nil {
		stale := cur.Status != StatusApproved
		if !claim {
			stale = cur.Status != StatusDeploying && cur.Status != StatusVerifying
		}
		if stale {
			release()
			return false
		}
		if claim {
			cur.Status, cur.Reason = StatusDeploying, "deploying release "+store.Short(cur.Release)
			err = e.st.UpdatePromotion(ctx, cur, StatusApproved)
		}
	}
	if err != nil {
		release()
		if !errors.Is(err, store.ErrConflict) && ctx.Err() == nil {
			e.logf("starting promotion %d: %v", p.ID, err)
		}
		return true
	}
	p = cur
	wg.Go(func() {
		defer release()
		e.execute(xctx, p)
	})
	return true
}

// Run implements Promoter.
func (e *engine) Run(ctx context.Context) error {
	e.mu.Lock()
	if e.started {
		e.mu.Unlock()
		return errors.New("promote: Run may be called once")
	}
	e.started = true
	e.mu.Unlock()

	var wg sync.WaitGroup
	defer wg.Wait()
	tick := time.NewTicker(reconcileEvery)
	defer tick.Stop()
	for {
		if err := e.reconcile(ctx, &wg); err != nil && ctx.Err() == nil {
			e.logf("%v", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-e.wake:
		case <-tick.C:
		}
	}
}

// reconcile starts what should run: first every promotion left deploying
// or verifying with nothing of this process running it (after a crash, or
// made by Deployed), then per environment the oldest approved promotion
// that may go, once pending ones that may go were approved.
func (e *engine) reconcile(ctx context.Context, wg *sync.WaitGroup) error {
	active, err := e.st.FindPromotions(ctx, store.PromotionQuery{Statuses: []string{StatusDeploying, StatusVerifying}})
	if err != nil {
		return fmt.Errorf("reading the promotions in progress: %w", err)
	}
	busy := map[string]bool{}
	for _, p := range active {
		e.tryStart(ctx, wg, p, false)
		busy[p.Environment] = true
	}
	queue, err := e.st.FindPromotions(ctx, store.PromotionQuery{Statuses: []string{StatusPending, StatusApproved}})
	if err != nil {
		return fmt.Errorf("reading the queued promotions: %w", err)
	}
	byEnv := map[string][]store.Promotion{}
	for _, p := range queue {
		byEnv[p.Environment] = append(byEnv[p.Environment], p)
	}
	var errs []error
	for _, env := range slices.Sorted(maps.Keys(byEnv)) {
		if err := e.reconcileEnv(ctx, wg, env, byEnv[env], busy[env]); err != nil {
			errs = append(errs, fmt.Errorf("environment %s: %w", env, err))
		}
	}
	return errors.Join(errs...)
}

func (e *engine) reconcileEnv(ctx context.Context, wg *sync.WaitGroup, env string, queue []store.Promotion, busy bool) error {
	g, err := e.gate(ctx, env)
	if err != nil {
		return err
	}
	for i, p := range queue {
		if p.Status != StatusPending {
			continue
		}
		next, err := e.reconcilePending(ctx, p, g)
		if err != nil {
			e.logf("promotion %d: %v", p.ID, err)
			continue
		}
		queue[i] = next
	}
	if busy {
		return nil
	}
	for _, p := range queue {
		if p.Status != StatusApproved {
			continue
		}
		if why := g.blocks(p); why != "" {
			e.setReason(ctx, p, why)
			continue
		}
		ok, err := e.stillApproved(ctx, p)
		if err != nil {
			e.logf("promotion %d: %v", p.ID, err)
			continue
		}
		if !ok {
			continue
		}
		if e.tryStart(ctx, wg, p, true) {
			return nil
		}
	}
	return nil
}

// setReason records why p waits, when that changed.
func (e *engine) setReason(ctx context.Context, p store.Promotion, reason string) {
	if p.Reason == reason {
		return
	}
	p.Reason = reason
	if err := e.st.UpdatePromotion(ctx, p, p.Status); err != nil && !errors.Is(err, store.ErrConflict) {
		e.logf("promotion %d: %v", p.ID, err)
	}
}

// event returns ctx carrying the audit entry of a change, which the store
// writes in the change's transaction or refuses with it: pass it to the
// store call that makes the change, and only to that one.
func (e *engine) event(ctx context.Context, actor, action, object, detail string) context.Context {
	return store.WithEvent(ctx, store.Event{Actor: actor, Action: action, Object: object, Detail: detail})
}

// created returns ctx carrying the entry of the promotion CreatePromotion
// makes with it.
func (e *engine) created(ctx context.Context, actor, detail string) context.Context {
	return store.WithCreateEvent(ctx, func(id int64) store.Event {
		return store.Event{Actor: actor, Action: ActionPromotionCreate, Object: promotionObject(id), Detail: detail}
	})
}

// export tells the exporter of a deployment; it must not fail the
// deployment, which happened.
func (e *engine) export(ctx context.Context, d store.Deployment) {
	if e.cfg.Exporter == nil || d.Status != store.DeploymentSucceeded {
		return
	}
	rel, err := e.st.GetRelease(ctx, d.Release)
	if err == nil {
		err = e.cfg.Exporter.Export(context.WithoutCancel(ctx), d, rel)
	}
	if err != nil {
		e.logf("exporting deployment %d of %s to %s: %v", d.ID, store.Short(d.Release), d.Environment, err)
	}
}

// ---- errors -------------------------------------------------------------------

func forbidden(format string, args ...any) error {
	return &Error{Code: Forbidden, Message: fmt.Sprintf(format, args...)}
}

func conflict(format string, args ...any) error {
	return &Error{Code: Conflict, Message: fmt.Sprintf(format, args...)}
}

func invalid(format string, args ...any) error {
	return &Error{Code: Invalid, Message: fmt.Sprintf(format, args...)}
}

// actorOf is who a promotion's deployment is by: its requester.
func actorOf(p store.Promotion) string {
	if p.Requester == "" {
		return Actor
	}
	return p.Requester
}
