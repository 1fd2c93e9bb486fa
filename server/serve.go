package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
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
	"github.com/ferrycd/ferry/internal/sandbox"
	"github.com/ferrycd/ferry/internal/seal"
	"github.com/ferrycd/ferry/pipeline"
	"github.com/ferrycd/ferry/promote"
	"github.com/ferrycd/ferry/promote/gitexport"
	"github.com/ferrycd/ferry/server/github"
	"github.com/ferrycd/ferry/server/notify"
	"github.com/ferrycd/ferry/store"
	"github.com/ferrycd/ferry/watcher"
)

// shutdownGrace is how long a stop waits for requests and runs in flight.
const shutdownGrace = 15 * time.Second

// Serve runs ferry from cfg until ctx ends. It says what it does on out.
// The parts start in the order listed, each in one function below; what
// a part opens is closed in the reverse order when Serve returns.
func Serve(ctx context.Context, cfg *Config, out io.Writer) error {
	s, err := newServing(cfg, out)
	if err != nil {
		return err
	}
	defer s.close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.cancel = cancel
	for _, start := range []func(context.Context) error{
		s.lockDataDir,
		s.startSandbox,
		s.listen,
		s.openStore,
		s.startRegistry,
		s.makeBuilder,
		s.loadSealKey,
		s.startEnvironments,
		s.makeNotices,
		s.makeMetrics,
		s.makeWatcher,
		s.makePromoter,
		s.restorePreviews,
		s.makePipeline,
		s.makePreviews,
		s.loadSources,
		s.queueHeads,
		s.makeAPI,
		s.makeGateway,
	} {
		if err := start(ctx); err != nil {
			return err
		}
	}
	return s.run(ctx)
}

// serving is ferry serve's parts, as they are made.
type serving struct {
	cfg      *Config
	logger   *slog.Logger
	logf     func(format string, args ...any)
	said     outcomes
	cancel   context.CancelFunc
	closers  []func() // run last first by close
	sb       *sandbox.Sandbox
	apiLn    net.Listener
	gwLn     net.Listener
	gateway  string // http://ADDR of the gateway
	st       *store.SQLite
	repo     string // HOST/REPO of releases and images
	pushOpts []build.Option
	moves    *registryMoves
	builder  build.Builder
	box      *seal.Box
	settings *envSettings
	host     *embedded.Host
	envs     *envSet
	restored *restoreErrors
	gh       *github.Client
	notifier *notify.Notifier
	tell     *notices
	metrics  *serveMetrics
	w        watcher.Watcher
	promoter promote.Promoter
	exec     pipeline.Executor
	prev     *previews
	full     *refusedWrites
	sources  *sourceManager
	srcs     []store.Source
	// queueHeadsLater queues the heads a full disk refused at start,
	// once running; nil when there are none.
	queueHeadsLater func(ctx context.Context)
	stopping        chan struct{}
	apiSrv          *http.Server
	gwSrv           *http.Server
}

func newServing(cfg *Config, out io.Writer) (*serving, error) {
	logger, err := newLogger(out, cfg.LogFormat)
	if err != nil {
		return nil, err
	}
	return &serving{cfg: cfg, logger: logger, said: outcomes{log: logger},
		logf: func(format string, args ...any) { logger.Info(fmt.Sprintf(format, args...)) }}, nil
}

// onClose has close run f; the last added runs first.
func (s *serving) onClose(f func()) { s.closers = append(s.closers, f) }

func (s *serving) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
}

// target is env's target; an environment that does not exist is its
// error.
func (s *serving) target(env string) (environments.Target, error) { return s.envs.target(env) }

func (s *serving) lockDataDir(context.Context) error {
	if err := privateDataDir(s.cfg.DataDir, s.logf); err != nil {
		return err
	}
	// why: two ferries on one data folder would run every pipeline twice
	// and fight over the environments' processes.
	unlock, err := filelock.LockDataDir(s.cfg.DataDir, "dataDir in the configuration")
	if err != nil {
		return err
	}
	s.onClose(unlock)
	return nil
}

