package kube_test

import (
	"context"
	"strings"
	"testing"
	"testing/fstest"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/ferrycd/ferry/environments/kube"
	"github.com/ferrycd/ferry/manifests"
	"github.com/ferrycd/ferry/manifests/v1alpha1"
)

// A hostile repository: its manifests are all it controls, and every
// test here gives the target one that tries to reach past its
// environment, with the assertion that it is refused or harmless.

// forged's Function hello claims to be prod's, of another release,
// managed by another tool. (A metadata.namespace is refused when the
// manifest is loaded: TestNamespaceInManifest.)
const forged = `apiVersion: ferry.dev/v1alpha1
kind: Function
metadata:
  name: hello
  labels:
    ferry.dev/environment: prod
    ferry.dev/release: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
    app.kubernetes.io/managed-by: helm
    ferry.dev/function: billing
  annotations:
    ferry.dev/release-digest: sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
spec:
  runtime: go
  source: hello
  scale: {min: 1}
---
apiVersion: ferry.dev/v1alpha1
kind: HTTPTrigger
metadata:
  name: hello
  labels: {ferry.dev/environment: prod, app.kubernetes.io/managed-by: ferry}
spec: {function: hello, path: /hello}
`

// TestForgedMetadata: whatever a release's metadata says, the target
// writes its own environment, release and manager, in its own
// namespace; prod's objects and objects ferry did not apply are left as
// they are, by the apply and by the prunes after it.
func TestForgedMetadata(t *testing.T) {
	prod := newFixture(t)
	prod.controller(ready)
	prodRel := prod.release(helloOnly, map[string]string{"hello": prod.image("go", true, 1)})
	if err := prod.target("prod", nil).Apply(t.Context(), prodRel); err != nil {
		t.Fatal(err)
	}
	prodBefore := prod.versions()

	staging := newFixture(t)
	staging.controller(ready)
	tg := staging.target("staging", nil)
	// Not ferry's: made by hand in staging's namespace before any deploy.
	if err := tg.Apply(t.Context(), staging.release(`apiVersion: ferry.dev/v1alpha1
kind: Function
metadata: {name: seed}
spec: {runtime: go, source: seed, scale: {min: 1}}
`, map[string]string{"seed": staging.image("go", true, 9)})); err != nil {
		t.Fatal(err)
	}
	handmade := &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{"runtime": "go", "image": "elsewhere.example/x@sha256:" + strings.Repeat("b", 64)}}}
	handmade.SetAPIVersion(v1alpha1.APIVersion)
	handmade.SetKind(v1alpha1.KindFunction)
	handmade.SetName("handmade")
	handmade.SetLabels(map[string]string{"owner": "operator"})
	if _, err := staging.dyn.Resource(functionsGVR).Namespace(staging.ns).Create(t.Context(), handmade, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	rel := staging.release(forged, map[string]string{"hello": staging.image("go", true, 2)})
	if err := tg.Apply(t.Context(), rel); err != nil {
		t.Fatal(err)
	}
	hello := staging.function("hello")
	want := map[string]string{
		kube.LabelEnvironment: "staging", kube.LabelManagedBy: kube.ManagedBy,
		kube.LabelRelease: kube.ReleaseLabel(rel.Digest.String()),
	}
	for k, v := range want {
		if hello.Labels[k] != v {
			t.Errorf("staging's hello: label %s = %q, want %q", k, hello.Labels[k], v)
		}
	}
	if got := hello.Annotations[kube.AnnotationRelease]; got != rel.Digest.String() {
		t.Errorf("staging's hello: release annotation %s, want %s", got, rel.Digest)
	}
	tr := staging.get(httpGVR, "hello")
	if tr.GetLabels()[kube.LabelEnvironment] != "staging" {
		t.Errorf("staging's HTTPTrigger hello: labels %v", tr.GetLabels())
	}
	if after := prod.versions(); !mapsEqual(prodBefore, after) {
		t.Errorf("staging's apply changed prod's namespace:\nbefore %v\nafter  %v", prodBefore, after)
	}
	if p := prod.function("hello"); p.Spec.Image == hello.Spec.Image || p.Annotations[kube.AnnotationRelease] != prodRel.Digest.String() {
		t.Errorf("prod's hello runs %s of release %s", p.Spec.Image, p.Annotations[kube.AnnotationRelease])
	}
	// The prune of staging's apply took its seed, not the hand-made one.
	got := staging.names(functionsGVR)
	if strings.Join(got, ",") != "handmade,hello" {
		t.Errorf("staging's Functions %v, want handmade (not ferry's) and hello (seed pruned)", got)
	}

	// Delete is as bounded as prune.
	if err := tg.Delete(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := staging.names(functionsGVR); strings.Join(got, ",") != "handmade" {
		t.Errorf("after Delete staging holds %v, want the hand-made Function only", got)
	}
	if after := prod.versions(); !mapsEqual(prodBefore, after) {
		t.Errorf("staging's Delete changed prod's namespace:\nbefore %v\nafter  %v", prodBefore, after)
	}
	st, err := prod.target("prod", nil).Status(t.Context())
	if err != nil || st.Release != prodRel.Digest.String() || len(st.Functions) != 1 {
		t.Errorf("prod's status after staging's deploys: %+v, %v", st, err)
	}
}

// TestNamesThatCollide: functions named as the objects the target
// writes beside a release (a different kind, so no collision) leave
// those alone; a name that cannot be a Service's is refused before
// anything changes.
func TestNamesThatCollide(t *testing.T) {
	f := newFixture(t)
	f.controller(ready)
	const manifest = `apiVersion: ferry.dev/v1alpha1
kind: Function
metadata: {name: ferry-secrets}
spec:
  runtime: python
  source: ferry-secrets
  handler: main.handle
  scale: {min: 1}
  env: {KEY: {valueFrom: {secret: api-key}}}
---
apiVersion: ferry.dev/v1alpha1
kind: Function
metadata: {name: ferry-environment}
spec: {runtime: python, source: ferry-environment, handler: main.handle, scale: {min: 1}}
`
	rel := f.release(manifest, map[string]string{"ferry-secrets": f.image("python", false, 1), "ferry-environment": f.image("python", false, 2)})
	if err := f.target("dev", nil).Apply(t.Context(), rel); err != nil {
		t.Fatal(err)
	}
	sec, err := f.core.CoreV1().Secrets(f.ns).Get(t.Context(), kube.SecretName, metav1.GetOptions{})
	if err != nil || string(sec.Data["api-key"]) != "s3cret-api" || len(sec.Data) != 1 {
		t.Errorf("Secret %s: %v, keys %v", kube.SecretName, err, secretKeys(sec.Data))
	}
	cm, err := f.core.CoreV1().ConfigMaps(f.ns).Get(t.Context(), kube.ConfigMapName, metav1.GetOptions{})
	if err != nil || cm.Data[kube.KeyEnvironment] != "dev" {
		t.Errorf("ConfigMap %s: %v, data %v", kube.ConfigMapName, err, cm.Data)
	}

	g := newFixture(t)
	bad := g.release(`apiVersion: ferry.dev/v1alpha1
kind: Function
metadata: {name: 9lives}
spec: {runtime: python, source: 9lives, handler: main.handle, scale: {min: 1}}
`, map[string]string{"9lives": g.image("python", false, 3)})
	err = g.target("dev", nil).Apply(t.Context(), bad)
	if err == nil || !strings.Contains(err.Error(), "function 9lives: on the Kubernetes target a function's name is its Service's, which must start with a letter") || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("Apply of a function named 9lives: %v, want it refused before anything is applied", err)
	}
	if _, err := g.core.CoreV1().Namespaces().Get(t.Context(), g.ns, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("namespace %s after a refused apply: %v", g.ns, err)
	}
}

