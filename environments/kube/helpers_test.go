package kube_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/ferrycd/ferry/build"
	"github.com/ferrycd/ferry/environments/kube"
	"github.com/ferrycd/ferry/internal/kubetest"
	"github.com/ferrycd/ferry/manifests"
	"github.com/ferrycd/ferry/manifests/v1alpha1"
	"github.com/ferrycd/ferry/test/testreg"
)

// cluster is the package's API server (with ferry's CRDs); each test
// works in namespaces of its own.
var cluster *kubetest.Cluster

func TestMain(m *testing.M) {
	c, err := kubetest.StartShared()
	if err != nil {
		fmt.Fprintf(os.Stderr, "starting the API server: %v\n", err)
		os.Exit(1)
	}
	cluster = c
	code := m.Run()
	c.Stop()
	os.Exit(code)
}

var (
	functionsGVR = v1alpha1.GroupVersion.WithResource("functions")
	httpGVR      = v1alpha1.GroupVersion.WithResource("httptriggers")
	cronGVR      = v1alpha1.GroupVersion.WithResource("crontriggers")
	natsGVR      = v1alpha1.GroupVersion.WithResource("natstriggers")
)

// nsCount numbers the tests' namespaces.
var nsCount atomic.Int64

// namespace is a fresh namespace name for one test (not created: Apply
// makes it).
func namespace(t *testing.T) string {
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(name) > 40 {
		name = name[:40]
	}
	return fmt.Sprintf("%s-%d", strings.TrimRight(name, "-"), nsCount.Add(1))
}