func (s *serving) startSandbox(ctx context.Context) (err error) {
	s.sb, err = startSandbox(ctx, s.cfg, s.logf)
	return err
}

// listen takes the API's and the gateway's ports before anything starts:
// a port in use is the commonest mistake, and should fail first.
func (s *serving) listen(context.Context) error {
	apiLn, err := listen.TCP(s.cfg.Listen, "move the API with listen: in the configuration (make run: LISTEN=HOST:PORT)")
	if err != nil {
		return fmt.Errorf("the API: %w", err)
	}
	s.onClose(func() { apiLn.Close() })
	gwLn, err := listen.TCP(s.cfg.Gateway, "move the gateway with gateway: in the configuration (make run: ADDR=HOST:PORT)")
	if err != nil {
		return fmt.Errorf("the gateway: %w", err)
	}
	s.onClose(func() { gwLn.Close() })
	s.apiLn, s.gwLn, s.gateway = apiLn, gwLn, "http://"+gwLn.Addr().String()
	return nil
}

func (s *serving) openStore(ctx context.Context) error {
	st, err := store.Open(ctx, filepath.Join(s.cfg.DataDir, "ferry.db"))
	if err != nil {
		return err
	}
	s.onClose(func() { st.Close() })
	s.st = st
	return nil
}

// startRegistry starts the embedded registry when the configuration has
// it, and records where releases are pushed and pulled.
func (s *serving) startRegistry(ctx context.Context) error {
	cfg := s.cfg
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
		s.onClose(func() { reg.Shutdown(context.WithoutCancel(ctx)) })
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
	s.repo, s.pushOpts, s.moves = repo, pushOpts, moves
	return nil
}

func (s *serving) makeBuilder(context.Context) (err error) {
	opts := []build.Option{build.WithCacheDir(filepath.Join(s.cfg.DataDir, "build-cache")), build.WithSandbox(s.sb)}
	s.builder, err = build.New(s.repo, append(opts, append(s.cfg.buildOptions(), s.pushOpts...)...)...)
	return err
}

// loadSealKey loads the key that seals the secrets given through the API.
func (s *serving) loadSealKey(context.Context) error {
	box, keyFrom, err := seal.Load(s.cfg.DataDir)
	if err != nil {
		return fmt.Errorf("the key that seals secrets: %w", err)
	}
	s.logf("secrets given through the API are sealed with the key from %s", keyFrom)
	s.box = box
	s.settings = &envSettings{cfg: s.cfg, store: s.st, box: box}
	return nil
}

// startEnvironments makes the embedded host and the target factory, and
// starts again the live releases the targets no longer run. Every
// environment's functions stop when Serve returns.
func (s *serving) startEnvironments(ctx context.Context) error {
	cfg := s.cfg
	host, err := embedded.NewHost(embedded.HostConfig{DataDir: cfg.DataDir, GatewayURL: s.gateway, Log: s.logf, Sandbox: s.sb, Environments: cfg.environmentNames(), RegistryTimeout: cfg.registryTimeout})
	if err != nil {
		return err
	}
	s.host = host
	s.restored = &restoreErrors{}
	// envs are the configured environments and the previews made at run
	// time (environments.go).
	s.envs = newEnvSet(cfg, newTargets(host, s.settings, s.logf), s.st, s.st, s.settings, s.moves.pull, s.restored, s.gateway, s.logf)
	s.settings.reload = func(ctx context.Context, env string) error {
		return reloadEnvironment(ctx, s.st, env, s.target, s.moves.pull)
	}
	// why: a kube environment's mistakes (no such kubeconfig context, a
	// ferry built without the target) are the configuration's: said at
	// start, not at the first deploy. Embedded targets are made when
	// first asked for, as before.
	for _, e := range cfg.Environments {
		if e.Target == TargetKube {
			if _, err := s.target(e.Name); err != nil {
				return fmt.Errorf("environment %s: %w", e.Name, err)
			}
		}
	}
	if err := restoreEnvironments(ctx, s.st, cfg, s.target, s.moves.pull, s.restored, s.logf); err != nil {
		return err
	}
	s.onClose(func() {
		// why: the functions are this process's children; a clean stop
		// takes them down with it rather than leaving ports taken.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
		defer cancel()
		s.envs.stopAll(ctx)
	})
	return nil
}

