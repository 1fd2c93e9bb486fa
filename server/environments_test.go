package server

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferrycd/ferry/build"
	"github.com/ferrycd/ferry/build/registry"
	"github.com/ferrycd/ferry/environments"
	"github.com/ferrycd/ferry/environments/embedded"
	"github.com/ferrycd/ferry/internal/seal"
	"github.com/ferrycd/ferry/manifests"
	"github.com/ferrycd/ferry/promote"
	"github.com/ferrycd/ferry/store"
)

// envFixture is the environments' part of ferry serve: a store file, an
// embedded host behind its gateway, the envSet, a promoter and the API,
// as Serve wires them. restart makes them all again over the same store.
type envFixture struct {
	t        *testing.T
	dataDir  string
	cfg      *Config
	st       *store.SQLite
	host     *embedded.Host
	gateway  string
	gwSrv    *http.Server
	envs     *envSet
	promoter promote.Promoter
	api      *httptest.Server
}

// exampleBuilder is a builder pushing to a registry of its own, and that
// registry's repository.
func exampleBuilder(t *testing.T) (build.Builder, string) {
	t.Helper()
	dir := t.TempDir()
	reg, err := registry.New(context.Background(), registry.Config{Addr: "127.0.0.1:0", Dir: filepath.Join(dir, "registry")})
	if err != nil {
		t.Fatal(err)
	}
	go reg.Serve()
	t.Cleanup(func() { reg.Shutdown(context.Background()) })
	b, err := build.New(reg.Addr()+"/test", build.WithCacheDir(filepath.Join(dir, "cache")), build.WithBase("python", build.Scratch))
	if err != nil {
		t.Fatal(err)
	}
	return b, reg.Addr() + "/test"
}

