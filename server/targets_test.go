package server

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrycd/ferry/build"
	"github.com/ferrycd/ferry/environments"
	"github.com/ferrycd/ferry/environments/embedded"
	"github.com/ferrycd/ferry/internal/seal"
	"github.com/ferrycd/ferry/store"
)

// clusterTarget stands for a kube target: a cluster that keeps what it
// runs across ferry's restarts. It counts what it is asked to do.
type clusterTarget struct {
	mu      sync.Mutex
	env     string
	kube    KubeConfig
	release string
	applied []string
	deleted int
}

func (c *clusterTarget) Apply(_ context.Context, rel *build.Release) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.release = rel.Digest.String()
	c.applied = append(c.applied, c.release)
	return nil
}

func (c *clusterTarget) Status(context.Context) (*environments.Status, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return &environments.Status{Environment: c.env, Release: c.release}, nil
}

func (c *clusterTarget) Delete(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deleted++
	c.release = ""
	return nil
}

func (c *clusterTarget) URL(function string) (string, error) {
	return c.kube.GatewayURL + "/" + function, nil
}

func (c *clusterTarget) Call(context.Context, *http.Request) (*http.Response, error) {
	return nil, errors.New("not in this test")
}

func (c *clusterTarget) Deliver(context.Context, string, *environments.Event) (*http.Response, error) {
	return nil, errors.New("not in this test")
}

// withKubeTargets sets newKubeTarget to make clusterTargets for the
// test, and returns them by environment.
func withKubeTargets(t *testing.T) map[string]*clusterTarget {
	made := map[string]*clusterTarget{}
	var mu sync.Mutex
	old := newKubeTarget
	newKubeTarget = func(env string, k KubeConfig, o KubeTargetOptions) (environments.Target, error) {
		mu.Lock()
		defer mu.Unlock()
		if made[env] != nil {
			t.Errorf("a second kube target made for %s", env)
		}
		if o.EnvValues == nil || o.Secret == nil || o.Untrusted != strings.HasPrefix(env, "pr-") {
			t.Errorf("kube target of %s: options %+v", env, o)
		}
		c := &clusterTarget{env: env, kube: k}
		made[env] = c
		return c, nil
	}
	t.Cleanup(func() { newKubeTarget = old })
	return made
}