// makeNotices makes the GitHub client and the notifier.
func (s *serving) makeNotices(context.Context) error {
	// why: one client, so one App installation token cache and one token
	// fetch for the sink, the approvals and the previews' pullOpen.
	gh, err := s.cfg.githubClient()
	if err != nil {
		return fmt.Errorf("github: %w", err)
	}
	s.gh = gh
	s.notifier, s.tell, err = newNotices(s.cfg, s.st, gh, s.apiLn.Addr().String(), s.gateway, s.logf)
	return err
}

func (s *serving) makeMetrics(context.Context) error {
	s.metrics = newServeMetrics(metricsConfig{
		Store: s.st,
		Queued: func() map[string]int {
			if q, ok := s.exec.(pipeline.Queued); ok {
				return q.Queued()
			}
			return nil
		},
		Environments: s.envs.Names,
		Status: func(ctx context.Context, env string) (*environments.Status, error) {
			t, err := s.target(env)
			if err != nil {
				return nil, err
			}
			return t.Status(ctx)
		},
		Gateway: s.host.Collector(),
		Log:     s.logf,
	})
	s.metrics.reg.MustRegister(s.notifier.Collector())
	return nil
}

// makeWatcher makes the watcher: a new head queues a run.
func (s *serving) makeWatcher(ctx context.Context) (err error) {
	s.w, err = watcher.New(watcher.Config{
		Dir:   filepath.Join(s.cfg.DataDir, "mirrors"),
		State: s.st,
		OnEvent: func(ev store.SourceEvent) {
			kind := "new commit"
			if ev.Forced {
				kind = "force-push"
			}
			s.logf("source %s: %s %s on %s", ev.Source, kind, store.Short(ev.Commit), ev.Branch)
			if _, err := s.exec.Enqueue(ctx, ev.Source, ev.Branch, ev.Commit); err != nil {
				s.logf("source %s: queueing a run for %s: %v", ev.Source, store.Short(ev.Commit), err)
			}
			// why: the new head's Pipeline may have turned previews on or off.
			go s.prev.syncPolling(ctx, ev.Source)
		},
		OnPull:  func(ev store.PullEvent) { s.prev.handle(ev) },
		Log:     s.logf,
		OnFetch: s.metrics.fetched,
	})
	return err
}

func (s *serving) makePromoter(context.Context) error {
	cfg := s.cfg
	var exporter promote.Exporter
	if cfg.Export != nil {
		var err error
		if exporter, err = newExporter(cfg, s.logf); err != nil {
			return err
		}
	}
	promoter, err := promote.New(promote.Config{
		Store:  s.st,
		Target: s.target,
		Pull:   s.moves.pull,
		ImageExists: func(ctx context.Context, ref string) error {
			return promote.HeadImage(ctx, s.moves.here(ref))
		},
		Repo:         s.repo,
		PushOptions:  s.pushOpts,
		Environments: cfg.gatedEnvironments(),
		Groups:       cfg.groups(),
		CommitAuthor: s.w.CommitAuthor,
		IsAncestor:   s.w.IsAncestor,
		Exporter:     exporter,
		Log:          s.logf,
		Events:       promote.EventsFunc(func(ev promote.Event) { s.said.promotion(ev); s.tell.promotion(ev) }),
		Redact:       s.settings.redact,

		// Images a rollback may deploy although ferry did not build them.
		AllowedImages: cfg.AllowedImages,
	})
	if err != nil {
		return err
	}
	s.promoter = promoter
	s.envs.promoter = promoter.(promote.Environments)
	return nil
}