// buildExample builds and pushes examples/python to a registry of its
// own, and returns the release.
func buildExample(t *testing.T) *build.Release {
	t.Helper()
	ctx := context.Background()
	b, _ := exampleBuilder(t)
	src, err := build.LocalSource(ctx, "../examples/python")
	if err != nil {
		t.Fatal(err)
	}
	set, err := manifests.Load(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	res, err := b.Release(ctx, src, set, build.Info{SourceURL: "https://git.example.com/demo", Revision: "c0ffee"})
	if err != nil {
		t.Fatal(err)
	}
	return res.Release
}

func newEnvFixture(t *testing.T) *envFixture {
	t.Helper()
	cfg, err := ParseConfig([]byte("previews: {env: {GREETING: preview}}\n"), t.TempDir(), "ferry-serve.yaml")
	if err != nil {
		t.Fatal(err)
	}
	f := &envFixture{t: t, dataDir: t.TempDir(), cfg: cfg}
	f.start()
	t.Cleanup(f.stop)
	return f
}

// start opens the store and wires the rest as Serve does, the previews
// restored.
func (f *envFixture) start() {
	t := f.t
	ctx := context.Background()
	var err error
	if f.st, err = store.Open(ctx, filepath.Join(f.dataDir, "ferry.db")); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.gateway = "http://" + ln.Addr().String()
	f.host, err = embedded.NewHost(embedded.HostConfig{DataDir: f.dataDir, GatewayURL: f.gateway, Environments: f.cfg.environmentNames(), Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	f.gwSrv = &http.Server{Handler: f.host.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go f.gwSrv.Serve(ln)
	box, err := seal.New(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	pull := func(ctx context.Context, ref string) (*build.Release, error) { return build.PullRelease(ctx, ref) }
	restored := &restoreErrors{}
	settings := &envSettings{cfg: f.cfg, store: f.st, box: box}
	f.envs = newEnvSet(f.cfg, newTargets(f.host, settings, t.Logf), f.st, f.st, settings, pull, restored, f.gateway, t.Logf)
	if err := restoreEnvironments(ctx, f.st, f.cfg, f.envs.target, pull, restored, t.Logf); err != nil {
		t.Fatal(err)
	}
	f.promoter, err = promote.New(promote.Config{
		Store:        f.st,
		Target:       func(env string) (environments.Target, error) { return f.envs.target(env) },
		Pull:         pull,
		Environments: f.cfg.gatedEnvironments(),
		Log:          t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	f.envs.promoter = f.promoter.(promote.Environments)
	if err := f.envs.restorePreviews(ctx); err != nil {
		t.Fatal(err)
	}
	api, err := NewAPI(APIConfig{
		Store:   f.st,
		Tokens:  []Token{{Name: "vera", Secret: viewerSecret, Roles: []Role{RoleViewer}}},
		Sources: &sourceManager{store: f.st},
		Environments: func(ctx context.Context, env string) (*environments.Status, error) {
			t, err := f.envs.target(env)
			if err != nil {
				return nil, err
			}
			return t.Status(ctx)
		},
		EnvironmentOrder: f.cfg.environmentNames(),
		EnvironmentSet:   f.envs,
	})
	if err != nil {
		t.Fatal(err)
	}
	f.api = httptest.NewServer(api)
}

// stop is ferry's stop: every environment's functions, the gateway, the
// API and the store.
func (f *envFixture) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f.envs.stopAll(ctx)
	f.gwSrv.Close()
	f.api.Close()
	f.st.Close()
}

func (f *envFixture) restart() {
	f.stop()
	f.start()
}

// deploy applies rel to env through its target and records it, as a
// preview's run does.
func (f *envFixture) deploy(env string, rel *build.Release) {
	f.t.Helper()
	ctx := context.Background()
	tg, err := f.envs.target(env)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := tg.Apply(ctx, rel); err != nil {
		f.t.Fatal(err)
	}
	if _, _, err := f.st.PutRelease(ctx, store.Release{ID: rel.Digest.String(), Source: "demo", Commit: "c0ffee", Ref: rel.Ref, Manifest: rel.Manifest}); err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.st.RecordDeployment(ctx, store.Deployment{Environment: env, Release: rel.Digest.String(), Actor: "ferry", Status: store.DeploymentSucceeded}); err != nil {
		f.t.Fatal(err)
	}
}

// call GETs the gateway's GATEWAY/env/hello.
func (f *envFixture) call(env string) (int, string) {
	f.t.Helper()
	resp, err := http.Get(f.gateway + "/" + env + "/hello")
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// listed returns GET /api/v1/environments.
func (f *envFixture) listed() []EnvironmentView {
	f.t.Helper()
	c, err := NewClient(f.api.URL, viewerSecret)
	if err != nil {
		f.t.Fatal(err)
	}
	envs, err := c.Environments(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	return envs
}

func names(envs []EnvironmentView) []string {
	var out []string
	for _, e := range envs {
		out = append(out, e.Name)
	}
	return out
}

func TestPreviewEnvironmentMadeAndRemoved(t *testing.T) {
	rel := buildExample(t)
	f := newEnvFixture(t)
	ctx := context.Background()
	const env = "pr-3-demo"

	if _, err := f.envs.target(env); err == nil {
		t.Fatal("a preview has a target before it is made")
	}
	for range 2 { // idempotent
		if err := f.envs.Make(ctx, env); err != nil {
			t.Fatal(err)
		}
	}
	f.deploy(env, rel)
	if code, body := f.call(env); code != 200 || !strings.Contains(body, "hello from python") {
		t.Fatalf("the preview answers %d %s", code, body)
	}
	got := f.listed()
	if want := []string{"dev", "staging", "prod", env}; !slices.Equal(names(got), want) {
		t.Fatalf("environments %v, want %v", names(got), want)
	}
	if p := got[3]; !p.Preview || p.URL != f.gateway+"/"+env+"/" || p.Release != rel.Digest.String() || len(p.Functions) != 1 {
		t.Errorf("the preview is listed as %+v", p)
	}
	if got[0].Preview || got[0].URL != "" {
		t.Errorf("dev is listed as a preview: %+v", got[0])
	}
	metrics := newMetricsFixture(t, metricsConfig{Environments: f.envs.Names, Status: func(ctx context.Context, env string) (*environments.Status, error) {
		t, err := f.envs.target(env)
		if err != nil {
			return nil, err
		}
		return t.Status(ctx)
	}})
	if samples := metrics.scrape(t); !hasEnv(samples, env) {
		t.Errorf("/metrics has no series of %s", env)
	}

	if err := f.envs.Remove(ctx, env); err != nil {
		t.Fatal(err)
	}
	const gone = "environment pr-3-demo was removed (its pull request closed)"
	if code, body := f.call(env); code != 404 || !strings.Contains(body, gone) {
		t.Errorf("the removed preview answers %d %s, want 404 saying %q", code, body, gone)
	}
	_, err := f.promoter.Promote(ctx, rel.Digest.String(), env, promote.Identity{Name: "ann"})
	if err == nil || !strings.Contains(err.Error(), gone) {
		t.Errorf("promoting into the removed preview: %v, want %q", err, gone)
	}
	_, err = f.promoter.Rollback(ctx, env, promote.RollbackTarget{}, promote.Identity{Name: "ann"})
	if err == nil || !strings.Contains(err.Error(), gone) {
		t.Errorf("rolling the removed preview back: %v, want %q", err, gone)
	}
	if got := names(f.listed()); slices.Contains(got, env) {
		t.Errorf("the removed preview is still listed: %v", got)
	}
	c, _ := NewClient(f.api.URL, viewerSecret)
	if _, err := c.Environment(ctx, env); err == nil || !strings.Contains(err.Error(), "does not exist now") {
		t.Errorf("GET the removed preview: %v", err)
	}
	if samples := metrics.scrape(t); hasEnv(samples, env) {
		t.Errorf("/metrics still has series of the removed %s", env)
	}
	if ds, err := f.st.FindDeployments(ctx, store.DeploymentQuery{Environment: env}); err != nil || len(ds) != 1 {
		t.Errorf("the preview's history: %d deployments, %v; want it kept", len(ds), err)
	}
	if err := f.envs.Remove(ctx, env); err != nil {
		t.Errorf("removing it again: %v", err)
	}

	// A reopened pull request: the same name works again, from nothing.
	if err := f.envs.Make(ctx, env); err != nil {
		t.Fatal(err)
	}
	if got := f.listed(); len(got) != 4 || got[3].Release != "" {
		t.Errorf("made again: %+v", got)
	}
	f.deploy(env, rel)
	if code, body := f.call(env); code != 200 || !strings.Contains(body, "hello from python") {
		t.Errorf("made again, the preview answers %d %s", code, body)
	}

	for _, e := range []string{"dev", "prod"} {
		if err := f.envs.Remove(ctx, e); err == nil || !strings.Contains(err.Error(), "cannot be removed") {
			t.Errorf("removing configured %s: %v", e, err)
		}
	}
	if err := f.envs.Make(ctx, "qa"); err == nil {
		t.Error("made qa, which is neither configured nor a preview")
	}
}

func TestPreviewsRestoredAfterARestart(t *testing.T) {
	rel := buildExample(t)
	f := newEnvFixture(t)
	ctx := context.Background()
	for _, env := range []string{"pr-4-demo", "pr-5-demo"} {
		if err := f.envs.Make(ctx, env); err != nil {
			t.Fatal(err)
		}
		f.deploy(env, rel)
	}
	if err := f.envs.RemoveBecause(ctx, "pr-5-demo", "idle for 72h"); err != nil {
		t.Fatal(err)
	}
	f.restart()

	if got, want := names(f.listed()), []string{"dev", "staging", "prod", "pr-4-demo"}; !slices.Equal(got, want) {
		t.Errorf("after a restart: %v, want %v", got, want)
	}
	if code, body := f.call("pr-4-demo"); code != 200 || !strings.Contains(body, "hello from python") {
		t.Errorf("the restored preview answers %d %s", code, body)
	}
	if code, _ := f.call("pr-5-demo"); code != 404 {
		t.Errorf("the removed preview answers %d after a restart", code)
	}
	_, err := f.promoter.Promote(ctx, rel.Digest.String(), "pr-5-demo", promote.Identity{Name: "ann"})
	if !promote.IsCode(err, promote.Invalid) {
		t.Errorf("promoting into the removed preview after a restart: %v", err)
	}
	if _, err := f.envs.target("pr-5-demo"); err == nil {
		t.Error("the removed preview has a target after a restart")
	}
}

// hasEnv reports whether samples hold a series labelled env.
func hasEnv(samples map[string]string, env string) bool {
	for k := range samples {
		if strings.Contains(k, `env="`+env+`"`) {
			return true
		}
	}
	return false
}
