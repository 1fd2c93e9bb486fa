package server

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ferrycd/ferry/build"
	"github.com/ferrycd/ferry/environments"
	"github.com/ferrycd/ferry/environments/embedded"
	"github.com/ferrycd/ferry/internal/seal"
	"github.com/ferrycd/ferry/promote"
	"github.com/ferrycd/ferry/store"
)

// uiStack is ferry serve's parts as Serve wires them, for the dashboard's
// tests: a store file, an embedded host behind its gateway, the envSet, a
// running promoter, the API and the dashboard.

// uiStackConfig says what differs between the tests' stacks.
type uiStackConfig struct {
	config string  // ferry serve's configuration (environments: and gates)
	tokens []Token // the API's and the dashboard's
	// author, when set, says who wrote a commit (self-approvals).
	author func(ctx context.Context, source, commit string) (name, email string, err error)
	// repo, when set, is where a rollback finds a release the store lacks.
	repo string
}

type uiStack struct {
	t        *testing.T
	st       *store.SQLite
	gateway  string
	promoter promote.Promoter
	envs     *envSet
	api      string // the API's URL
	ui       string // the dashboard's URL
}

func newUIStack(t *testing.T, c uiStackConfig) *uiStack {
	t.Helper()
	ctx := context.Background()
	cfg, err := ParseConfig([]byte(c.config), t.TempDir(), "ferry-serve.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	f := &uiStack{t: t}
	if f.st, err = store.Open(ctx, filepath.Join(dataDir, "ferry.db")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.st.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.gateway = "http://" + ln.Addr().String()
	host, err := embedded.NewHost(embedded.HostConfig{DataDir: dataDir, GatewayURL: f.gateway, Environments: cfg.environmentNames(), Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	gw := &http.Server{Handler: host.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go gw.Serve(ln)
	t.Cleanup(func() { gw.Close() })
	box, err := seal.New(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	pull := func(ctx context.Context, ref string) (*build.Release, error) { return build.PullRelease(ctx, ref) }
	settings := &envSettings{cfg: cfg, store: f.st, box: box}
	f.envs = newEnvSet(cfg, newTargets(host, settings, t.Logf), f.st, f.st, settings, pull, &restoreErrors{}, f.gateway, t.Logf)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		f.envs.stopAll(ctx)
	})
	f.promoter, err = promote.New(promote.Config{
		Store:        f.st,
		Target:       func(env string) (environments.Target, error) { return f.envs.target(env) },
		Pull:         pull,
		Environments: cfg.gatedEnvironments(),
		CommitAuthor: c.author,
		Repo:         c.repo,
		Log:          t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	f.envs.promoter = f.promoter.(promote.Environments)
	runCtx, stopRun := context.WithCancel(context.Background())
	var running sync.WaitGroup
	running.Add(1)
	go func() {
		defer running.Done()
		if err := f.promoter.Run(runCtx); err != nil {
			t.Errorf("the promoter stopped: %v", err)
		}
	}()
	// why: the promoter stops before the targets and the store it uses.
	t.Cleanup(func() { stopRun(); running.Wait() })
	api, err := NewAPI(APIConfig{
		Store:   f.st,
		Tokens:  c.tokens,
		Sources: &sourceManager{store: f.st},
		Environments: func(ctx context.Context, env string) (*environments.Status, error) {
			t, err := f.envs.target(env)
			if err != nil {
				return nil, err
			}
			return t.Status(ctx)
		},
		Promoter:         f.promoter,
		EnvironmentOrder: cfg.environmentNames(),
		EnvironmentSet:   f.envs,
		Log:              t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	f.api = srv.URL
	f.ui = serveUI(t, api, c.tokens)
	return f
}
