package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/ferrycd/ferry/build"
	"github.com/ferrycd/ferry/build/registry"
	"github.com/ferrycd/ferry/environments"
	"github.com/ferrycd/ferry/environments/embedded"
	"github.com/ferrycd/ferry/internal/filelock"
	"github.com/ferrycd/ferry/internal/listen"
	"github.com/ferrycd/ferry/internal/seal"
	"github.com/ferrycd/ferry/pipeline"
	"github.com/ferrycd/ferry/promote"
	"github.com/ferrycd/ferry/promote/gitexport"
	"github.com/ferrycd/ferry/server/github"
	"github.com/ferrycd/ferry/store"
	"github.com/ferrycd/ferry/watcher"
)

// shutdownGrace is how long a stop waits for requests and runs in flight.
const shutdownGrace = 15 * time.Second

// Serve runs ferry from cfg until ctx ends: the store, the embedded
// registry, the environments and their gateway, the watcher, the pipeline
// executor, and the API with the webhooks. It says what it does on out.
func Serve(ctx context.Context, cfg *Config, out io.Writer) error {
	logger, err := newLogger(out, cfg.LogFormat)
	if err != nil {
		return err
	}
	logf := func(format string, args ...any) { logger.Info(fmt.Sprintf(format, args...)) }
	said := outcomes{log: logger}
	if err := privateDataDir(cfg.DataDir, logf); err != nil {
		return err
	}
	// why: two ferries on one data folder would run every pipeline twice
	// and fight over the environments' processes.
	unlock, err := filelock.LockDataDir(cfg.DataDir, "dataDir in the configuration")
	if err != nil {
		return err
	}
	defer unlock()
	sb, err := startSandbox(ctx, cfg, logf)
	if err != nil {
		return err
	}
	// Listeners first: a port in use is the commonest mistake, and should
	// fail before anything starts.
	apiLn, err := listen.TCP(cfg.Listen, "move the API with listen: in the configuration (make run: LISTEN=HOST:PORT)")
	if err != nil {
		return fmt.Errorf("the API: %w", err)
	}
	defer apiLn.Close()
	gwLn, err := listen.TCP(cfg.Gateway, "move the gateway with gateway: in the configuration (make run: ADDR=HOST:PORT)")
	if err != nil {
		return fmt.Errorf("the gateway: %w", err)
	}
	defer gwLn.Close()

	st, err := store.Open(ctx, filepath.Join(cfg.DataDir, "ferry.db"))
	if err != nil {
		return err
	}
	defer st.Close()

	repo, pushOpts, regAddr := cfg.Registry, []build.Option{build.WithInsecure(cfg.Insecure)}, ""
	if cfg.Registry == "embedded" {
		reg, err := registry.New(ctx, registry.Config{Addr: cfg.RegistryListen, Dir: filepath.Join(cfg.DataDir, "registry")})
		if errors.Is(err, syscall.EADDRINUSE) {
			err = listen.Explain(err, cfg.RegistryListen, "move it with registryListen: in the configuration (make run: REGISTRY_ADDR=HOST:PORT)")
		}
		if err != nil {
			return fmt.Errorf("the embedded registry: %w", err)
		}
		go reg.Serve()
		defer reg.Shutdown(context.WithoutCancel(ctx))
		repo, pushOpts, regAddr = reg.Addr()+"/ferry", nil, reg.Addr()
	}
	if cfg.registryTimeout > 0 {
		// Release pushes and pulls wait as long as the builder's.
		pushOpts = append(pushOpts, build.WithRegistryTimeout(cfg.registryTimeout))
	}
	moves, err := recordRegistryAddress(cfg.DataDir, regAddr, pushOpts)
	if err != nil {
		return err
	}
	builder, err := build.New(repo, append([]build.Option{build.WithCacheDir(filepath.Join(cfg.DataDir, "build-cache")), build.WithSandbox(sb)}, append(cfg.buildOptions(), pushOpts...)...)...)
	if err != nil {
		return err
	}

	box, keyFrom, err := seal.Load(cfg.DataDir)
	if err != nil {
		return fmt.Errorf("the key that seals secrets: %w", err)
	}
	logf("secrets given through the API are sealed with the key from %s", keyFrom)
	settings := &envSettings{cfg: cfg, store: st, box: box}

	gatewayURL := "http://" + gwLn.Addr().String()
	host, err := embedded.NewHost(embedded.HostConfig{DataDir: cfg.DataDir, GatewayURL: gatewayURL, Log: logf, Sandbox: sb, Environments: cfg.environmentNames(), RegistryTimeout: cfg.registryTimeout})
	if err != nil {
		return err
	}
	restored := &restoreErrors{}
	// envs are the configured environments and the previews made at run
	// time (environments.go).
	envs := newEnvSet(cfg, host, st, st, settings, moves.pull, restored, gatewayURL, logf)
	target := envs.target
	settings.reload = func(ctx context.Context, env string) error {
		return reloadEnvironment(ctx, st, env, target, moves.pull)
	}
	if err := restoreEnvironments(ctx, st, cfg, target, moves.pull, restored, logf); err != nil {
		return err
	}
	defer func() {
		// why: the functions are this process's children; a clean stop
		// takes them down with it rather than leaving ports taken.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
		defer cancel()
		envs.stopAll(ctx)
	}()

	// why: one client, so one App installation token cache and one token
	// fetch for the sink, the approvals and the previews' pullOpen.
	gh, err := cfg.githubClient()
	if err != nil {
		return fmt.Errorf("github: %w", err)
	}
	notifier, tell, err := newNotices(cfg, st, gh, apiLn.Addr().String(), gatewayURL, logf)
	if err != nil {
		return err
	}

	var exec pipeline.Executor
	metrics := newServeMetrics(metricsConfig{
		Store: st,
		Queued: func() map[string]int {
			if q, ok := exec.(pipeline.Queued); ok {
				return q.Queued()
			}
			return nil
		},
		Environments: envs.Names,
		Status: func(ctx context.Context, env string) (*environments.Status, error) {
			t, err := target(env)
			if err != nil {
				return nil, err
			}
			return t.Status(ctx)
		},
		Gateway: host.Collector(),
		Log:     logf,
	})
	metrics.reg.MustRegister(notifier.Collector())
	var prev *previews // made once the watcher and the pipeline are (serve_previews.go)
	w, err := watcher.New(watcher.Config{
		Dir:   filepath.Join(cfg.DataDir, "mirrors"),
		State: st,
		OnEvent: func(ev store.SourceEvent) {
			kind := "new commit"
			if ev.Forced {
				kind = "force-push"
			}
			logf("source %s: %s %s on %s", ev.Source, kind, store.Short(ev.Commit), ev.Branch)
			if _, err := exec.Enqueue(ctx, ev.Source, ev.Branch, ev.Commit); err != nil {
				logf("source %s: queueing a run for %s: %v", ev.Source, store.Short(ev.Commit), err)
			}
			// why: the new head's Pipeline may have turned previews on or off.
			go prev.syncPolling(ctx, ev.Source)
		},
		OnPull:  func(ev store.PullEvent) { prev.handle(ev) },
		Log:     logf,
		OnFetch: metrics.fetched,
	})
	if err != nil {
		return err
	}
	var exporter promote.Exporter
	if cfg.Export != nil {
		if exporter, err = newExporter(cfg, logf); err != nil {
			return err
		}
	}
	promoter, err := promote.New(promote.Config{
		Store: st,
		Target: func(env string) (environments.Target, error) {
			return target(env)
		},
		Pull: moves.pull,
		ImageExists: func(ctx context.Context, ref string) error {
			return promote.HeadImage(ctx, moves.here(ref))
		},
		Repo:         repo,
		PushOptions:  pushOpts,
		Environments: cfg.gatedEnvironments(),
		Groups:       cfg.groups(),
		CommitAuthor: w.CommitAuthor,
		IsAncestor:   w.IsAncestor,
		Exporter:     exporter,
		Log:          logf,
		Events:       promote.EventsFunc(func(ev promote.Event) { said.promotion(ev); tell.promotion(ev) }),
		Redact:       settings.redact,

		// Images a rollback may deploy although ferry did not build them.
		AllowedImages: cfg.AllowedImages,
	})
	if err != nil {
		return err
	}
	envs.promoter = promoter.(promote.Environments)
	// why: after the promoter, which must know each preview made again.
	if err := envs.restorePreviews(ctx); err != nil {
		return err
	}
	exec, err = pipeline.NewEmbedded(pipeline.Config{
		Store:      metrics.timeSteps(st),
		Tree:       w.Tree,
		CommitTime: w.CommitTime,
		SourceURL: func(name string) string {
			s, err := st.GetSource(context.WithoutCancel(ctx), name)
			if err != nil {
				return ""
			}
			return s.URL
		},
		Builder:     builder,
		Repo:        repo,
		PushOptions: pushOpts,
		Pull:        moves.pull,
		Target: func(env string) (environments.Target, error) {
			return target(env)
		},
		OnDeployed: func(run store.Run, rel store.Release, env string) {
			// Deployed records and returns; verification goes on in the
			// promoter's own worker.
			if err := promoter.Deployed(ctx, run.ID, rel.ID, env); err != nil && ctx.Err() == nil {
				logf("release %s in %s: %v", store.Short(rel.ID), env, err)
			}
		},
		Admit: func(ctx context.Context, run store.Run, rel store.Release, env string) error {
			return promoter.(promote.Admitter).Admit(ctx, run.ID, rel.ID, env)
		},
		OnPreviewDeployed: func(run store.Run, rel store.Release, env string) { prev.deployed(run, rel, env) },
		PullHead:          func(ctx context.Context, source string, n int) (string, error) { return prev.pullHead(ctx, source, n) },
		IsAncestor:        w.IsAncestor,
		StoreRetry:        cfg.storeRetry,
		Log:               logf,
		Events:            func(ev pipeline.Event) { said.run(ev); tell.run(ev); prev.runEvent(ev) },
		Sandbox:           sb,
	})
	if err != nil {
		return err
	}
	if prev, err = newPreviews(ctx, cfg, st, gh, w, func() pipeline.Executor { return exec }, envs, tell, gatewayURL, logf); err != nil {
		return err
	}
	approvals, err := cfg.GitHubApprovals(gh, promoter, st)
	if err != nil {
		return fmt.Errorf("github: %w", err)
	}
	full := &refusedWrites{}
	sources := &sourceManager{store: st, watcher: w, secrets: &secrets{box: box}, log: logf, full: full}
	if err := sources.load(ctx, cfg); err != nil {
		return err
	}
	// why: what an older ferry wrote in the clear may linger in the
	// write-ahead log until a checkpoint; sealing it is not enough.
	if err := st.Checkpoint(ctx); err != nil && !(store.IsFull(err) && full.note(err)) {
		return err
	}
	// why: a crash between recording a source's new head and queueing its
	// run would otherwise lose that run; queueing is idempotent.
	srcs, err := st.ListSources(ctx)
	if err != nil {
		return err
	}
	var heads []head
	for _, s := range srcs {
		if stt, err := st.GetSourceStatus(ctx, s.Name); err == nil && stt.LastCommit != "" {
			heads = append(heads, head{s.Name, s.Branch, stt.LastCommit})
		}
	}
	queueHeads := func(ctx context.Context) {} // started with the rest
	if left, err := enqueueHeads(ctx, exec, heads); len(left) > 0 {
		if !store.IsFull(err) {
			return err
		}
		// why: a store that refuses writes (a full disk) must not keep
		// ferry down: the API shows what it holds meanwhile, and the
		// heads are queued once the store takes them.
		full.note(err)
		queueHeads = func(ctx context.Context) { enqueueHeadsLater(ctx, exec, left, logf) }
	}
	if full.err != nil {
		logf("the store refuses writes: %v; free space on the data folder's disk (%s): meanwhile ferry serves what the store holds, and it runs the branch heads as soon as the store takes writes, without a restart",
			rootCause(full.err), cfg.DataDir)
	}

	stopping := make(chan struct{})
	apiHandler, err := NewAPI(APIConfig{
		Functions:  newEmbeddedFunctions(target),
		Stopping:   stopping,
		Sandbox:    sb.String(),
		Store:      st,
		Tokens:     cfg.tokens(),
		Sources:    sources,
		LocalRoots: cfg.LocalRoots,
		Promoter:   promoter,
		Environments: func(ctx context.Context, env string) (*environments.Status, error) {
			t, err := target(env)
			if err != nil {
				return nil, err
			}
			s, err := t.Status(ctx)
			if err == nil && s.Release == "" {
				if rec, gerr := st.GetEnvironment(ctx, env); gerr == nil && rec.Release != "" {
					if rerr := restored.get(env, rec.Release); rerr != nil {
						return nil, fmt.Errorf("its release %s did not start again when ferry started: %w", store.Short(rec.Release), rerr)
					}
				}
			}
			return s, err
		},
		Log:              logf,
		EnvSecrets:       settings,
		EnvironmentOrder: cfg.environmentNames(),
		EnvironmentSet:   envs,
		Previews:         prev,
	})
	if err != nil {
		return err
	}
	hooks := NewWebhooks(WebhookConfig{
		Source: func(ctx context.Context, name string) (WebhookSource, bool) {
			s, err := st.GetSource(ctx, name)
			if err != nil {
				return WebhookSource{}, false
			}
			s, err = sources.secrets.reveal(s)
			if err != nil {
				// The receiver then refuses the delivery as unsigned.
				logf("webhook for %v", err)
				s.WebhookSecret = ""
			}
			return WebhookSource{Name: s.Name, URL: s.URL, Branch: s.Branch, Secret: s.WebhookSecret}, true
		},
		Sync: func(name string) {
			if err := w.Nudge(name); err != nil {
				logf("source %s: fetch asked by a webhook: %v", name, err)
			}
		},
		Pull: prev.hook,
		Comment: func(ctx context.Context, ev CommentEvent) (string, error) {
			if approvals == nil {
				return "ignored: ferry has no github: block in its configuration, so it reads no commands from comments", nil
			}
			return approvals.Handle(ctx, github.Comment(ev))
		},
		Deliveries: st,
		Audit:      st,
		Log:        logf,
	})
	mux := http.NewServeMux()
	mux.Handle("/api/", apiHandler)
	mux.Handle("/hooks/", metrics.countWebhooks(hooks))
	toks, err := newTokens(cfg.tokens())
	if err != nil {
		return err
	}
	metrics.route(mux, toks)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	})
	apiSrv := NewHTTPServer(cfg.Listen, mux)
	apiSrv.RegisterOnShutdown(func() { close(stopping) })
	gwSrv := &http.Server{Handler: host.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 7)
	var wg sync.WaitGroup
	wg.Go(func() { errc <- serveHTTP(apiSrv, apiLn, "the API") })
	wg.Go(func() { errc <- serveHTTP(gwSrv, gwLn, "the gateway") })
	wg.Go(func() { errc <- w.Run(ctx) })
	wg.Go(func() { errc <- exec.Run(ctx) })
	wg.Go(func() { errc <- promoter.Run(ctx) })
	wg.Go(func() { errc <- notifier.Run(ctx) })
	wg.Go(func() { errc <- prev.m.Run(ctx) })
	wg.Go(func() {
		for _, s := range srcs {
			prev.syncPolling(ctx, s.Name)
		}
	})
	wg.Go(func() { queueHeads(ctx) })

	logf("ferry serve: API and webhooks on http://%s, functions on %s/<env>/<path>", apiLn.Addr(), gatewayURL)
	for _, e := range cfg.Environments {
		logf("environment %s: %s/%s/", e.Name, gatewayURL, e.Name)
	}
	for _, s := range srcs {
		// why: a source without a secret refuses every webhook; its URL
		// would be set up in a Git host only to be refused.
		hook := fmt.Sprintf("webhook: http://%s/hooks/github/%s", apiLn.Addr(), s.Name)
		if s.WebhookSecret == "" {
			hook = "no webhook (it takes one with a webhookSecret)"
		}
		logf("source %s: %s (%s), every %s; %s", s.Name, s.URL, s.Branch, s.Interval, hook)
	}

	var first error
	select {
	case <-ctx.Done():
	case first = <-errc:
	}
	logf("ferry serve: stopping")
	cancel()
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer scancel()
	apiSrv.Shutdown(sctx)
	gwSrv.Shutdown(sctx)
	wg.Wait()
	close(errc)
	for err := range errc {
		if first == nil && err != nil && !errors.Is(err, context.Canceled) {
			first = err
		}
	}
	return first
}

