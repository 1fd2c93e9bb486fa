package kube_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/ferrycd/ferry/environments"
	"github.com/ferrycd/ferry/environments/kube"
	"github.com/ferrycd/ferry/manifests/v1alpha1"
)

// greet is the repository of most tests: two functions, one using two
// secrets; HTTP triggers for every environment and for prod only; a
// cron trigger for dev only; a NATS trigger for all.
const greet = `apiVersion: ferry.dev/v1alpha1
kind: Function
metadata: {name: hello, labels: {app: greet}, annotations: {team: web}}
spec:
  runtime: go
  source: hello
  env: {GREETING: hi, DB_PASSWORD: {valueFrom: {secret: db-password}}}
  scale: {min: 1, max: 3}
---
apiVersion: ferry.dev/v1alpha1
kind: Function
metadata: {name: bye}
spec:
  runtime: go
  source: bye
  env: {KEY: {valueFrom: {secret: api-key}}}
  scale: {min: 2}
---
apiVersion: ferry.dev/v1alpha1
kind: HTTPTrigger
metadata: {name: hello}
spec: {function: hello, path: /hello, methods: [GET]}
---
apiVersion: ferry.dev/v1alpha1
kind: HTTPTrigger
metadata: {name: bye}
spec: {function: bye, path: /bye}
---
apiVersion: ferry.dev/v1alpha1
kind: HTTPTrigger
metadata: {name: hello-prod}
spec: {function: hello, path: /prod-only, environments: [prod]}
---
apiVersion: ferry.dev/v1alpha1
kind: CronTrigger
metadata: {name: nightly}
spec: {function: bye, schedule: "0 3 * * *", environments: [dev]}
---
apiVersion: ferry.dev/v1alpha1
kind: NATSTrigger
metadata: {name: events}
spec: {function: hello, topic: events}
`

// helloOnly is greet's next version: bye and its triggers are gone.
const helloOnly = `apiVersion: ferry.dev/v1alpha1
kind: Function
metadata: {name: hello, labels: {app: greet}}
spec:
  runtime: go
  source: hello
  env: {GREETING: hello, DB_PASSWORD: {valueFrom: {secret: db-password}}}
  scale: {min: 1, max: 3}
---
apiVersion: ferry.dev/v1alpha1
kind: HTTPTrigger
metadata: {name: hello}
spec: {function: hello, path: /hello, methods: [GET]}
`

