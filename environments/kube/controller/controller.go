package controller

import (
	"context"
	"errors"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2/textlogger"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/ferrycd/ferry/environments/kube"
	"github.com/ferrycd/ferry/manifests/v1alpha1"
)

// Options configure the controller. The zero value watches every
// namespace, serves neither metrics nor probes and elects no leader.
type Options struct {
	// MetricsBindAddress serves Prometheus metrics (":8080"); "" or "0"
	// serves none.
	MetricsBindAddress string
	// HealthProbeBindAddress serves /healthz and /readyz (":8081"); ""
	// serves none.
	HealthProbeBindAddress string
	// LeaderElect makes one replica of several reconcile, holding a Lease
	// in LeaderElectionNamespace (default: the namespace the pod runs in).
	LeaderElect             bool
	LeaderElectionNamespace string
	// Image is ferry's own image, by digest, that CronJobs (`ferry fire`)
	// and dispatcher Deployments (`ferry dispatch`) run when the
	// environment's ConfigMap names none. Its entrypoint is ferry.
	Image string
	// Namespace restricts the controller to one namespace; "" watches all.
	Namespace string

	// skipNameValidation lets a test run a second manager in one process
	// (controller names are unique per process, for their metrics).
	skipNameValidation bool
}

// concurrentReconciles is how many objects of one kind reconcile at once.
const concurrentReconciles = 4

// leaderElectionID names the Lease the replicas compete for.
const leaderElectionID = "ferry-controller.ferry.dev"

// fieldManager owns what the controller applies, apart from ferry's own
// applies (kube.FieldManager) of the parents.
const fieldManager = "ferry-controller"

// NewScheme knows the kinds the controller reads and writes.
func NewScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1alpha1.AddToScheme, gatewayv1.Install} {
		if err := add(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// ManagerOptions are the manager settings Run uses, for tests and
// benchmarks that start a manager of their own: a scheme, and a cache
// that holds only what ferry made (label app.kubernetes.io/managed-by=ferry)
// of the kinds that are not ferry's, so a controller in a big cluster
// does not hold every pod and ConfigMap of it.
func ManagerOptions(cfg *rest.Config, opts Options) (ctrl.Options, error) {
	s, err := NewScheme()
	if err != nil {
		return ctrl.Options{}, err
	}
	gateway, err := servesHTTPRoutes(cfg)
	if err != nil {
		return ctrl.Options{}, err
	}
	ours := labels.SelectorFromSet(labels.Set{kube.LabelManagedBy: kube.ManagedBy})
	mine := cache.ByObject{Label: ours}
	co := cache.Options{ByObject: map[client.Object]cache.ByObject{
		&appsv1.Deployment{}:                     mine,
		&corev1.Service{}:                        mine,
		&corev1.Pod{}:                            mine,
		&corev1.ConfigMap{}:                      mine,
		&autoscalingv2.HorizontalPodAutoscaler{}: mine,
		&batchv1.CronJob{}:                       mine,
		&networkingv1.Ingress{}:                  mine,
	}}
	if gateway {
		// why only then: the cache asks the API server about every kind
		// it is told of, and fails on one it does not serve.
		co.ByObject[&gatewayv1.HTTPRoute{}] = mine
	}
	if opts.Namespace != "" {
		co.DefaultNamespaces = map[string]cache.Config{opts.Namespace: {}}
	}
	metrics := opts.MetricsBindAddress
	if metrics == "" {
		metrics = "0"
	}
	mo := ctrl.Options{
		Scheme:                  s,
		Cache:                   co,
		Metrics:                 metricsserver.Options{BindAddress: metrics},
		HealthProbeBindAddress:  opts.HealthProbeBindAddress,
		LeaderElection:          opts.LeaderElect,
		LeaderElectionID:        leaderElectionID,
		LeaderElectionNamespace: opts.LeaderElectionNamespace,
		// why: a new leader must not wait out a crashed one's whole lease
		// after a clean stop; the Lease is given up on the way out.
		LeaderElectionReleaseOnCancel: true,
	}
	// why: a reconcile mostly waits on the API server, so a few at once
	// make a cold start (hundreds of Functions) several times faster.
	mo.Controller.MaxConcurrentReconciles = concurrentReconciles
	if opts.skipNameValidation {
		mo.Controller.SkipNameValidation = &opts.skipNameValidation
	}
	return mo, nil
}

// Run starts the controller and blocks until ctx is done.
func Run(ctx context.Context, cfg *rest.Config, opts Options) error {
	log.SetLogger(textlogger.NewLogger(textlogger.NewConfig()))
	if cfg.QPS == 0 {
		// why: client-go's default of 5 requests a second would make a cold
		// start of 500 Functions take minutes; the API server's priority
		// and fairness protects it instead, as controller-runtime's own
		// config loading assumes.
		cfg = rest.CopyConfig(cfg)
		cfg.QPS = -1
	}
	mo, err := ManagerOptions(cfg, opts)
	if err != nil {
		return err
	}
	mgr, err := ctrl.NewManager(cfg, mo)
	if err != nil {
		return fmt.Errorf("starting the controller's manager: %w", err)
	}
	if err := Setup(mgr, opts); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	return mgr.Start(ctx)
}

// servesHTTPRoutes reports whether the API server serves Gateway API's
// HTTPRoute (its CRDs are installed).
func servesHTTPRoutes(cfg *rest.Config) (bool, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return false, err
	}
	list, err := dc.ServerResourcesForGroupVersion(httpRouteGVK.GroupVersion().String())
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("asking the API server whether it serves Gateway API: %w", err)
	}
	for _, r := range list.APIResources {
		if r.Kind == httpRouteGVK.Kind {
			return true, nil
		}
	}
	return false, nil
}

// httpRouteGVK is the Gateway API kind HTTPTriggers become.
var httpRouteGVK = schema.GroupVersionKind{Group: gatewayv1.GroupName, Version: "v1", Kind: "HTTPRoute"}

// Setup adds ferry's reconcilers to mgr, which must have been made with
// ManagerOptions' scheme and cache.
func Setup(mgr ctrl.Manager, opts Options) error {
	_, err := mgr.GetRESTMapper().RESTMapping(httpRouteGVK.GroupKind(), httpRouteGVK.Version)
	gateway := err == nil
	if err != nil && !apimeta.IsNoMatchError(err) {
		return fmt.Errorf("looking up Gateway API's HTTPRoute: %w", err)
	}
	b := base{
		Client: mgr.GetClient(),
		reader: mgr.GetAPIReader(),
		events: mgr.GetEventRecorder(fieldManager),
		image:  opts.Image,
	}
	if err := indexTriggers(mgr); err != nil {
		return err
	}
	return errors.Join(
		(&functionReconciler{base: b}).setup(mgr),
		(&httpReconciler{base: b, gateway: gateway}).setup(mgr),
		(&cronReconciler{base: b}).setup(mgr),
		(&topicReconciler{base: b, kind: v1alpha1.KindNATSTrigger}).setup(mgr),
		(&topicReconciler{base: b, kind: v1alpha1.KindKafkaTrigger}).setup(mgr),
	)
}
