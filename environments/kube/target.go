package kube

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/ferrycd/ferry/build"
	"github.com/ferrycd/ferry/environments"
	"github.com/ferrycd/ferry/manifests/v1alpha1"
)

// Defaults of a Target.
const (
	// defaultReadyTimeout bounds Apply's wait for the functions: a
	// rollout pulls images and waits on readiness probes, which on a
	// busy cluster takes minutes, not hours.
	defaultReadyTimeout = 5 * time.Minute
	// applyBound bounds an Apply's steps before the wait: hundreds of
	// objects take seconds; minutes is an API server that does not answer.
	applyBound = 5 * time.Minute
	// namespacePrefix makes the namespace of an environment that names
	// none: ferry-dev, ferry-pr-42.
	namespacePrefix = "ferry-"
)

// Config wires a Target: where the environment lives and what the
// in-cluster controller needs to know about it.
type Config struct {
	// Environment is the environment's name; every object ferry applies
	// carries it in LabelEnvironment.
	Environment string
	// Kubeconfig is the kubeconfig file; empty means $KUBECONFIG, else
	// ~/.kube/config (client-go's default loading rules). Context is the
	// context in it; empty means its current context.
	Kubeconfig, Context string
	// REST reaches the API server directly, instead of Kubeconfig and
	// Context (tests, and ferry running in the cluster).
	REST *rest.Config
	// Namespace holds the environment's objects; empty means
	// "ferry-<environment>". One environment per namespace: Apply refuses
	// a namespace that another environment's ConfigMap claims.
	Namespace string
	// GatewayURL, when set, is where the cluster's gateway serves the
	// environment's HTTP triggers: a trigger's path appended to it is its
	// URL. Its host name is the one the environment's routes match;
	// without one (or with an IP address) they match every host of
	// their Gateway or ingress class, so environments must then not
	// share one. Without it, Call reaches a function's pod through a
	// port-forward, and URL has nothing to give.
	GatewayURL string
	// NATSURL and KafkaBrokers are where the dispatchers of NATS and
	// Kafka triggers connect, from inside the cluster.
	NATSURL      string
	KafkaBrokers []string
	// Gateway is NAMESPACE/NAME of the Gateway API Gateway that the
	// controller's HTTPRoutes attach to; IngressClass, when set, makes
	// it write Ingresses of that class instead.
	Gateway, IngressClass string
	// Image is ferry's own image (by digest), which CronJobs and
	// dispatchers run; empty means the controller's own.
	Image string
	// Secrets resolves a secret of the environment by name (ferry
	// secrets set ENV NAME). Nil: a release whose functions reference a
	// secret is refused.
	Secrets func(ctx context.Context, name string) (string, error)
	// Env gives a function's variables in this environment: its
	// spec.env with the operator's overrides (ferry serve's env:), secret
	// references left as references. Nil: spec.env as the release has it.
	Env func(f *v1alpha1.Function) map[string]v1alpha1.EnvValue
	// ReadyTimeout bounds Apply's wait for every function to be Ready;
	// zero means defaultReadyTimeout.
	ReadyTimeout time.Duration
	// RegistryTimeout bounds each answer of the registry when Apply reads
	// the images' annotations; zero means build.DefaultRegistryTimeout.
	RegistryTimeout time.Duration
	// Log hears what the target does that no error reports.
	Log func(format string, args ...any)
}

// Target is the Kubernetes target of one environment.
type Target struct {
	cfg       Config
	namespace string
	rest      *rest.Config
	core      kubernetes.Interface
	dyn       dynamic.Interface

	// mu serialises Apply and Delete, so two deploys to one environment
	// never interleave their applies and prunes.
	mu sync.Mutex

	// routesMu guards routes: the HTTP triggers of the live release, for
	// URL and Call; nil until read (from the cluster, or set by Apply).
	routesMu sync.Mutex
	routes   []route
}

// route is one HTTPTrigger as Call matches it.
type route struct {
	path     string // cleaned, as the embedded gateway keys it
	methods  []string
	function string
	trigger  string
}

var _ environments.Target = (*Target)(nil)