// TestApply: a release becomes its Functions and the triggers of the
// environment, labelled and annotated with the release, with images by
// digest; the ConfigMap says what the controller needs; the Secret holds
// the referenced secrets and no other.
func TestApply(t *testing.T) {
	f := newFixture(t)
	f.controller(ready)
	images := map[string]string{"hello": f.image("go", true, 1), "bye": f.image("go", true, 2)}
	rel := f.release(greet, images)
	tg := f.target("dev", nil)
	if err := tg.Apply(t.Context(), rel); err != nil {
		t.Fatal(err)
	}
	digest := rel.Digest.String()

	hello := f.function("hello")
	wantLabels := map[string]string{
		"app": "greet", kube.LabelManagedBy: "ferry", kube.LabelEnvironment: "dev",
		kube.LabelRelease: strings.TrimPrefix(digest, "sha256:")[:40],
	}
	if !mapsEqual(hello.Labels, wantLabels) {
		t.Errorf("hello's labels = %v, want %v", hello.Labels, wantLabels)
	}
	if hello.Annotations[kube.AnnotationRelease] != digest || hello.Annotations["team"] != "web" {
		t.Errorf("hello's annotations = %v, want the release %s and the user's team", hello.Annotations, digest)
	}
	if hello.Spec.Image != images["hello"] || !strings.Contains(hello.Spec.Image, "@sha256:") {
		t.Errorf("hello's image = %q, want %q", hello.Spec.Image, images["hello"])
	}
	if hello.Spec.Runtime != "go" || *hello.Spec.Scale.Min != 1 || *hello.Spec.Scale.Max != 3 {
		t.Errorf("hello's spec = %+v", hello.Spec)
	}
	if hello.Spec.Env["GREETING"].Value != "hi" || hello.Spec.Env["DB_PASSWORD"].Secret() != "db-password" {
		t.Errorf("hello's env = %v: want the plain value and the secret's reference (never its value)", hello.Spec.Env)
	}
	if bye := f.function("bye"); bye.Spec.Image != images["bye"] || *bye.Spec.Scale.Min != 2 {
		t.Errorf("bye = %+v", bye.Spec)
	}
	managers := []string{}
	for _, m := range f.get(functionsGVR, "hello").GetManagedFields() {
		if m.Operation == metav1.ManagedFieldsOperationApply {
			managers = append(managers, m.Manager)
		}
	}
	if !slices.Contains(managers, "ferry") {
		t.Errorf("hello's appliers = %v, want ferry", managers)
	}

	// Triggers: the prod-only one is not in dev; the dev-only one is.
	if got := f.names(httpGVR); !slices.Equal(got, []string{"bye", "hello"}) {
		t.Errorf("HTTPTriggers in dev = %v, want bye and hello (hello-prod is prod's)", got)
	}
	if got := f.names(cronGVR); !slices.Equal(got, []string{"nightly"}) {
		t.Errorf("CronTriggers in dev = %v, want nightly", got)
	}
	if got := f.names(natsGVR); !slices.Equal(got, []string{"events"}) {
		t.Errorf("NATSTriggers = %v, want events", got)
	}
	tr := f.get(httpGVR, "hello")
	if path, _, _ := unstructured.NestedString(tr.Object, "spec", "path"); path != "/hello" {
		t.Errorf("HTTPTrigger hello's path = %q", path)
	}
	if fn, _, _ := unstructured.NestedString(tr.Object, "spec", "function"); fn != "hello" {
		t.Errorf("HTTPTrigger hello's function = %q", fn)
	}
	if tr.GetLabels()[kube.LabelRelease] != wantLabels[kube.LabelRelease] || tr.GetAnnotations()[kube.AnnotationRelease] != digest {
		t.Errorf("HTTPTrigger hello's labels %v and annotations %v do not name the release", tr.GetLabels(), tr.GetAnnotations())
	}

	cm, err := f.core.CoreV1().ConfigMaps(f.ns).Get(t.Context(), kube.ConfigMapName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantData := map[string]string{
		kube.KeyEnvironment: "dev", kube.KeyNATSURL: "nats://nats.messaging:4222",
		kube.KeyGateway: "gateways/public", kube.KeyImage: "registry.example/ferry@sha256:" + strings.Repeat("f", 64),
	}
	if !mapsEqual(cm.Data, wantData) {
		t.Errorf("ConfigMap data = %v, want %v", cm.Data, wantData)
	}
	sec, err := f.core.CoreV1().Secrets(f.ns).Get(t.Context(), kube.SecretName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(sec.Data) != 2 || string(sec.Data["db-password"]) != "s3cret-db" || string(sec.Data["api-key"]) != "s3cret-api" {
		t.Errorf("Secret data = %v, want exactly db-password and api-key (unused is set in the environment but referenced by no function)", secretKeys(sec.Data))
	}
	if sec.Labels[kube.LabelEnvironment] != "dev" || cm.Labels[kube.LabelManagedBy] != "ferry" {
		t.Errorf("Secret labels %v, ConfigMap labels %v: want ferry's", sec.Labels, cm.Labels)
	}
	ns, err := f.core.CoreV1().Namespaces().Get(t.Context(), f.ns, metav1.GetOptions{})
	if err != nil || ns.Labels[kube.LabelEnvironment] != "dev" {
		t.Errorf("namespace %s: %v, labels %v", f.ns, err, ns.Labels)
	}
}

// TestPruneAndRollback: a release without bye deletes bye and its
// triggers and drops its secret; applying the first release again puts
// them and the old digests back.
func TestPruneAndRollback(t *testing.T) {
	f := newFixture(t)
	f.controller(ready)
	v1 := f.release(greet, map[string]string{"hello": f.image("go", true, 1), "bye": f.image("go", true, 2)})
	v2Image := f.image("go", true, 3)
	v2 := f.release(helloOnly, map[string]string{"hello": v2Image})
	tg := f.target("dev", nil)
	if err := tg.Apply(t.Context(), v1); err != nil {
		t.Fatal(err)
	}
	oldImage := f.function("hello").Spec.Image

	if err := tg.Apply(t.Context(), v2); err != nil {
		t.Fatal(err)
	}
	if got := f.names(functionsGVR); !slices.Equal(got, []string{"hello"}) {
		t.Errorf("Functions after v2 = %v, want hello only", got)
	}
	if got := f.names(httpGVR); !slices.Equal(got, []string{"hello"}) {
		t.Errorf("HTTPTriggers after v2 = %v, want hello only", got)
	}
	if got := f.names(cronGVR); len(got) != 0 {
		t.Errorf("CronTriggers after v2 = %v, want none", got)
	}
	if got := f.names(natsGVR); len(got) != 0 {
		t.Errorf("NATSTriggers after v2 = %v, want none", got)
	}
	hello := f.function("hello")
	if hello.Spec.Image != v2Image || hello.Annotations[kube.AnnotationRelease] != v2.Digest.String() || hello.Spec.Env["GREETING"].Value != "hello" {
		t.Errorf("hello after v2: image %s, release %s, env %v", hello.Spec.Image, hello.Annotations[kube.AnnotationRelease], hello.Spec.Env)
	}
	sec, err := f.core.CoreV1().Secrets(f.ns).Get(t.Context(), kube.SecretName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := secretKeys(sec.Data); !slices.Equal(got, []string{"db-password"}) {
		t.Errorf("Secret after v2 holds %v, want db-password only (bye, which used api-key, is gone)", got)
	}

	// Rollback: the old release, by digest, as promote applies it.
	if err := tg.Apply(t.Context(), v1); err != nil {
		t.Fatal(err)
	}
	if got := f.names(functionsGVR); !slices.Equal(got, []string{"bye", "hello"}) {
		t.Errorf("Functions after the rollback = %v, want bye and hello", got)
	}
	hello = f.function("hello")
	if hello.Spec.Image != oldImage || hello.Labels[kube.LabelRelease] != kube.ReleaseLabel(v1.Digest.String()) {
		t.Errorf("hello after the rollback runs %s (release label %s), want %s of release %s", hello.Spec.Image, hello.Labels[kube.LabelRelease], oldImage, v1.Digest)
	}
	if got := f.names(cronGVR); !slices.Equal(got, []string{"nightly"}) {
		t.Errorf("CronTriggers after the rollback = %v, want nightly", got)
	}
	st, err := tg.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Release != v1.Digest.String() {
		t.Errorf("Status's release after the rollback = %s, want %s", st.Release, v1.Digest)
	}
}

// TestApplyTwice: applying the live release again writes nothing: every
// object keeps its resourceVersion.
func TestApplyTwice(t *testing.T) {
	f := newFixture(t)
	f.controller(ready)
	rel := f.release(greet, map[string]string{"hello": f.image("go", true, 1), "bye": f.image("go", true, 2)})
	tg := f.target("dev", nil)
	if err := tg.Apply(t.Context(), rel); err != nil {
		t.Fatal(err)
	}
	before := f.versions()
	if err := tg.Apply(t.Context(), rel); err != nil {
		t.Fatal(err)
	}
	after := f.versions()
	if !mapsEqual(before, after) {
		t.Errorf("resource versions changed on the second apply:\nbefore %v\nafter  %v", before, after)
	}
	if len(before) != 8 { // 2 functions, 4 triggers, the ConfigMap and the Secret
		t.Errorf("objects: %v, want 8", before)
	}
}

// versions is every object's resourceVersion in the namespace, by kind
// and name.
func (f *fixture) versions() map[string]string {
	f.t.Helper()
	out := map[string]string{}
	for _, gvr := range []schema.GroupVersionResource{functionsGVR, httpGVR, cronGVR, natsGVR} {
		l, err := f.dyn.Resource(gvr).Namespace(f.ns).List(f.t.Context(), metav1.ListOptions{})
		if err != nil {
			f.t.Fatal(err)
		}
		for _, o := range l.Items {
			out[gvr.Resource+"/"+o.GetName()] = o.GetResourceVersion()
		}
	}
	cm, err := f.core.CoreV1().ConfigMaps(f.ns).Get(f.t.Context(), kube.ConfigMapName, metav1.GetOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	out["configmap"] = cm.ResourceVersion
	sec, err := f.core.CoreV1().Secrets(f.ns).Get(f.t.Context(), kube.SecretName, metav1.GetOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	out["secret"] = sec.ResourceVersion
	return out
}

// TestNotReady: a function whose rollout fails makes Apply fail once the
// timeout passes, naming the function with the reason and message the
// controller wrote; a Stalled one fails it at once.
func TestNotReady(t *testing.T) {
	f := newFixture(t)
	f.controller(func(fn *v1alpha1.Function) []metav1.Condition {
		if fn.Name == "bye" {
			return []metav1.Condition{
				cond(v1alpha1.ConditionReady, false, v1alpha1.ReasonInvalidSpec, "memory 1Ti is more than any node has"),
				cond(v1alpha1.ConditionStalled, true, v1alpha1.ReasonInvalidSpec, "memory 1Ti is more than any node has"),
			}
		}
		return []metav1.Condition{cond(v1alpha1.ConditionReady, false, v1alpha1.ReasonRolloutFailed, "0/1 pods ready: ImagePullBackOff: pull access denied")}
	})
	tg := f.target("dev", func(c *kube.Config) { c.ReadyTimeout = 3 * time.Second })
	helloRel := f.release(helloOnly, map[string]string{"hello": f.image("go", true, 1)})
	if err := tg.Apply(t.Context(), helloRel); err == nil {
		t.Fatal("Apply succeeded with a function whose rollout failed")
	}
	// why: on a busy machine the test's controller may not have written
	// its status within the 3 s; once it has, the same release applied
	// again (no change) must report what it wrote.
	f.eventually("hello's status", func() bool {
		return len(f.function("hello").Status.Conditions) > 0
	})
	err := tg.Apply(t.Context(), helloRel)
	if err == nil {
		t.Fatal("Apply succeeded with a function whose rollout failed")
	}
	for _, want := range []string{"function hello: RolloutFailed: 0/1 pods ready: ImagePullBackOff: pull access denied", "1 of 1 functions were not ready within 3s"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Apply's error %q does not say %q", err, want)
		}
	}

	// Stalled: reported without waiting for the timeout, which is long
	// here (it bounds a hang only).
	tg = f.target("dev", func(c *kube.Config) { c.ReadyTimeout = 10 * time.Minute })
	rel := f.release(greet, map[string]string{"hello": f.image("go", true, 2), "bye": f.image("go", true, 3)})
	err = tg.Apply(t.Context(), rel)
	if err == nil || !strings.Contains(err.Error(), "function bye: InvalidSpec: memory 1Ti is more than any node has") {
		t.Errorf("Apply's error = %v, want bye's Stalled reason and message", err)
	}
	st, err := tg.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]environments.FunctionStatus{}
	for _, fs := range st.Functions {
		got[fs.Name] = fs
	}
	if got["bye"].State != "failed" || !strings.Contains(got["bye"].Message, "1Ti") {
		t.Errorf("bye's status = %+v, want failed with the controller's message", got["bye"])
	}
	if got["hello"].State != "starting" || !strings.Contains(got["hello"].Message, "ImagePullBackOff") {
		t.Errorf("hello's status = %+v, want starting with the controller's message", got["hello"])
	}
}

// TestRefused: what this target cannot run is refused up front, every
// reason at once, and nothing is applied (not even the namespace).
func TestRefused(t *testing.T) {
	f := newFixture(t)
	const manifest = `apiVersion: ferry.dev/v1alpha1
kind: Function
metadata: {name: idle}
spec: {runtime: go, source: idle, scale: {min: 0}}
---
apiVersion: ferry.dev/v1alpha1
kind: Function
metadata: {name: thumb}
spec: {runtime: python, source: thumb, handler: main.handle, scale: {min: 1}}
`
	rel := f.release(manifest, map[string]string{"idle": f.image("go", true, 1), "thumb": f.image("python", true, 1)})
	err := f.target("dev", nil).Apply(t.Context(), rel)
	if err == nil {
		t.Fatal("Apply took a function scaled to zero and a python image on scratch")
	}
	for _, want := range []string{
		"function idle: scale.min: 0 is not supported on the Kubernetes target yet; set min to 1 or more, or deploy this environment on the embedded target",
		"function thumb: its image was built on scratch and needs the host's python3",
		"nothing was changed",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Apply's error %q does not say %q", err, want)
		}
	}
	if _, err := f.core.CoreV1().Namespaces().Get(t.Context(), f.ns, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("namespace %s after a refused apply: %v, want it not made", f.ns, err)
	}

	// A python image on a base runs anywhere.
	ok := f.release(`apiVersion: ferry.dev/v1alpha1
kind: Function
metadata: {name: thumb}
spec: {runtime: python, source: thumb, handler: main.handle, scale: {min: 1}}
`, map[string]string{"thumb": f.image("python", false, 2)})
	f.controller(ready)
	if err := f.target("dev", nil).Apply(t.Context(), ok); err != nil {
		t.Errorf("a python image on a base was refused: %v", err)
	}
}

// TestMissingSecret: a secret the release references and the
// environment does not have fails the Apply with nothing changed.
func TestMissingSecret(t *testing.T) {
	f := newFixture(t)
	f.controller(ready)
	tg := f.target("dev", nil)
	if err := tg.Apply(t.Context(), f.release(helloOnly, map[string]string{"hello": f.image("go", true, 1)})); err != nil {
		t.Fatal(err)
	}
	before := f.versions()
	manifest := strings.Replace(helloOnly, "secret: db-password", "secret: smtp-password", 1)
	err := tg.Apply(t.Context(), f.release(manifest, map[string]string{"hello": f.image("go", true, 2)}))
	if err == nil || !strings.Contains(err.Error(), "secret smtp-password (used by hello.DB_PASSWORD)") || !strings.Contains(err.Error(), "ferry secrets set dev smtp-password") {
		t.Fatalf("Apply's error = %v, want the missing secret named with what uses it and how to set it", err)
	}
	if after := f.versions(); !mapsEqual(before, after) {
		t.Errorf("a refused apply changed objects:\nbefore %v\nafter  %v", before, after)
	}
}

// TestNamespaceClaimed: a second environment configured into the
// namespace of the first is refused.
func TestNamespaceClaimed(t *testing.T) {
	f := newFixture(t)
	f.controller(ready)
	rel := f.release(helloOnly, map[string]string{"hello": f.image("go", true, 1)})
	if err := f.target("dev", nil).Apply(t.Context(), rel); err != nil {
		t.Fatal(err)
	}
	err := f.target("staging", nil).Apply(t.Context(), rel)
	if err == nil || !strings.Contains(err.Error(), "holds environment dev") {
		t.Errorf("staging's apply into dev's namespace: %v, want a refusal naming dev", err)
	}
	if hello := f.function("hello"); hello.Labels[kube.LabelEnvironment] != "dev" {
		t.Errorf("hello now belongs to %s", hello.Labels[kube.LabelEnvironment])
	}
}

// TestStatusAndDelete: Status reports the live release and each
// function; Delete removes the environment's objects, Secret and
// ConfigMap and nothing of another environment.
func TestStatusAndDelete(t *testing.T) {
	f := newFixture(t)
	f.controller(ready)
	tg := f.target("dev", func(c *kube.Config) { c.GatewayURL = "https://dev.example.com/" })
	empty, err := tg.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if empty.Release != "" || len(empty.Functions) != 0 || empty.Environment != "dev" {
		t.Errorf("Status before any apply = %+v, want dev with nothing", empty)
	}
	images := map[string]string{"hello": f.image("go", true, 1), "bye": f.image("go", true, 2)}
	rel := f.release(greet, images)
	if err := tg.Apply(t.Context(), rel); err != nil {
		t.Fatal(err)
	}
	// Another environment in a namespace of its own.
	other := &fixture{t: t, reg: f.reg, ns: namespace(t), core: f.core, dyn: f.dyn}
	other.controller(ready)
	if err := other.target("prod", nil).Apply(t.Context(), rel); err != nil {
		t.Fatal(err)
	}

	st, err := tg.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Release != rel.Digest.String() || len(st.Functions) != 2 {
		t.Fatalf("Status = %+v, want release %s with two functions", st, rel.Digest)
	}
	for _, fs := range st.Functions {
		if fs.State != "running" || fs.Image != images[fs.Name] {
			t.Errorf("function %s: %+v, want running %s", fs.Name, fs, images[fs.Name])
		}
	}
	if st.Functions[0].Name != "bye" || st.Functions[0].URL != "https://dev.example.com/bye" || st.Functions[1].URL != "https://dev.example.com/hello" {
		t.Errorf("Status's functions = %+v, want bye then hello with their gateway URLs", st.Functions)
	}
	if u, err := tg.URL("hello"); err != nil || u != "https://dev.example.com/hello" {
		t.Errorf("URL(hello) = %q, %v", u, err)
	}

	if err := tg.Delete(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, res := range []schema.GroupVersionResource{functionsGVR, httpGVR, cronGVR, natsGVR} {
		if got := f.names(res); len(got) != 0 {
			t.Errorf("%s after Delete: %v", res.Resource, got)
		}
	}
	if _, err := f.core.CoreV1().Secrets(f.ns).Get(t.Context(), kube.SecretName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("Secret after Delete: %v", err)
	}
	if _, err := f.core.CoreV1().ConfigMaps(f.ns).Get(t.Context(), kube.ConfigMapName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("ConfigMap after Delete: %v", err)
	}
	if got := other.names(functionsGVR); !slices.Equal(got, []string{"bye", "hello"}) {
		t.Errorf("prod's functions after dev's Delete = %v", got)
	}
	if st, err := tg.Status(t.Context()); err != nil || st.Release != "" || len(st.Functions) != 0 {
		t.Errorf("Status after Delete = %+v, %v", st, err)
	}
	if _, err := tg.URL("hello"); err == nil {
		t.Error("URL(hello) after Delete gave an address")
	}
}

// TestCallWithoutPods: with no gateway, Call routes by the triggers as
// the embedded gateway does (404, 405), and a matched request needs a
// ready pod: envtest has no kubelet, so there is none, and Call and
// Deliver say so. (The real node's test covers the way through.)
func TestCallWithoutPods(t *testing.T) {
	f := newFixture(t)
	f.controller(ready)
	tg := f.target("dev", nil)
	if err := tg.Apply(t.Context(), f.release(greet, map[string]string{"hello": f.image("go", true, 1), "bye": f.image("go", true, 2)})); err != nil {
		t.Fatal(err)
	}
	call := func(method, path string) (*http.Response, error) {
		req, err := http.NewRequestWithContext(t.Context(), method, path, nil)
		if err != nil {
			t.Fatal(err)
		}
		return tg.Call(t.Context(), req)
	}
	resp, err := call(http.MethodGet, "/nowhere")
	if err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /nowhere: %v, %v; want 404", resp, err)
	}
	resp, err = call(http.MethodPost, "/hello")
	if err != nil || resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET" {
		t.Errorf("POST /hello: %v, %v; want 405 allowing GET", resp, err)
	}
	if _, err := call(http.MethodGet, "/prod-only"); err != nil {
		t.Errorf("GET /prod-only: %v", err)
	}
	const noPod = "function hello has no ready pod in namespace "
	_, err = call(http.MethodGet, "/hello/")
	if err == nil || !strings.Contains(err.Error(), noPod+f.ns+": no pod has the label ferry.dev/function=hello") {
		t.Errorf("GET /hello/: %v, want %q", err, noPod+f.ns)
	}
	_, err = tg.Deliver(t.Context(), "hello", &environments.Event{ID: "1", Source: "/test", Type: "dev.ferry.test"})
	if err == nil || !strings.Contains(err.Error(), noPod+f.ns) {
		t.Errorf("Deliver: %v, want %q", err, noPod+f.ns)
	}
	_, err = tg.Deliver(t.Context(), "nobody", &environments.Event{ID: "1", Source: "/test", Type: "dev.ferry.test"})
	if err == nil || !strings.Contains(err.Error(), "environment dev has no function nobody") {
		t.Errorf("Deliver to nobody: %v", err)
	}
	if _, err := tg.URL("hello"); err == nil || !strings.Contains(err.Error(), "no gateway URL") {
		t.Errorf("URL without a gateway: %v", err)
	}

	// A fresh target (ferry restarted) reads the routes from the cluster.
	resp, err = f.target("dev", nil).Call(t.Context(), mustRequest(t, http.MethodPost, "/hello"))
	if err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /hello on a fresh target: %v, %v; want 405", resp, err)
	}
}

