package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ferrycd/ferry/build"
	"github.com/ferrycd/ferry/build/registry"
	"github.com/ferrycd/ferry/environments"
	"github.com/ferrycd/ferry/environments/embedded"
	"github.com/ferrycd/ferry/manifests"
	"github.com/ferrycd/ferry/promote"
	"github.com/ferrycd/ferry/store"
	"github.com/ferrycd/ferry/test/bench/figures"
)

// Targets from the issue.
const (
	targetPromoteMS  = 300
	targetRollbackMS = 300
	// poll is how often the gateway is asked which release answers.
	poll = time.Millisecond
	// answerWithin bounds one wait for an answer: far above any target,
	// so that only something broken reaches it.
	answerWithin = 30 * time.Second
)

// pipeline is the benchmark's: staging takes a release when someone
// promotes it, with no approval and no checks, so a figure is the
// promoter and the target alone.
const pipeline = `
---
apiVersion: ferry.dev/v1alpha1
kind: Pipeline
spec:
  stages:
  - {name: dev, auto: true}
  - {name: staging}
`

func main() {
	var (
		root = flag.String("root", ".", "ferry's repository, for examples/")
		data = flag.String("data", "", "folder for the registry, caches, store, images and logs (required)")
		runs = flag.Int("runs", 5, "promotions and rollbacks timed")
	)
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch {
	case *data == "":
		err = errors.New("-data is required")
	case *runs < 1:
		err = errors.New("-runs must be at least 1")
	default:
		b := &bench{root: *root, data: *data, runs: *runs, applies: map[string][]time.Duration{}}
		err = b.run(ctx)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "promote: %v\n", err)
		os.Exit(1)
	}
}

type bench struct {
	root, data string
	runs       int

	builder build.Builder
	st      *store.SQLite
	host    *embedded.Host
	gateway string
	p       promote.Promoter
	client  *http.Client

	mu      sync.Mutex
	applies map[string][]time.Duration // Apply's times per environment
	runID   int64
}

func (b *bench) run(ctx context.Context) error {
	started := time.Now()
	reg, err := registry.New(ctx, registry.Config{Addr: "127.0.0.1:0", Dir: filepath.Join(b.data, "registry")})
	if err != nil {
		return err
	}
	go reg.Serve()
	defer reg.Shutdown(context.WithoutCancel(ctx))
	repo := reg.Addr() + "/bench"
	b.builder, err = build.New(repo, build.WithCacheDir(filepath.Join(b.data, "build-cache")), build.WithBase("python", build.Scratch))
	if err != nil {
		return err
	}
	if b.st, err = store.Open(ctx, filepath.Join(b.data, "ferry.db")); err != nil {
		return err
	}
	defer b.st.Close()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	b.gateway = "http://" + ln.Addr().String()
	if b.host, err = embedded.NewHost(embedded.HostConfig{DataDir: filepath.Join(b.data, "host"), GatewayURL: b.gateway}); err != nil {
		return err
	}
	srv := &http.Server{Handler: b.host.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	defer b.cleanup()
	b.client = &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4}}

	b.p, err = promote.New(promote.Config{
		Store:        b.st,
		Target:       b.target,
		Repo:         repo,
		Environments: []promote.Environment{{Name: "dev"}, {Name: "staging"}},
		Log:          func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) },
	})
	if err != nil {
		return err
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- b.p.Run(rctx) }()
	defer func() {
		cancel()
		<-done
	}()

	fmt.Printf("method    %d promotions dev → staging and %d rollbacks of staging, each of a new Python release (scratch base, this machine's python3); medians\n", b.runs, b.runs)
	// Release 0 is live in dev and staging before the first run, so that
	// every run replaces one, as in use.
	var rels []store.Release
	t := time.Now()
	for i := range b.runs + 1 {
		r, err := b.release(ctx, i)
		if err != nil {
			return err
		}
		rels = append(rels, r)
	}
	fmt.Printf("release   %d releases built in %d ms (not counted)\n", len(rels), time.Since(t).Milliseconds())
	if err := b.toDev(ctx, rels[0]); err != nil {
		return err
	}
	if _, err := b.promote(ctx, rels[0]); err != nil {
		return fmt.Errorf("the first promotion: %w", err)
	}

	var promoteMS, rollbackMS []float64
	for i := 1; i <= b.runs; i++ {
		if err := b.toDev(ctx, rels[i]); err != nil {
			return err
		}
		b.takeApplies("staging")
		p, err := b.promote(ctx, rels[i])
		if err != nil {
			return fmt.Errorf("run %d: %w", i, err)
		}
		applyP := b.takeApplies("staging")
		r, err := b.rollback(ctx)
		if err != nil {
			return fmt.Errorf("run %d: %w", i, err)
		}
		applyR := b.takeApplies("staging")
		fmt.Printf("promote   %d/%d  promote %4d ms (Apply %4d ms)  rollback %4d ms (Apply %4d ms)\n",
			i, b.runs, p.Milliseconds(), applyP.Milliseconds(), r.Milliseconds(), applyR.Milliseconds())
		promoteMS = append(promoteMS, float64(p)/float64(time.Millisecond))
		rollbackMS = append(rollbackMS, float64(r)/float64(time.Millisecond))
	}
	pm, rm := int64(figures.Median(promoteMS)+0.5), int64(figures.Median(rollbackMS)+0.5)
	fmt.Printf("target    promote %d ms <= %d ms: %s\n", pm, targetPromoteMS, figures.Verdict(pm <= targetPromoteMS))
	fmt.Printf("target    rollback %d ms <= %d ms: %s\n", rm, targetRollbackMS, figures.Verdict(rm <= targetRollbackMS))
	fmt.Printf("total     took %d s\n", int(time.Since(started).Seconds()))
	fmt.Printf("promote: promote_ms=%d rollback_ms=%d\n", pm, rm)
	return nil
}

