package promote

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrycd/ferry/build"
	"github.com/ferrycd/ferry/environments"
	"github.com/ferrycd/ferry/manifests"
	"github.com/ferrycd/ferry/store"
	"github.com/ferrycd/ferry/test/testbuild"
	"github.com/ferrycd/ferry/test/testenv"
)

// shared is the registry and builder every test pushes to, and the
// releases built so far: one build cache, so each release builds once for
// the whole package.
var shared struct {
	dir     string
	repo    string
	builder build.Builder

	mu       sync.Mutex
	releases map[string]*build.Release
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	return testbuild.RunWithBuilder("ferry-promote-test-", func(dir, repo string, b build.Builder) int {
		shared.dir, shared.repo, shared.builder = dir, repo, b
		shared.releases = map[string]*build.Release{}
		return m.Run()
	})
}

// spec says how a test release differs from examples/python.
type spec struct {
	// message is what the hello function answers in "message".
	message string
	// pipeline is a Pipeline document added to ferry.yaml ("" for the
	// default pipeline: dev auto, staging auto, prod one approval).
	pipeline string
	// bye adds a second function, bye, from the same code, at GET /bye.
	bye bool
	// main, when set, is hello/main.py's whole content.
	main string
}

func (s spec) key() string {
	sum := sha256.Sum256(fmt.Appendf(nil, "%q %q %v %q", s.message, s.pipeline, s.bye, s.main))
	return hex.EncodeToString(sum[:6])
}

// commit is the fake commit a spec's release is made at.
func (s spec) commit() string { return "c" + s.key() }

const byeFunction = `
---
apiVersion: ferry.dev/v1alpha1
kind: Function
metadata: {name: bye}
spec: {runtime: python, handler: main.handle, source: hello, scale: {min: 0, max: 2}}
---
apiVersion: ferry.dev/v1alpha1
kind: HTTPTrigger
metadata: {name: bye}
spec: {function: bye, path: /bye, methods: [GET]}
`