// restorePreviews makes the previews again; after the promoter, which
// must know each one.
func (s *serving) restorePreviews(ctx context.Context) error { return s.envs.restorePreviews(ctx) }

func (s *serving) makePipeline(ctx context.Context) (err error) {
	s.exec, err = pipeline.NewEmbedded(pipeline.Config{
		Store:      s.metrics.timeSteps(s.st),
		Tree:       s.w.Tree,
		CommitTime: s.w.CommitTime,
		SourceURL: func(name string) string {
			src, err := s.st.GetSource(context.WithoutCancel(ctx), name)
			if err != nil {
				return ""
			}
			return src.URL
		},
		Builder:     s.builder,
		Repo:        s.repo,
		PushOptions: s.pushOpts,
		Pull:        s.moves.pull,
		Target:      s.target,
		OnDeployed: func(run store.Run, rel store.Release, env string) {
			// Deployed records and returns; verification goes on in the
			// promoter's own worker.
			if err := s.promoter.Deployed(ctx, run.ID, rel.ID, env); err != nil && ctx.Err() == nil {
				s.logf("release %s in %s: %v", store.Short(rel.ID), env, err)
			}
		},
		Admit: func(ctx context.Context, run store.Run, rel store.Release, env string) error {
			return s.promoter.(promote.Admitter).Admit(ctx, run.ID, rel.ID, env)
		},
		OnPreviewDeployed: func(run store.Run, rel store.Release, env string) { s.prev.deployed(run, rel, env) },
		PullHead: func(ctx context.Context, source string, n int) (string, error) {
			return s.prev.pullHead(ctx, source, n)
		},
		IsAncestor: s.w.IsAncestor,
		StoreRetry: s.cfg.storeRetry,
		Log:        s.logf,
		Events:     func(ev pipeline.Event) { s.said.run(ev); s.tell.run(ev); s.prev.runEvent(ev) },
		Sandbox:    s.sb,
	})
	return err
}

func (s *serving) makePreviews(ctx context.Context) (err error) {
	s.prev, err = newPreviews(ctx, s.cfg, s.st, s.gh, s.w, func() pipeline.Executor { return s.exec }, s.envs, s.tell, s.gateway, s.logf)
	return err
}

// loadSources makes the store's sources match the configuration and
// watches them.
func (s *serving) loadSources(ctx context.Context) error {
	s.full = &refusedWrites{}
	s.sources = &sourceManager{store: s.st, watcher: s.w, secrets: &secrets{box: s.box}, log: s.logf, full: s.full}
	if err := s.sources.load(ctx, s.cfg); err != nil {
		return err
	}
	// why: what an older ferry wrote in the clear may linger in the
	// write-ahead log until a checkpoint; sealing it is not enough.
	if err := s.st.Checkpoint(ctx); err != nil && !(store.IsFull(err) && s.full.note(err)) {
		return err
	}
	return nil
}

// queueHeads queues a run of each source's head: a crash between
// recording a new head and queueing its run would otherwise lose that
// run; queueing is idempotent.
func (s *serving) queueHeads(ctx context.Context) error {
	srcs, err := s.st.ListSources(ctx)
	if err != nil {
		return err
	}
	s.srcs = srcs
	var heads []head
	for _, src := range srcs {
		if stt, err := s.st.GetSourceStatus(ctx, src.Name); err == nil && stt.LastCommit != "" {
			heads = append(heads, head{src.Name, src.Branch, stt.LastCommit})
		}
	}
	if left, err := enqueueHeads(ctx, s.exec, heads); len(left) > 0 {
		if !store.IsFull(err) {
			return err
		}
		// why: a store that refuses writes (a full disk) must not keep
		// ferry down: the API shows what it holds meanwhile, and the
		// heads are queued once the store takes them.
		s.full.note(err)
		s.queueHeadsLater = func(ctx context.Context) { enqueueHeadsLater(ctx, s.exec, left, s.logf) }
	}
	if s.full.err != nil {
		s.logf("the store refuses writes: %v; free space on the data folder's disk (%s): meanwhile ferry serves what the store holds, and it runs the branch heads as soon as the store takes writes, without a restart",
			rootCause(s.full.err), s.cfg.DataDir)
	}
	return nil
}