// head is a source's branch head as the store last recorded it.
type head struct{ source, branch, commit string }

// Back-off of the start's enqueues of branch heads the store refused.
const (
	headsBackoffMin = time.Second
	headsBackoffMax = 30 * time.Second
)

// enqueueHeads queues a run for each head (queueing is idempotent; a
// head live already gets nothing) and returns the heads the store
// refused, with the first error.
func enqueueHeads(ctx context.Context, exec pipeline.Executor, heads []head) ([]head, error) {
	var left []head
	var first error
	for _, h := range heads {
		if _, err := exec.Enqueue(ctx, h.source, h.branch, h.commit); err != nil {
			left = append(left, h)
			if first == nil {
				first = err
			}
		}
	}
	return left, first
}

// rootCause is the innermost error of err: the store's own words, which
// its layers name again.
func rootCause(err error) error {
	for next := errors.Unwrap(err); next != nil; next = errors.Unwrap(err) {
		err = next
	}
	return err
}

// enqueueHeadsLater tries the heads the store refused at start again,
// with back-off, until it takes every one or ctx ends.
func enqueueHeadsLater(ctx context.Context, exec pipeline.Executor, heads []head, logf func(string, ...any)) {
	wait := headsBackoffMin
	for len(heads) > 0 {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(2*wait, headsBackoffMax)
		var left []head
		for _, h := range heads {
			if _, err := exec.Enqueue(ctx, h.source, h.branch, h.commit); err != nil {
				left = append(left, h)
			}
		}
		if len(left) < len(heads) {
			logf("the store takes writes again: %d of %d branch heads queued", len(heads)-len(left), len(heads))
		}
		heads = left
	}
}