// artifact builds (once per package) and pushes the release of s.
func artifact(t *testing.T, s spec) *build.Release {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if a := shared.releases[s.key()]; a != nil {
		return a
	}
	dir := filepath.Join(shared.dir, "src", s.key())
	if err := os.CopyFS(dir, os.DirFS("../examples/python")); err != nil {
		t.Fatal(err)
	}
	edit := func(file, old, new string) {
		t.Helper()
		data, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(data), old) {
			t.Fatalf("%s has no %q", file, old)
		}
		if err := os.WriteFile(filepath.Join(dir, file), []byte(strings.Replace(string(data), old, new, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	edit("hello/main.py", `"hello from python"`, fmt.Sprintf("%q", s.message))
	if s.main != "" {
		if err := os.WriteFile(filepath.Join(dir, "hello", "main.py"), []byte(s.main), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	manifest := ""
	if s.pipeline != "" {
		manifest += "\n---\napiVersion: ferry.dev/v1alpha1\nkind: Pipeline\n" + s.pipeline
	}
	if s.bye {
		manifest += byeFunction
	}
	if manifest != "" {
		f, err := os.OpenFile(filepath.Join(dir, "ferry.yaml"), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.WriteString(manifest)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	src, err := build.LocalSource(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	set, err := manifests.Load(ctx, src)
	if err != nil {
		t.Fatalf("the test's manifest: %v", err)
	}
	res, err := shared.builder.Release(ctx, src, set, build.Info{SourceURL: "https://git.example.com/demo", Revision: s.commit()})
	if err != nil {
		t.Fatal(err)
	}
	shared.releases[s.key()] = res.Release
	return res.Release
}

// clock is Config.Now: the real time moved by an offset.
type clock struct{ offset atomic.Int64 }

func (c *clock) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

// set makes the clock read at now.
func (c *clock) set(at time.Time) { c.offset.Store(int64(time.Until(at))) }

func (c *clock) advance(d time.Duration) { c.offset.Add(int64(d)) }

// fixture is one ferry: a store file, a host with dev, staging and prod
// behind one gateway on loopback, and a promoter running.
type fixture struct {
	t       *testing.T
	ctx     context.Context
	dbPath  string
	st      *store.SQLite
	host    *testenv.Host
	gateway string
	clock   *clock
	cfg     Config
	p       *engine
	stop    func()
	done    atomic.Bool
	authors sync.Map // commit → [2]string{name, email}
}

var envs = []string{"dev", "staging", "prod"}

// newFixture starts a ferry; with a non-nil configure, the Config is
// changed before the promoter is made.
func newFixture(t *testing.T, configure func(*Config)) *fixture {
	t.Helper()
	f := &fixture{t: t, ctx: context.Background(), dbPath: filepath.Join(t.TempDir(), "ferry.db"), clock: &clock{}}
	var err error
	if f.st, err = store.Open(f.ctx, f.dbPath); err != nil {
		t.Fatal(err)
	}
	f.startHost()
	f.cfg = Config{
		Store:        f.st,
		Target:       f.target,
		Repo:         shared.repo,
		Environments: []Environment{{Name: "dev"}, {Name: "staging"}, {Name: "prod"}},
		Groups:       map[string][]string{"group:ops": {"dave"}},
		CommitAuthor: func(_ context.Context, source, commit string) (string, string, error) {
			if a, ok := f.authors.Load(commit); ok {
				return a.([2]string)[0], a.([2]string)[1], nil
			}
			return "Ada", "ada@example.com", nil
		},
		CheckInterval: 100 * time.Millisecond,
		Log: func(format string, args ...any) {
			if !f.done.Load() {
				t.Logf(format, args...)
			}
		},
		Now: f.clock.Now,
	}
	if configure != nil {
		configure(&f.cfg)
	}
	f.start()
	t.Cleanup(func() {
		f.stop()
		f.stopHost()
		f.st.Close()
		f.done.Store(true)
	})
	return f
}

// startHost starts the environments' host and its gateway on a free port.
func (f *fixture) startHost() {
	var err error
	f.host, err = testenv.StartEmbedded(filepath.Join(f.t.TempDir(), "data"), envs...)
	if err != nil {
		f.t.Fatal(err)
	}
	f.gateway = f.host.Gateway
}

// stopHost stops every function and the gateway: what a crash of ferry
// does to the embedded environments.
func (f *fixture) stopHost() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := f.host.Stop(ctx); err != nil {
		f.t.Error(err)
	}
}

func (f *fixture) target(env string) (environments.Target, error) { return f.host.Target(env) }

// start makes a promoter of f.cfg and runs it until stop.
func (f *fixture) start() {
	p, err := newEngine(f.cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	f.p = p
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once sync.Once
	f.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				f.t.Errorf("Run: %v", err)
			}
		})
	}
}

// restart is a crash of ferry and its start again: the promoter stops
// where it is, every function process dies, and a new promoter with a
// new host and gateway opens the same store file.
func (f *fixture) restart() {
	f.stop()
	f.stopHost()
	if err := f.st.Close(); err != nil {
		f.t.Fatal(err)
	}
	var err error
	if f.st, err = store.Open(f.ctx, f.dbPath); err != nil {
		f.t.Fatal(err)
	}
	f.startHost()
	f.cfg.Store = f.st
	f.start()
}

// release records the release of s in the store, and its builds, as the
// pipeline would.
func (f *fixture) release(s spec) store.Release {
	f.t.Helper()
	a := f.built(s)
	rec, _, err := f.st.PutRelease(f.ctx, store.Release{ID: a.Digest.String(), Source: "demo", Commit: s.commit(), Ref: a.Ref, Manifest: a.Manifest})
	if err != nil {
		f.t.Fatal(err)
	}
	return rec
}

// built records the builds of s's functions for source demo, as the
// pipeline's build step would, without a release.
func (f *fixture) built(s spec) *build.Release {
	f.t.Helper()
	a := artifact(f.t, s)
	var builds []store.Build
	for _, fn := range a.Set.Functions {
		builds = append(builds, store.Build{Source: "demo", Commit: s.commit(), Function: fn.Name, Key: s.key(), Image: fn.Spec.Image})
	}
	if err := f.st.PutBuilds(f.ctx, builds); err != nil {
		f.t.Fatal(err)
	}
	return a
}

var runs atomic.Int64

// pipelineDeploy does what a pipeline run's deploy step does: apply the
// release to dev, record the deployment, tell the promoter. It waits for
// dev's verification to end and returns its promotion.
func (f *fixture) pipelineDeploy(rel store.Release) store.Promotion {
	f.t.Helper()
	a, err := build.PullRelease(f.ctx, rel.Ref)
	if err != nil {
		f.t.Fatal(err)
	}
	dev, _ := f.target("dev")
	if err := dev.Apply(f.ctx, a); err != nil {
		f.t.Fatal(err)
	}
	run := runs.Add(1)
	if _, err := f.st.RecordDeployment(f.ctx, store.Deployment{Environment: "dev", Release: rel.ID, Actor: Actor, RunID: run, Status: store.DeploymentSucceeded}); err != nil {
		f.t.Fatal(err)
	}
	if err := f.p.Deployed(f.ctx, run, rel.ID, "dev"); err != nil {
		f.t.Fatal(err)
	}
	ps, err := f.st.FindPromotions(f.ctx, store.PromotionQuery{RunID: run})
	if err != nil || len(ps) != 1 {
		f.t.Fatalf("Deployed made %+v, %v; want one promotion", ps, err)
	}
	return f.wait(ps[0].ID, StatusSucceeded, StatusFailed, StatusRolledBack, StatusSuperseded)
}

// wait waits until promotion id has one of statuses.
func (f *fixture) wait(id int64, statuses ...string) store.Promotion {
	f.t.Helper()
	var p store.Promotion
	f.eventually(fmt.Sprintf("promotion %d to be %s", id, strings.Join(statuses, " or ")), func() bool {
		var err error
		p, err = f.st.GetPromotion(f.ctx, id)
		if err != nil {
			f.t.Fatal(err)
		}
		return slices.Contains(statuses, p.Status)
	}, func() string { return fmt.Sprintf("it is %s: %s", p.Status, p.Reason) })
	return p
}

// eventually waits up to a minute for cond.
func (f *fixture) eventually(what string, cond func() bool, state func() string) {
	f.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			f.t.Fatalf("waited a minute for %s; %s", what, state())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// promotion returns the only promotion of rel into env.
func (f *fixture) promotion(rel store.Release, env string) store.Promotion {
	f.t.Helper()
	ps := f.promotions(rel, env)
	if len(ps) != 1 {
		f.t.Fatalf("promotions of %s to %s: %+v, want one", store.Short(rel.ID), env, ps)
	}
	return ps[0]
}

func (f *fixture) promotions(rel store.Release, env string) []store.Promotion {
	f.t.Helper()
	ps, err := f.st.FindPromotions(f.ctx, store.PromotionQuery{Release: rel.ID, Environment: env})
	if err != nil {
		f.t.Fatal(err)
	}
	return ps
}

// answer is what GET /<env>/<path> answers in "message", or the status.
func (f *fixture) answer(env, path string) string {
	resp, err := http.Get(f.gateway + "/" + env + path)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var v struct{ Message string }
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &v) != nil {
		return fmt.Sprintf("%s: %s", resp.Status, body)
	}
	return v.Message
}

// answers checks that env answers msg at /hello now.
func (f *fixture) answers(env, msg string) {
	f.t.Helper()
	if got := f.answer(env, "/hello"); got != msg {
		f.t.Errorf("%s answers %q, want %q", env, got, msg)
	}
}

// deployments lists env's deployments, oldest first.
func (f *fixture) deployments(env string) []store.Deployment {
	f.t.Helper()
	ds, err := f.st.FindDeployments(f.ctx, store.DeploymentQuery{Environment: env})
	if err != nil {
		f.t.Fatal(err)
	}
	slices.Reverse(ds)
	return ds
}

func (f *fixture) env(name string) store.Environment {
	f.t.Helper()
	e, err := f.st.GetEnvironment(f.ctx, name)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		f.t.Fatal(err)
	}
	return e
}

// refused checks that err is an *Error of code whose message has every
// one of words.
func refused(t *testing.T, err error, code ErrorCode, words ...string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("got %v, want a refusal (*Error)", err)
	}
	if e.Code != code {
		t.Errorf("%q: code %d, want %d", e.Message, e.Code, code)
	}
	for _, w := range words {
		if !strings.Contains(e.Message, w) {
			t.Errorf("%q does not say %q", e.Message, w)
		}
	}
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func check(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

var (
	ann   = Identity{Name: "ann", Email: "ann@example.com"}
	bob   = Identity{Name: "bob", Email: "bob@example.com"}
	carol = Identity{Name: "carol", Email: "carol@example.com"}
	dave  = Identity{Name: "dave"}
	eve   = Identity{Name: "eve", Groups: []string{"ops"}}
)

// envTarget is an environment's target, for what it runs.
type envTarget struct{ t environments.Target }

type statusOf struct {
	release string
	images  map[string]string
}

func (f *fixture) targetOf(env string) (*envTarget, error) {
	t, err := f.target(env)
	return &envTarget{t}, err
}

func (e *envTarget) status(ctx context.Context) (*statusOf, error) {
	st, err := e.t.Status(ctx)
	if err != nil {
		return nil, err
	}
	out := &statusOf{release: st.Release, images: map[string]string{}}
	for _, fn := range st.Functions {
		out.images[fn.Name] = fn.Image
	}
	return out, nil
}