// TestCallThroughGateway: with a GatewayURL, Call sends the request
// there, on the trigger's path, as a user's client would.
func TestCallThroughGateway(t *testing.T) {
	f := newFixture(t)
	var got struct{ method, path, query, body string }
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got.method, got.path, got.query, got.body = r.Method, r.URL.Path, r.URL.RawQuery, string(b)
		w.Header().Set("Location", "/elsewhere")
		w.WriteHeader(http.StatusFound)
	}))
	t.Cleanup(gw.Close)
	tg := f.target("dev", func(c *kube.Config) { c.GatewayURL = gw.URL + "/dev/" })
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, "/hello?x=1", bytes.NewReader([]byte("hi")))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := tg.Call(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || got.method != "POST" || got.path != "/dev/hello" || got.query != "x=1" || got.body != "hi" {
		t.Errorf("the gateway saw %+v and answered %d; want POST /dev/hello?x=1 with the body, and its redirect given back", got, resp.StatusCode)
	}
}

func mustRequest(t *testing.T, method, path string) *http.Request {
	req, err := http.NewRequestWithContext(t.Context(), method, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func secretKeys(data map[string][]byte) []string {
	out := []string{}
	for k := range data {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestForwardFails: a pod that looks ready but whose node does not exist
// (envtest has no kubelet) makes the port-forward fail, and Deliver
// returns that failure instead of waiting on it.
func TestForwardFails(t *testing.T) {
	f := newFixture(t)
	f.controller(ready)
	tg := f.target("dev", nil)
	if err := tg.Apply(t.Context(), f.release(helloOnly, map[string]string{"hello": f.image("go", true, 1)})); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "hello-1", Labels: map[string]string{kube.LabelFunction: "hello"}},
		Spec: corev1.PodSpec{NodeName: "no-such-node", Containers: []corev1.Container{{
			Name: "function", Image: f.function("hello").Spec.Image, Ports: []corev1.ContainerPort{{ContainerPort: kube.FunctionPort}},
		}}},
	}
	pod, err := f.core.CoreV1().Pods(f.ns).Create(t.Context(), pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// As a kubelet would report it.
	pod.Status = corev1.PodStatus{
		Phase:             corev1.PodRunning,
		Conditions:        []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
		ContainerStatuses: []corev1.ContainerStatus{{Name: "function", Ready: true, RestartCount: 2, Image: pod.Spec.Containers[0].Image}},
	}
	if _, err := f.core.CoreV1().Pods(f.ns).UpdateStatus(t.Context(), pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	st, err := tg.Status(t.Context())
	if err != nil || len(st.Functions) != 1 || st.Functions[0].Restarts != 2 {
		t.Errorf("Status = %+v, %v; want hello with its pod's 2 restarts", st, err)
	}
	_, err = tg.Deliver(t.Context(), "hello", &environments.Event{ID: "1", Source: "/test", Type: "dev.ferry.test"})
	t.Logf("Deliver: %v", err)
	if err == nil || !strings.Contains(err.Error(), "port-forward to pod hello-1 of function hello") {
		t.Errorf("Deliver through a pod on no node: %v, want the port-forward's failure", err)
	}
}

// TestKubeconfig: a target reads its cluster from a kubeconfig file and
// context, and names a context that is not there.
func TestKubeconfig(t *testing.T) {
	tg, err := kube.New(kube.Config{Environment: "dev", Kubeconfig: cluster.Kubeconfig, Context: "envtest"})
	if err != nil {
		t.Fatal(err)
	}
	if tg.Namespace() != "ferry-dev" {
		t.Errorf("namespace = %s, want ferry-dev when none is configured", tg.Namespace())
	}
	st, err := tg.Status(t.Context())
	if err != nil || st.Environment != "dev" || len(st.Functions) != 0 {
		t.Errorf("Status through the kubeconfig = %+v, %v", st, err)
	}
	_, err = kube.New(kube.Config{Environment: "dev", Kubeconfig: cluster.Kubeconfig, Context: "nowhere"})
	if err == nil || !strings.Contains(err.Error(), `context "nowhere"`) {
		t.Errorf("New with a context the kubeconfig lacks: %v", err)
	}
	if _, err := kube.New(kube.Config{Environment: "dev env", REST: cluster.Config}); err == nil || !strings.Contains(err.Error(), "label value") {
		t.Errorf("New with an environment that is no label value: %v", err)
	}
	if _, err := kube.New(kube.Config{Environment: "dev", Namespace: "Dev_NS", REST: cluster.Config}); err == nil || !strings.Contains(err.Error(), `namespace "Dev_NS"`) {
		t.Errorf("New with a namespace Kubernetes refuses: %v", err)
	}
}