func clients(t *testing.T) (kubernetes.Interface, dynamic.Interface) {
	t.Helper()
	core, err := kubernetes.NewForConfig(cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	return core, dyn
}

// fixture is one test's registry, namespace and target.
type fixture struct {
	t    *testing.T
	reg  *testreg.Server
	ns   string
	core kubernetes.Interface
	dyn  dynamic.Interface
}

func newFixture(t *testing.T) *fixture {
	core, dyn := clients(t)
	return &fixture{t: t, reg: testreg.Embedded(t, ""), ns: namespace(t), core: core, dyn: dyn}
}

// target is a Kubernetes target of env in the fixture's namespace.
func (f *fixture) target(env string, edit func(*kube.Config)) *kube.Target {
	f.t.Helper()
	cfg := kube.Config{
		Environment:  env,
		REST:         cluster.Config,
		Namespace:    f.ns,
		NATSURL:      "nats://nats.messaging:4222",
		Gateway:      "gateways/public",
		Image:        "registry.example/ferry@sha256:" + strings.Repeat("f", 64),
		ReadyTimeout: 2 * time.Minute, // bounds a hang; every wait here ends well before
		Secrets: func(_ context.Context, name string) (string, error) {
			v, ok := map[string]string{"db-password": "s3cret-db", "api-key": "s3cret-api", "unused": "s3cret-unused"}[name]
			if !ok {
				return "", fmt.Errorf("secret %s is not set in environment %s; set it with ferry secrets set %s %s", name, env, env, name)
			}
			return v, nil
		},
		Log: f.t.Logf,
	}
	if edit != nil {
		edit(&cfg)
	}
	tg, err := kube.New(cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	return tg
}

// image pushes a small real image with the annotations ferry's builder
// puts on a runtime's image, and returns it by digest. seed makes images
// of one runtime differ.
func (f *fixture) image(runtime string, scratch bool, seed int) string {
	f.t.Helper()
	img, err := random.Image(int64(64+seed), 1)
	if err != nil {
		f.t.Fatal(err)
	}
	ann := map[string]string{build.AnnotationRuntime: runtime}
	if scratch && runtime != v1alpha1.RuntimeGo {
		ann[build.AnnotationHostInterpreter] = map[string]string{"python": "python3", "nodejs": "node"}[runtime]
	}
	return testreg.Push(f.t, f.reg.Addr+"/fn/"+runtime, mutate.Annotations(img, ann).(v1.Image))
}

// release loads manifest (a repository's ferry.yaml, with each function's
// source in a folder of its name) and pushes it as a release with images.
func (f *fixture) release(manifest string, images map[string]string) *build.Release {
	f.t.Helper()
	fsys := fstest.MapFS{"ferry.yaml": {Data: []byte(manifest)}}
	for name := range images {
		// Enough source for the loader, whatever the runtime: the images
		// are given, nothing is built.
		fsys[name+"/fn.go"] = &fstest.MapFile{Data: []byte("package " + name + "\n\nimport \"context\"\n\nfunc Handle(ctx context.Context, in any) (any, error) { return in, nil }\n")}
		fsys[name+"/main.py"] = &fstest.MapFile{Data: []byte("def handle(event): return event\n")}
	}
	set, err := manifests.Load(f.t.Context(), fsys)
	if err != nil {
		f.t.Fatalf("the test's manifest: %v", err)
	}
	rel, err := build.PushRelease(f.t.Context(), f.reg.Addr+"/releases", set, images, build.Info{SourceURL: "https://git.example.com/demo", Revision: "c1"})
	if err != nil {
		f.t.Fatal(err)
	}
	return rel
}

// get reads one object of the fixture's namespace.
func (f *fixture) get(res schema.GroupVersionResource, name string) *unstructured.Unstructured {
	f.t.Helper()
	u, err := f.dyn.Resource(res).Namespace(f.ns).Get(f.t.Context(), name, metav1.GetOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	return u
}

// function reads a Function of the fixture's namespace.
func (f *fixture) function(name string) *v1alpha1.Function {
	f.t.Helper()
	var fn v1alpha1.Function
	raw, err := f.get(functionsGVR, name).MarshalJSON()
	if err == nil {
		err = json.Unmarshal(raw, &fn)
	}
	if err != nil {
		f.t.Fatal(err)
	}
	return &fn
}

// names lists the names of a kind's objects in the namespace.
func (f *fixture) names(res schema.GroupVersionResource) []string {
	f.t.Helper()
	l, err := f.dyn.Resource(res).Namespace(f.ns).List(f.t.Context(), metav1.ListOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	out := []string{}
	for _, o := range l.Items {
		out = append(out, o.GetName())
	}
	slices.Sort(out)
	return out
}

// controller stands in for ferry's controller, which these tests do not
// run: it writes each Function's status through the status subresource
// as the controller does once it has rolled the function out (generation
// observed, image, digest), with the conditions conds gives for it.
func (f *fixture) controller(conds func(fn *v1alpha1.Function) []metav1.Condition) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	f.t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for {
			l, err := f.dyn.Resource(functionsGVR).Namespace(f.ns).List(ctx, metav1.ListOptions{})
			for i := 0; err == nil && i < len(l.Items); i++ {
				var fn v1alpha1.Function
				raw, _ := l.Items[i].MarshalJSON()
				if json.Unmarshal(raw, &fn) != nil || fn.Status.ObservedGeneration == fn.Generation && fn.Status.Image == fn.Spec.Image {
					continue
				}
				st := v1alpha1.FunctionStatus{ObservedGeneration: fn.Generation, Image: fn.Spec.Image, Replicas: 1, Conditions: conds(&fn)}
				if _, hex, ok := strings.Cut(fn.Spec.Image, "@sha256:"); ok {
					st.Digest = hex[:12]
				}
				var status map[string]any
				raw, _ = json.Marshal(st)
				_ = json.Unmarshal(raw, &status)
				u := &unstructured.Unstructured{Object: map[string]any{"status": status}}
				u.SetAPIVersion(v1alpha1.APIVersion)
				u.SetKind(v1alpha1.KindFunction)
				u.SetName(fn.Name)
				u.SetNamespace(f.ns)
				_, err = f.dyn.Resource(functionsGVR).Namespace(f.ns).ApplyStatus(ctx, fn.Name, u, metav1.ApplyOptions{FieldManager: "test-controller", Force: true})
				if err != nil && ctx.Err() == nil {
					f.t.Logf("test controller: %v", err)
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
}

// ready is the controller's conditions of a function rolled out.
func ready(*v1alpha1.Function) []metav1.Condition {
	return []metav1.Condition{cond(v1alpha1.ConditionReady, true, v1alpha1.ReasonSucceeded, "1/1 pods ready")}
}

func cond(typ string, status bool, reason, msg string) metav1.Condition {
	s := metav1.ConditionFalse
	if status {
		s = metav1.ConditionTrue
	}
	return metav1.Condition{Type: typ, Status: s, Reason: reason, Message: msg, LastTransitionTime: metav1.Now()}
}

// eventually waits for cond, failing the test after a bound that only a
// hang reaches.
func (f *fixture) eventually(what string, cond func() bool) {
	f.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			f.t.Fatalf("%s: not after a minute", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