// TestHostileEnv: variables named as the platform's and values written
// to break out of their field arrive verbatim, as data; a preview (no
// secrets) is refused a release that names one, with nothing made.
func TestHostileEnv(t *testing.T) {
	f := newFixture(t)
	f.controller(ready)
	const manifest = `apiVersion: ferry.dev/v1alpha1
kind: Function
metadata: {name: hello}
spec:
  runtime: go
  source: hello
  scale: {min: 1}
  env:
    KUBERNETES_SERVICE_HOST: attacker.example
    JSON: '"}, {"name": "PORT", "value": "1"}'
    YAML: "x\nkind: Secret\nmetadata: {name: ferry-secrets}"
`
	rel := f.release(manifest, map[string]string{"hello": f.image("go", true, 1)})
	if err := f.target("dev", nil).Apply(t.Context(), rel); err != nil {
		t.Fatal(err)
	}
	env := f.function("hello").Spec.Env
	want := map[string]string{
		"KUBERNETES_SERVICE_HOST": "attacker.example",
		"JSON":                    `"}, {"name": "PORT", "value": "1"}`,
		"YAML":                    "x\nkind: Secret\nmetadata: {name: ferry-secrets}",
	}
	if len(env) != len(want) {
		t.Errorf("hello's env %v, want exactly %v", env, want)
	}
	for k, v := range want {
		if env[k].Value != v || env[k].Secret() != "" {
			t.Errorf("hello's env %s = %+v, want the plain value %q", k, env[k], v)
		}
	}
	sec, err := f.core.CoreV1().Secrets(f.ns).Get(t.Context(), kube.SecretName, metav1.GetOptions{})
	if err != nil || len(sec.Data) != 0 || sec.Labels[kube.LabelManagedBy] != kube.ManagedBy {
		t.Errorf("Secret %s: %v, keys %v, labels %v: want ferry's, empty", kube.SecretName, err, secretKeys(sec.Data), sec.Labels)
	}

	// A preview: ferry serve gives it no secret resolver.
	p := newFixture(t)
	preview := p.target("pr-7-web", func(c *kube.Config) { c.Secrets = nil })
	err = preview.Apply(t.Context(), p.release(greet, map[string]string{"hello": p.image("go", true, 1), "bye": p.image("go", true, 2)}))
	if err == nil || !strings.Contains(err.Error(), "secret db-password (used by hello.DB_PASSWORD): this ferry keeps no secrets for the environment") {
		t.Fatalf("a preview's apply of a release naming secrets: %v", err)
	}
	if _, err := p.core.CoreV1().Namespaces().Get(context.Background(), p.ns, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("namespace %s after a refused apply: %v", p.ns, err)
	}
}