// TestTargetFactory: one ferry with an embedded environment beside kube
// ones: each environment gets the target its target: says, made once;
// a kube preview is deleted from its cluster when removed; and a start
// applies again only what a target does not run now.
func TestTargetFactory(t *testing.T) {
	dir := t.TempDir()
	cfg, err := ParseConfig([]byte(`
environments:
- {name: dev}
- {name: staging, target: kube}
- {name: prod, target: kube, kube: {context: prod-eu, namespace: shop-prod, gatewayURL: "https://fn.example.com"}}
previews: {target: kube, kube: {context: previews}}
`), dir, "ferry-serve.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(dir, "ferry.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	host, err := embedded.NewHost(embedded.HostConfig{DataDir: filepath.Join(dir, "data"), GatewayURL: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	box, err := seal.New(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	settings := &envSettings{cfg: cfg, store: st, box: box}
	rel := &build.Release{Ref: "registry.example.com/ferry@sha256:" + strings.Repeat("ab", 32)}
	rel.Digest.Algorithm, rel.Digest.Hex = "sha256", strings.Repeat("ab", 32)
	pull := func(context.Context, string) (*build.Release, error) { return rel, nil }
	envs := newEnvSet(cfg, newTargets(host, settings, t.Logf), st, st, settings, pull, &restoreErrors{}, "http://127.0.0.1:1", t.Logf)

	made := withKubeTargets(t)
	dev, err := envs.target("dev")
	if _, ok := dev.(*embedded.Target); err != nil || !ok {
		t.Errorf("dev: %T %v, want an embedded target", dev, err)
	}
	prod, err := envs.target("prod")
	if err != nil {
		t.Fatal(err)
	}
	again, _ := envs.target("prod")
	if prod != made["prod"] || again != prod {
		t.Errorf("prod: %v then %v, want the one kube target made for it", prod, again)
	}
	if k := made["prod"].kube; k.Context != "prod-eu" || k.Namespace != "shop-prod" || k.GatewayURL != "https://fn.example.com" {
		t.Errorf("prod's kube: %+v", k)
	}
	if _, err := envs.target("staging"); err != nil || made["staging"].kube.Namespace != "ferry-staging" {
		t.Errorf("staging: %v, kube %+v; want namespace ferry-staging", err, made["staging"])
	}

	// A kube preview: made in its own namespace, deleted when removed.
	if err := envs.Make(ctx, "pr-7-demo"); err != nil {
		t.Fatal(err)
	}
	pr := made["pr-7-demo"]
	if pr == nil || pr.kube.Namespace != "ferry-pr-7-demo" || pr.kube.Context != "previews" {
		t.Fatalf("the preview's target: %+v", pr)
	}
	if err := envs.RemoveBecause(ctx, "pr-7-demo", "its pull request closed"); err != nil {
		t.Fatal(err)
	}
	if pr.deleted != 1 {
		t.Errorf("the removed preview was deleted %d times from its cluster, want once", pr.deleted)
	}

	// A start: staging's cluster runs its release still; prod's does not.
	if _, _, err := st.PutRelease(ctx, store.Release{ID: rel.Digest.String(), Source: "demo", Commit: "c1", Ref: rel.Ref}); err != nil {
		t.Fatal(err)
	}
	for _, env := range []string{"staging", "prod"} {
		if err := st.PutEnvironment(ctx, store.Environment{Name: env, Target: TargetKube, Updated: time.Now()}); err != nil {
			t.Fatal(err)
		}
		if _, err := st.RecordDeployment(ctx, store.Deployment{Environment: env, Release: rel.Digest.String(), Actor: "test", Status: store.DeploymentSucceeded}); err != nil {
			t.Fatal(err)
		}
	}
	made["staging"].release = rel.Digest.String()
	if err := restoreEnvironments(ctx, st, cfg, envs.target, pull, &restoreErrors{}, t.Logf); err != nil {
		t.Fatal(err)
	}
	if n := len(made["staging"].applied); n != 0 {
		t.Errorf("staging, whose cluster runs its release, was applied %d times at start", n)
	}
	if got := made["prod"].applied; len(got) != 1 || got[0] != rel.Digest.String() {
		t.Errorf("prod at start: applied %v, want its live release once", got)
	}

	// A secret changed: a target with no Reload gets its release again.
	if err := reloadEnvironment(ctx, st, "staging", envs.target, pull); err != nil {
		t.Fatal(err)
	}
	if n := len(made["staging"].applied); n != 1 {
		t.Errorf("staging after a secret changed: applied %d times, want once", n)
	}
}

// TestServeRefusesAKubeEnvironmentItCannotReach: a kube environment
// whose context is not in its kubeconfig is refused at start, naming the
// environment and the context, rather than at its first deploy.
func TestServeRefusesAKubeEnvironmentItCannotReach(t *testing.T) {
	dir := t.TempDir()
	kc := `apiVersion: v1
kind: Config
clusters: [{name: a, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: a, user: {token: x}}]
contexts: [{name: staging-eu, context: {cluster: a, user: a}}]
current-context: staging-eu
`
	if err := os.WriteFile(filepath.Join(dir, "kubeconfig"), []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseConfig([]byte(`
listen: 127.0.0.1:0
gateway: 127.0.0.2:0
registryListen: 127.0.0.3:0
sandbox: {mode: none}
environments:
- {name: dev}
- {name: prod, target: kube, kube: {kubeconfig: kubeconfig, context: prod-eu}}
`), dir, "ferry-serve.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // a hang bound
	defer cancel()
	var out bytes.Buffer
	err = Serve(ctx, cfg, &out)
	if err == nil || !strings.Contains(err.Error(), "environment prod: target kube:") || !strings.Contains(err.Error(), "prod-eu") {
		t.Fatalf("Serve with a kube environment whose kubeconfig is missing: %v\n%s", err, out.String())
	}
}