// makeAPI makes the API's server: the API, the webhooks, the metrics and
// the health check.
func (s *serving) makeAPI(ctx context.Context) error {
	cfg, st := s.cfg, s.st
	approvals, err := cfg.GitHubApprovals(s.gh, s.promoter, st)
	if err != nil {
		return fmt.Errorf("github: %w", err)
	}
	s.stopping = make(chan struct{})
	apiHandler, err := NewAPI(APIConfig{
		Functions:        newEmbeddedFunctions(s.target),
		Stopping:         s.stopping,
		Sandbox:          s.sb.String(),
		Store:            st,
		Tokens:           cfg.tokens(),
		Sources:          s.sources,
		LocalRoots:       cfg.LocalRoots,
		Promoter:         s.promoter,
		Environments:     s.environmentStatus,
		Log:              s.logf,
		EnvSecrets:       s.settings,
		EnvironmentOrder: cfg.environmentNames(),
		EnvironmentSet:   s.envs,
		Previews:         s.prev,
	})
	if err != nil {
		return err
	}
	dashboard, err := NewUI(UIConfig{API: apiHandler, Tokens: cfg.tokens(), Stopping: s.stopping, Log: s.logf})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/api/", apiHandler)
	mux.Handle("/", dashboard)
	mux.Handle("/hooks/", s.metrics.countWebhooks(s.webhooks(approvals)))
	toks, err := newTokens(cfg.tokens())
	if err != nil {
		return err
	}
	s.metrics.route(mux, toks)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	})
	s.apiSrv = NewHTTPServer(cfg.Listen, mux)
	s.apiSrv.RegisterOnShutdown(func() { close(s.stopping) })
	return nil
}

// webhooks receives the Git hosts' deliveries: a push asks for a fetch,
// a pull request goes to the previews, a comment to the approvals.
func (s *serving) webhooks(approvals *github.Approvals) http.Handler {
	return NewWebhooks(WebhookConfig{
		Source: func(ctx context.Context, name string) (WebhookSource, bool) {
			src, err := s.st.GetSource(ctx, name)
			if err != nil {
				return WebhookSource{}, false
			}
			src, err = s.sources.secrets.reveal(src)
			if err != nil {
				// The receiver then refuses the delivery as unsigned.
				s.logf("webhook for %v", err)
				src.WebhookSecret = ""
			}
			return WebhookSource{Name: src.Name, URL: src.URL, Branch: src.Branch, Secret: src.WebhookSecret}, true
		},
		Sync: func(name string) {
			if err := s.w.Nudge(name); err != nil {
				s.logf("source %s: fetch asked by a webhook: %v", name, err)
			}
		},
		Pull: s.prev.hook,
		Comment: func(ctx context.Context, ev CommentEvent) (string, error) {
			if approvals == nil {
				return "ignored: ferry has no github: block in its configuration, so it reads no commands from comments", nil
			}
			return approvals.Handle(ctx, github.Comment(ev))
		},
		Deliveries: s.st,
		Audit:      s.st,
		Log:        s.logf,
	})
}

// environmentStatus is what env runs, for the API; an environment whose
// live release did not start again says why.
func (s *serving) environmentStatus(ctx context.Context, env string) (*environments.Status, error) {
	t, err := s.target(env)
	if err != nil {
		return nil, err
	}
	status, err := t.Status(ctx)
	if err == nil && status.Release == "" {
		if rec, gerr := s.st.GetEnvironment(ctx, env); gerr == nil && rec.Release != "" {
			if rerr := s.restored.get(env, rec.Release); rerr != nil {
				return nil, fmt.Errorf("its release %s did not start again when ferry started: %w", store.Short(rec.Release), rerr)
			}
		}
	}
	return status, err
}