// New returns the Kubernetes target of one environment. It reads the
// kubeconfig but does not reach the cluster: a cluster that is down
// fails the first Apply or Status, not ferry's start.
func New(cfg Config) (*Target, error) {
	if cfg.Environment == "" {
		return nil, errors.New("kube: a target needs an environment name")
	}
	// why: the name is a label value, which every prune selects by.
	if errs := validation.IsValidLabelValue(cfg.Environment); len(errs) > 0 {
		return nil, fmt.Errorf("environment %q cannot be a Kubernetes label value (%s); rename it to fit the Kubernetes target", cfg.Environment, strings.Join(errs, "; "))
	}
	if errs := validation.IsDNS1123Label(cfg.Namespace); cfg.Namespace != "" && len(errs) > 0 {
		return nil, fmt.Errorf("environment %s: namespace %q: %s", cfg.Environment, cfg.Namespace, strings.Join(errs, "; "))
	}
	rc := cfg.REST
	if rc == nil {
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		if cfg.Kubeconfig != "" {
			rules.ExplicitPath = cfg.Kubeconfig
		}
		cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: cfg.Context})
		var err error
		rc, err = cc.ClientConfig()
		if err != nil {
			// why: no environment in the message; who asked for the target says it first.
			file := cfg.Kubeconfig
			if file == "" {
				file = "($KUBECONFIG, else ~/.kube/config)"
			}
			return nil, fmt.Errorf("reading the kubeconfig %s (context %q): %w; set kubeconfig and context for it in the server configuration (`kubectl config get-contexts --kubeconfig FILE` lists the contexts)", file, cfg.Context, err)
		}
	}
	rc = rest.CopyConfig(rc)
	// why: a release is a few dozen requests at once; client-go's default
	// of 5 per second would make a deploy wait on itself.
	if rc.QPS == 0 {
		rc.QPS, rc.Burst = 50, 100
	}
	if rc.UserAgent == "" {
		rc.UserAgent = "ferry"
	}
	core, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("environment %s: %w", cfg.Environment, err)
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("environment %s: %w", cfg.Environment, err)
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = defaultReadyTimeout
	}
	if cfg.RegistryTimeout <= 0 {
		cfg.RegistryTimeout = build.DefaultRegistryTimeout
	}
	if cfg.Log == nil {
		cfg.Log = func(string, ...any) {}
	}
	ns := cfg.Namespace
	if ns == "" {
		ns = namespacePrefix + cfg.Environment
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return nil, fmt.Errorf("environment %s: its namespace would be %q, which Kubernetes refuses (%s); set namespace for it in the server configuration", cfg.Environment, ns, strings.Join(errs, "; "))
		}
	}
	return &Target{cfg: cfg, namespace: ns, rest: rc, core: core, dyn: dyn}, nil
}

// Namespace is where the environment's objects are.
func (t *Target) Namespace() string { return t.namespace }

// Status implements environments.Target from the Functions' status, as
// the controller wrote it.
func (t *Target) Status(ctx context.Context) (*environments.Status, error) {
	st := &environments.Status{Environment: t.cfg.Environment}
	fns, err := t.list(ctx, kindFunction, t.selector())
	if err != nil {
		return nil, err
	}
	releases := map[string]int{}
	for i := range fns {
		releases[fns[i].GetAnnotations()[AnnotationRelease]]++
	}
	// why: after an Apply every object carries one release; objects of
	// two are an Apply cut short, and the release most of them carry is
	// the better answer than none.
	best := 0
	for _, r := range slices.Sorted(maps.Keys(releases)) {
		if releases[r] > best {
			st.Release, best = r, releases[r]
		}
	}
	restarts, err := t.restarts(ctx)
	if err != nil {
		return nil, err
	}
	var ttrs []unstructured.Unstructured
	if t.cfg.GatewayURL != "" {
		if ttrs, err = t.list(ctx, kindHTTPTrigger, t.selector()); err != nil {
			return nil, err
		}
	}
	slices.SortFunc(fns, func(a, b unstructured.Unstructured) int { return strings.Compare(a.GetName(), b.GetName()) })
	for i := range fns {
		var f v1alpha1.Function
		if err := fromUnstructured(&fns[i], &f); err != nil {
			return nil, err
		}
		fs := environments.FunctionStatus{Name: f.Name, Image: f.Spec.Image, State: "starting", Restarts: restarts[f.Name]}
		ready := condition(f.Status.Conditions, v1alpha1.ConditionReady)
		stalled := condition(f.Status.Conditions, v1alpha1.ConditionStalled)
		current := f.Status.ObservedGeneration == f.Generation
		switch {
		case current && ready != nil && ready.Status == metav1.ConditionTrue:
			fs.State = "running"
		case current && stalled != nil && stalled.Status == metav1.ConditionTrue:
			fs.State, fs.Message = "failed", stalled.Message
		case ready != nil:
			fs.Message = ready.Message
		default:
			fs.Message = "no status yet: " + t.noControllerHint()
		}
		if fs.State == "failed" && fs.Message == "" && ready != nil {
			fs.Message = ready.Message
		}
		for _, tr := range ttrs {
			fn, _, _ := unstructured.NestedString(tr.Object, "spec", "function")
			if fn == f.Name {
				path, _, _ := unstructured.NestedString(tr.Object, "spec", "path")
				fs.URL = t.gatewayURL(path)
				break
			}
		}
		st.Functions = append(st.Functions, fs)
	}
	return st, nil
}