func serveHTTP(srv *http.Server, ln net.Listener, what string) error {
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// buildOptions are the bases the configuration names, or scratch for
// python and nodejs when none are named: every environment is embedded,
// and runs them with this machine's interpreters.
func (c *Config) buildOptions() []build.Option {
	bases := c.Bases
	if len(bases) == 0 {
		bases = map[string]string{"python": build.Scratch, "nodejs": build.Scratch}
	}
	var opts []build.Option
	for rt, ref := range bases {
		opts = append(opts, build.WithBase(rt, ref))
	}
	if c.registryTimeout > 0 {
		opts = append(opts, build.WithRegistryTimeout(c.registryTimeout))
	}
	return opts
}

// restoreEnvironments records the configured environments and starts
// each one's live release again: the embedded targets run in this
// process, so a restart begins with nothing running.
func restoreEnvironments(ctx context.Context, st store.Store, cfg *Config, target func(string) (*embedded.Target, error),
	pull func(context.Context, string) (*build.Release, error), restored *restoreErrors, logf func(string, ...any)) error {
	for _, ec := range cfg.Environments {
		e, err := st.GetEnvironment(ctx, ec.Name)
		if errors.Is(err, store.ErrNotFound) {
			if err := st.PutEnvironment(ctx, store.Environment{Name: ec.Name, Target: ec.Target, Updated: time.Now()}); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		restoreRelease(ctx, st, e, target, pull, restored, logf)
	}
	return nil
}

// restoreRelease starts environment e's live release again, if it has
// one. An environment that cannot start again is only reported: it must
// not keep ferry (and the others) down; its status shows the error.
func restoreRelease(ctx context.Context, st store.Store, e store.Environment, target func(string) (*embedded.Target, error),
	pull func(context.Context, string) (*build.Release, error), restored *restoreErrors, logf func(string, ...any)) {
	if e.Release == "" {
		return
	}
	t, err := target(e.Name)
	if err == nil {
		var rel store.Release
		rel, err = st.GetRelease(ctx, e.Release)
		if err == nil {
			var br *build.Release
			br, err = pull(ctx, rel.Ref)
			if err == nil {
				err = t.Apply(ctx, br)
			}
		}
	}
	if err != nil {
		restored.set(e.Name, e.Release, err)
		logf("environment %s: starting its release %s again: %v", e.Name, store.Short(e.Release), err)
		return
	}
	logf("environment %s: running %s again", e.Name, store.Short(e.Release))
}

// sourceManager is the API's SourceManager: the store keeps sources, the
// watcher watches them.
type sourceManager struct {
	store   store.Store
	watcher watcher.Watcher
	secrets *secrets
	// log hears about a source that cannot be watched at start; nil: none.
	log func(format string, args ...any)
	// full notes the start's writes a full disk refused; configured are
	// the configuration's sources the store could not take then.
	full       *refusedWrites
	configured []store.Source
}

// refusedWrites is the first write a full disk refused while ferry
// started, so that the start says it once.
type refusedWrites struct{ err error }

// note records err, a full disk's, and returns true: the start goes on.
func (r *refusedWrites) note(err error) bool {
	if r.err == nil {
		r.err = err
	}
	return true
}

// load makes the store's sources match the configuration (its sources
// are marked FromConfig; ones dropped from it are removed) and watches
// every source, those added through the API included.
func (m *sourceManager) load(ctx context.Context, cfg *Config) error {
	inConfig := map[string]bool{}
	for _, sc := range cfg.Sources {
		src, err := cfg.source(sc)
		if err != nil {
			return err
		}
		src = m.secrets.protect(src)
		old, err := m.store.GetSource(ctx, src.Name)
		if err == nil {
			src.Created = old.Created
		} else {
			src.Created = time.Now()
		}
		inConfig[src.Name] = true
		if err == nil && old == src {
			continue // why: a start writes nothing it need not (a full disk)
		}
		if err := m.store.PutSource(ctx, src); err != nil {
			if !store.IsFull(err) || !m.full.note(err) {
				return err
			}
			// why: watched as the configuration says all the same; the
			// store has the change at the next start with space.
			m.configured = append(m.configured, src)
		}
	}
	all, err := m.store.ListSources(ctx)
	if err != nil {
		return err
	}
	for _, c := range m.configured {
		for i := range all {
			if all[i].Name == c.Name {
				all[i] = c
			}
		}
	}
	for _, s := range all {
		if s.FromConfig && !inConfig[s.Name] {
			if err := m.store.DeleteSource(ctx, s.Name); err != nil {
				if !store.IsFull(err) || !m.full.note(err) {
					return err
				}
			}
			continue
		}
		// An older ferry stored the API's secrets in the clear.
		if sealed, changed := m.secrets.sealClear(s); changed {
			if err := m.store.PutSource(ctx, sealed); err != nil {
				return fmt.Errorf("sealing the secrets of source %s: %w", s.Name, err)
			}
		}
		clear, err := m.secrets.reveal(s)
		if err != nil {
			// why: one source whose secret no longer opens (the key
			// changed) must not keep ferry down, or the API that could
			// remove it and add it again would never start either.
			if m.log != nil {
				fix := fmt.Sprintf("remove it (ferry sources rm %s) and add it again with its secrets", s.Name)
				if s.FromConfig {
					fix = "fix it in the configuration and restart"
				}
				m.log("%v; source %s is not watched: %s", err, s.Name, fix)
			}
			continue
		}
		if err := m.watcher.Add(ctx, clear); err != nil {
			return fmt.Errorf("source %s: %w", s.Name, err)
		}
	}
	return nil
}

// Add stores s, its secrets sealed, and watches it. s holds the secrets'
// values, as the API received them.
func (m *sourceManager) Add(ctx context.Context, s store.Source) error {
	s.Created = time.Now()
	// why: what the watcher would refuse is refused before the store keeps
	// the source and its audit entry; the entry must not outlive it.
	if err := watcher.Check(s); err != nil {
		return err
	}
	if err := m.store.AddSource(ctx, m.secrets.protect(s)); err != nil {
		return err
	}
	if err := m.watcher.Add(ctx, s); err != nil {
		// why: nothing half-added: a source the watcher refuses is not kept.
		m.store.DeleteSource(context.WithoutCancel(ctx), s.Name)
		return err
	}
	return nil
}

// Remove stops watching the source, which waits for a fetch under way,
// then forgets it in the store with the entry ctx may carry; a store that
// refuses gets the source watched again, as before.
func (m *sourceManager) Remove(ctx context.Context, name string) error {
	src, err := m.store.GetSource(ctx, name)
	if err != nil {
		return err
	}
	if err := m.watcher.Remove(ctx, name); err != nil {
		return err
	}
	if err := m.store.DeleteSource(ctx, name); err != nil {
		if clear, rerr := m.secrets.reveal(src); rerr == nil {
			rerr = m.watcher.Add(context.WithoutCancel(ctx), clear)
			if rerr != nil && m.log != nil {
				m.log("source %s: watching it again after its removal failed: %v", name, rerr)
			}
		}
		return err
	}
	return nil
}

func (m *sourceManager) Sync(ctx context.Context, name string) error {
	return m.watcher.Sync(ctx, name)
}

func (m *sourceManager) Status(name string) (store.SourceStatus, error) {
	return m.watcher.Status(name)
}

// newExporter makes the GitOps exporter of the configuration.
func newExporter(cfg *Config, logf func(string, ...any)) (promote.Exporter, error) {
	x := cfg.Export
	password, err := expand(x.Password)
	if err != nil {
		return nil, fmt.Errorf("export: password: %w", err)
	}
	var key string
	if x.SSHKeyFile != "" {
		b, err := os.ReadFile(cfg.path(x.SSHKeyFile))
		if err != nil {
			return nil, fmt.Errorf("export: sshKeyFile: %w", err)
		}
		key = string(b)
	}
	return gitexport.New(gitexport.Config{
		URL: x.URL, Branch: x.Branch, Path: x.Path,
		Username: x.Username, Password: password, SSHKey: key,
		KnownHosts: filepath.Join(cfg.DataDir, "mirrors", "known_hosts"),
		Dir:        filepath.Join(cfg.DataDir, "export"),
		Log:        logf,
	})
}