// target is Config.Target: the host's environment, with Apply timed.
func (b *bench) target(env string) (environments.Target, error) {
	t, err := b.host.Target(env, embedded.EnvironmentConfig{})
	if err != nil {
		return nil, err
	}
	return timed{Target: t, env: env, b: b}, nil
}

type timed struct {
	environments.Target
	env string
	b   *bench
}

func (t timed) Apply(ctx context.Context, rel *build.Release) error {
	start := time.Now()
	err := t.Target.Apply(ctx, rel)
	t.b.mu.Lock()
	t.b.applies[t.env] = append(t.b.applies[t.env], time.Since(start))
	t.b.mu.Unlock()
	return err
}

// takeApplies returns the time env's Applies took since the last call.
func (b *bench) takeApplies(env string) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	var sum time.Duration
	for _, d := range b.applies[env] {
		sum += d
	}
	b.applies[env] = nil
	return sum
}

func (b *bench) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for _, env := range []string{"dev", "staging"} {
		if t, err := b.host.Target(env, embedded.EnvironmentConfig{}); err == nil {
			if err := t.Delete(ctx); err != nil {
				fmt.Fprintf(os.Stderr, "promote: stopping environment %s: %v\n", env, err)
			}
		}
	}
}

// message is what release i answers at /hello.
func message(i int) string { return fmt.Sprintf("hello from release %d", i) }