// makeGateway makes the embedded environments' gateway server.
func (s *serving) makeGateway(context.Context) error {
	s.gwSrv = &http.Server{Handler: s.host.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	return nil
}

// run serves and runs every part until ctx ends or one fails, then stops
// them all and returns the first failure.
func (s *serving) run(ctx context.Context) error {
	errc := make(chan error, 7)
	var wg sync.WaitGroup
	wg.Go(func() { errc <- serveHTTP(s.apiSrv, s.apiLn, "the API") })
	wg.Go(func() { errc <- serveHTTP(s.gwSrv, s.gwLn, "the gateway") })
	wg.Go(func() { errc <- s.w.Run(ctx) })
	wg.Go(func() { errc <- s.exec.Run(ctx) })
	wg.Go(func() { errc <- s.promoter.Run(ctx) })
	wg.Go(func() { errc <- s.notifier.Run(ctx) })
	wg.Go(func() { errc <- s.prev.m.Run(ctx) })
	wg.Go(func() {
		for _, src := range s.srcs {
			s.prev.syncPolling(ctx, src.Name)
		}
	})
	if s.queueHeadsLater != nil {
		wg.Go(func() { s.queueHeadsLater(ctx) })
	}
	s.sayWhere()

	var first error
	select {
	case <-ctx.Done():
	case first = <-errc:
	}
	s.logf("ferry serve: stopping")
	s.cancel()
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer scancel()
	s.apiSrv.Shutdown(sctx)
	s.gwSrv.Shutdown(sctx)
	wg.Wait()
	close(errc)
	for err := range errc {
		if first == nil && err != nil && !errors.Is(err, context.Canceled) {
			first = err
		}
	}
	return first
}

// sayWhere logs where the API, the environments and the webhooks answer.
func (s *serving) sayWhere() {
	s.logf("ferry serve: dashboard on http://%s/ (sign in with an API token), API and webhooks there too, functions on %s/<env>/<path>", s.apiLn.Addr(), s.gateway)
	for _, e := range s.cfg.Environments {
		if e.Target != TargetKube {
			s.logf("environment %s: %s/%s/", e.Name, s.gateway, e.Name)
			continue
		}
		k, at := kubeFor(e.Name, e.Kube), ""
		if k.GatewayURL != "" {
			at = ", at " + k.GatewayURL
		}
		s.logf("environment %s: on Kubernetes, namespace %s%s", e.Name, k.Namespace, at)
	}
	for _, src := range s.srcs {
		// why: a source without a secret refuses every webhook; its URL
		// would be set up in a Git host only to be refused.
		hook := fmt.Sprintf("webhook: http://%s/hooks/github/%s", s.apiLn.Addr(), src.Name)
		if src.WebhookSecret == "" {
			hook = "no webhook (it takes one with a webhookSecret)"
		}
		s.logf("source %s: %s (%s), every %s; %s", src.Name, src.URL, src.Branch, src.Interval, hook)
	}
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
// each one's live release again where its target no longer runs it: the
// embedded targets run in this process, so a restart begins with nothing
// running; a cluster keeps what it ran.
func restoreEnvironments(ctx context.Context, st store.Store, cfg *Config, target func(string) (environments.Target, error),
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
// one its target does not run now. An environment that cannot start
// again is only reported: it must not keep ferry (and the others) down;
// its status shows the error.
func restoreRelease(ctx context.Context, st store.Store, e store.Environment, target func(string) (environments.Target, error),
	pull func(context.Context, string) (*build.Release, error), restored *restoreErrors, logf func(string, ...any)) {
	if e.Release == "" {
		return
	}
	t, err := target(e.Name)
	if err == nil {
		if s, serr := t.Status(ctx); serr == nil && s.Release == e.Release {
			logf("environment %s: runs %s", e.Name, store.Short(e.Release))
			return
		}
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