// restarts counts the container restarts of each function's pods; none
// when ferry may not list pods, which only this count needs.
func (t *Target) restarts(ctx context.Context) (map[string]int, error) {
	out := map[string]int{}
	pods, err := t.core.CoreV1().Pods(t.namespace).List(ctx, metav1.ListOptions{LabelSelector: LabelFunction})
	if apierrors.IsForbidden(err) {
		return out, nil
	}
	if err != nil {
		return nil, t.apiError("listing pods", err)
	}
	for _, p := range pods.Items {
		for _, cs := range p.Status.ContainerStatuses {
			out[p.Labels[LabelFunction]] += int(cs.RestartCount)
		}
	}
	return out, nil
}

// Delete implements environments.Target: every object ferry applied for
// the environment, then its Secret and ConfigMap. The namespace stays:
// ferry may not have made it, and its deletion takes a while in which
// nothing can be applied there again. The controller's own objects go
// with their owners.
func (t *Target) Delete(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	var errs []error
	// Triggers first, so none is left calling a function already gone.
	for _, k := range slices.Backward(kinds) {
		if _, err := t.deleteAll(ctx, k, t.selector()); err != nil {
			errs = append(errs, err)
		}
	}
	if err := t.deleteOwn(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("environment %s: deleting from namespace %s: %w", t.cfg.Environment, t.namespace, err)
	}
	t.setRoutes([]route{})
	return nil
}

// URL implements environments.Target: GatewayURL and the path of the
// function's first HTTPTrigger.
func (t *Target) URL(function string) (string, error) {
	if t.cfg.GatewayURL == "" {
		return "", fmt.Errorf("environment %s has no gateway URL: set gatewayURL for it in the server configuration to where the cluster's Gateway serves it (ferry invoke and verification reach its functions without one)", t.cfg.Environment)
	}
	// why: URL takes no context; a bound keeps a cluster that does not
	// answer from holding the caller.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	routes, err := t.liveRoutes(ctx)
	if err != nil {
		return "", err
	}
	for _, r := range routes {
		if r.function == function {
			return t.gatewayURL(r.path), nil
		}
	}
	return "", fmt.Errorf("function %s has no HTTPTrigger in environment %s", function, t.cfg.Environment)
}

func (t *Target) gatewayURL(path string) string {
	return strings.TrimRight(t.cfg.GatewayURL, "/") + path
}

// noControllerHint is what to check when no controller has written a
// status.
func (t *Target) noControllerHint() string {
	return fmt.Sprintf("is the ferry controller running in the cluster (ferry install) and reading namespace %s?", t.namespace)
}

// logf reports through cfg.Log.
func (t *Target) logf(format string, args ...any) {
	t.cfg.Log("environment %s: "+format, append([]any{t.cfg.Environment}, args...)...)
}

// callClient sends Call's and Deliver's requests: a redirect is the
// function's answer, not a URL for ferry to fetch.
var callClient = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