// release builds a copy of examples/python answering message(i), with the
// benchmark's pipeline, and records it as the pipeline would.
func (b *bench) release(ctx context.Context, i int) (store.Release, error) {
	dir := filepath.Join(b.data, "src", fmt.Sprint(i))
	if err := os.CopyFS(dir, os.DirFS(filepath.Join(b.root, "examples", "python"))); err != nil {
		return store.Release{}, fmt.Errorf("copying examples/python: %w", err)
	}
	f := filepath.Join(dir, "hello", "main.py")
	src, err := os.ReadFile(f)
	if err != nil {
		return store.Release{}, err
	}
	edited := strings.Replace(string(src), `"hello from python"`, fmt.Sprintf("%q", message(i)), 1)
	if edited == string(src) {
		return store.Release{}, fmt.Errorf("%s has no greeting \"hello from python\" to change", f)
	}
	if err := os.WriteFile(f, []byte(edited), 0o644); err != nil {
		return store.Release{}, err
	}
	mf, err := os.OpenFile(filepath.Join(dir, "ferry.yaml"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return store.Release{}, err
	}
	_, err = mf.WriteString(pipeline)
	mf.Close()
	if err != nil {
		return store.Release{}, err
	}
	fsys, err := build.LocalSource(ctx, dir)
	if err != nil {
		return store.Release{}, err
	}
	set, err := manifests.Load(ctx, fsys)
	if err != nil {
		return store.Release{}, err
	}
	commit := fmt.Sprintf("bench%d", i)
	res, err := b.builder.Release(ctx, fsys, set, build.Info{Revision: commit})
	if err != nil {
		return store.Release{}, fmt.Errorf("building release %d: %w", i, err)
	}
	rel := res.Release
	rec, _, err := b.st.PutRelease(ctx, store.Release{ID: rel.Digest.String(), Source: "bench", Commit: commit, Ref: rel.Ref, Manifest: rel.Manifest})
	return rec, err
}

// toDev does what a pipeline run's deploy step does (apply to dev, record,
// tell the promoter) and waits until dev's verification succeeded: the
// release is then "live and verified in dev". Not counted.
func (b *bench) toDev(ctx context.Context, rel store.Release) error {
	a, err := build.PullRelease(ctx, rel.Ref)
	if err != nil {
		return err
	}
	dev, err := b.host.Target("dev", embedded.EnvironmentConfig{})
	if err != nil {
		return err
	}
	if err := dev.Apply(ctx, a); err != nil {
		return err
	}
	b.runID++
	if _, err := b.st.RecordDeployment(ctx, store.Deployment{Environment: "dev", Release: rel.ID, Actor: promote.Actor, RunID: b.runID, Status: store.DeploymentSucceeded}); err != nil {
		return err
	}
	if err := b.p.Deployed(ctx, b.runID, rel.ID, "dev"); err != nil {
		return err
	}
	deadline := time.Now().Add(answerWithin)
	for time.Now().Before(deadline) {
		ps, err := b.st.FindPromotions(ctx, store.PromotionQuery{RunID: b.runID})
		if err != nil {
			return err
		}
		if len(ps) == 1 && ps[0].Status == promote.StatusSucceeded {
			return nil
		}
		if len(ps) == 1 && ps[0].Status != promote.StatusVerifying {
			return fmt.Errorf("release %s in dev: %s: %s", rel.ID, ps[0].Status, ps[0].Reason)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("release %s was not verified in dev within %s", rel.ID, answerWithin)
}

// promote times Promote(rel, staging) until staging answers with it.
func (b *bench) promote(ctx context.Context, rel store.Release) (time.Duration, error) {
	want, err := b.messageOf(rel)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	p, err := b.p.Promote(ctx, rel.ID, "staging", promote.Identity{Name: "bench"})
	if err != nil {
		return 0, err
	}
	took, err := b.until(ctx, "staging", want, start)
	if err != nil {
		got, _ := b.st.GetPromotion(ctx, p.ID)
		return 0, fmt.Errorf("promotion %d (%s: %s): %w", p.ID, got.Status, got.Reason, err)
	}
	return took, nil
}

// rollback times Rollback(staging) to the release before until staging
// answers with it. That is the release staging ran before the live one,
// leaving out the ones it was rolled back from: release 0 every time,
// which ran until the promotion just timed.
func (b *bench) rollback(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	d, err := b.p.Rollback(ctx, "staging", promote.RollbackTarget{}, promote.Identity{Name: "bench"})
	if err != nil {
		return 0, err
	}
	prev, err := b.st.GetRelease(ctx, d.Release)
	if err != nil {
		return 0, err
	}
	want, err := b.messageOf(prev)
	if err != nil {
		return 0, err
	}
	return b.until(ctx, "staging", want, start)
}

// messageOf reads which message a release's hello answers, from the
// release's record (its source folder's number).
func (b *bench) messageOf(rel store.Release) (string, error) {
	var i int
	if _, err := fmt.Sscanf(rel.Commit, "bench%d", &i); err != nil {
		return "", fmt.Errorf("release %s: commit %q is not the benchmark's", rel.ID, rel.Commit)
	}
	return message(i), nil
}

// until calls GET /<env>/hello every poll until it answers want, and
// returns the time since start.
func (b *bench) until(ctx context.Context, env, want string, start time.Time) (time.Duration, error) {
	url := b.gateway + "/" + env + "/hello"
	last := ""
	for time.Since(start) < answerWithin {
		if got, err := b.get(ctx, url); err != nil {
			last = err.Error()
		} else if got == want {
			return time.Since(start), nil
		} else {
			last = got
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(poll):
		}
	}
	return 0, fmt.Errorf("%s did not answer %q within %s; the last answer: %s", url, want, answerWithin, last)
}

func (b *bench) get(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	var v struct{ Message string }
	if err := json.Unmarshal(body, &v); err != nil {
		return "", fmt.Errorf("%s: %w", body, err)
	}
	return v.Message, nil
}