// TestNamespaceOfALongEnvironment: an environment whose default
// namespace Kubernetes would refuse is refused by New, not by the first
// deploy half-way.
func TestNamespaceOfALongEnvironment(t *testing.T) {
	env := "pr-12345-" + strings.Repeat("a", 50)
	_, err := kube.New(kube.Config{Environment: env, REST: cluster.Config})
	if err == nil || !strings.Contains(err.Error(), "set namespace for it in the server configuration") {
		t.Errorf("New of environment %s (namespace ferry-%s): %v", env, env, err)
	}
	if _, err := kube.New(kube.Config{Environment: env, Namespace: "previews-12345", REST: cluster.Config}); err != nil {
		t.Errorf("New of environment %s with a namespace: %v", env, err)
	}
}

// TestMetadataInManifest: a manifest that names a namespace (kube-system,
// or another environment's), owner references (to make a foreign object
// own, or be owned by, what ferry applies) or finalizers is refused when
// it is loaded, so no release holds them; the target applies only a
// name, labels and annotations of its own anyway.
func TestMetadataInManifest(t *testing.T) {
	for _, c := range []struct{ field, meta string }{
		{"metadata.namespace", "namespace: kube-system"},
		{"metadata.namespace", "namespace: ferry-prod"},
		{"metadata.ownerReferences", "ownerReferences: [{apiVersion: v1, kind: Namespace, name: kube-system, uid: 1}]"},
		{"metadata.finalizers", "finalizers: [example.com/never]"},
	} {
		field, meta := c.field, c.meta
		fsys := fstest.MapFS{
			"ferry.yaml":    {Data: []byte("apiVersion: ferry.dev/v1alpha1\nkind: Function\nmetadata: {name: hello, " + meta + "}\nspec: {runtime: python, source: hello, handler: main.handle}\n")},
			"hello/main.py": {Data: []byte("def handle(event): return event\n")},
		}
		_, err := manifests.Load(t.Context(), fsys)
		if err == nil || !strings.Contains(err.Error(), field+":") {
			t.Errorf("a manifest with %s: %v, want it refused", meta, err)
		}
	}
}

// TestRoutesHost: the host of the environment's gateway URL is in its
// ConfigMap, where the controller reads the one host its routes match;
// an IP address (which no route may name) leaves them matching any.
func TestRoutesHost(t *testing.T) {
	for url, want := range map[string]string{
		"https://PR-7.Shop.example.com:8443/": "pr-7.shop.example.com",
		"http://127.0.0.1:9000":               "",
	} {
		f := newFixture(t)
		f.controller(ready)
		tg := f.target("pr-7-shop", func(c *kube.Config) { c.GatewayURL = url })
		if err := tg.Apply(t.Context(), f.release(helloOnly, map[string]string{"hello": f.image("go", true, 1)})); err != nil {
			t.Fatal(err)
		}
		cm, err := f.core.CoreV1().ConfigMaps(f.ns).Get(t.Context(), kube.ConfigMapName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := cm.Data[kube.KeyHost]; got != want || ok != (want != "") {
			t.Errorf("gateway URL %s: ConfigMap %s = %q (set %v), want %q", url, kube.KeyHost, got, ok, want)
		}
	}
}

// TestTwoEnvironmentsRaceForANamespace: prod and staging configured into
// one new namespace and deployed at once: one claims it, the other is
// refused, and every Function there is the winner's.
func TestTwoEnvironmentsRaceForANamespace(t *testing.T) {
	f := newFixture(t)
	f.controller(ready)
	rel := f.release(helloOnly, map[string]string{"hello": f.image("go", true, 1)})
	envs := []string{"prod", "staging"}
	errs := make([]error, len(envs))
	done := make(chan int)
	for i, env := range envs {
		tg := f.target(env, nil)
		go func() {
			errs[i] = tg.Apply(context.Background(), rel)
			done <- i
		}()
	}
	<-done
	<-done
	winner := ""
	for i, err := range errs {
		switch {
		case err == nil && winner == "":
			winner = envs[i]
		case err == nil:
			t.Fatalf("both %s and %s deployed into namespace %s", winner, envs[i], f.ns)
		case !strings.Contains(err.Error(), "give each environment its own namespace"):
			t.Errorf("%s: %v, want a refusal of the namespace", envs[i], err)
		}
	}
	if winner == "" {
		t.Fatalf("neither deployed: %v", errs)
	}
	if got := f.function("hello").Labels[kube.LabelEnvironment]; got != winner {
		t.Errorf("hello belongs to %s, want %s, which claimed the namespace", got, winner)
	}
}
