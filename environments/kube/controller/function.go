package controller

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	autoscalingv2ac "k8s.io/client-go/applyconfigurations/autoscaling/v2"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/ferrycd/ferry/environments/kube"
	"github.com/ferrycd/ferry/manifests"
	"github.com/ferrycd/ferry/manifests/v1alpha1"
)

// functionReconciler makes a Function's Deployment, Service and
// HorizontalPodAutoscaler, and reports the rollout in its status.
type functionReconciler struct{ base }

func (r *functionReconciler) setup(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("function").
		For(&v1alpha1.Function{}).
		Owns(&appsv1.Deployment{}).
		Owns(&corev1.Service{}).
		Owns(&autoscalingv2.HorizontalPodAutoscaler{}).
		// A pod that cannot pull its image or keeps crashing changes no
		// Deployment field until the progress deadline; its own status
		// says why at once.
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(podFunction)).
		Complete(r)
}

func podFunction(_ context.Context, o client.Object) []reconcile.Request {
	name := o.GetLabels()[kube.LabelFunction]
	if name == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: name}}}
}

// pinnedImage is an image by digest: the only way the same release runs
// the same code in every cluster.
var pinnedImage = regexp.MustCompile(`@sha256:([0-9a-f]{64})$`)

// Defaults of what a Function leaves unset; a release fills them in, so
// these matter for objects applied by hand.
const (
	// defaultScaleMin is 1, not the embedded target's 0: nothing here
	// scales a Deployment from zero.
	defaultScaleMin int32 = 1
	// cpuTarget is the HPA's target of average CPU use, in percent of
	// the request: room for a burst before a new pod is ready.
	cpuTarget int32 = 80
	// cpuRequest is each function pod's CPU request. The manifest has no
	// CPU setting; an HPA measures use as a share of the request, so
	// without one it could not scale at all.
	cpuRequest = "100m"
)

func (r *functionReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	return reconcileWith(ctx, &r.base, req, &v1alpha1.Function{}, r.reconcile)
}

func (r *functionReconciler) reconcile(ctx context.Context, fn *v1alpha1.Function) error {
	fn.Status.ObservedGeneration = fn.Generation
	m := pinnedImage.FindStringSubmatch(fn.Spec.Image)
	if m == nil {
		markStalled(fn, v1alpha1.ReasonInvalidSpec, fmt.Sprintf("spec.image %q is not pinned by digest (NAME@sha256:...); ferry sets it when it makes a release, so apply the release's Function, not the manifest", fn.Spec.Image))
		return nil
	}
	min, max := defaultScaleMin, manifests.DefaultScaleMax
	if s := fn.Spec.Scale; s != nil {
		if s.Min != nil {
			min = *s.Min
		}
		if s.Max != nil {
			max = *s.Max
		}
	}
	if min == 0 {
		markStalled(fn, v1alpha1.ReasonInvalidSpec, "spec.scale.min is 0, but scale from zero is not on this target yet (nothing here starts a pod on the first request): set scale.min to 1 or more")
		return nil
	}
	if max < min {
		markStalled(fn, v1alpha1.ReasonInvalidSpec, fmt.Sprintf("spec.scale.max %d is below spec.scale.min %d; raise max", max, min))
		return nil
	}
	if why := beyondBounds(fn.Spec, max); why != "" {
		markStalled(fn, v1alpha1.ReasonInvalidSpec, why)
		return nil
	}
	fn.Status.Image = fn.Spec.Image
	fn.Status.Digest = m[1][:12]
	fn.Status.URL = functionURL(fn.Namespace, fn.Name)

	var dep appsv1.Deployment
	if err := r.applyChild(ctx, fn, deployment(fn), &dep, fn.Name); err != nil {
		return err
	}
	var svc corev1.Service
	if err := r.applyChild(ctx, fn, service(fn), &svc, fn.Name); err != nil {
		return err
	}
	var hpa autoscalingv2.HorizontalPodAutoscaler
	if err := r.applyChild(ctx, fn, autoscaler(fn, min, max), &hpa, fn.Name); err != nil {
		return err
	}
	fn.Status.Replicas = dep.Status.ReadyReplicas
	return r.rollout(ctx, fn, &dep)
}

// beyondBounds says what of spec asks more of the cluster than a release
// may (manifests' validation bounds a release; a Function applied by
// hand meets only the CRD's schema), or "". A memory of zero would be a
// container without a memory limit.
func beyondBounds(spec v1alpha1.FunctionSpec, max int32) string {
	var whys []string
	if max > manifests.MaxScale {
		whys = append(whys, fmt.Sprintf("spec.scale.max %d is more than %d", max, manifests.MaxScale))
	}
	if m := spec.Memory; m != nil && (m.Sign() <= 0 || m.Cmp(manifests.MaxMemory) > 0) {
		whys = append(whys, fmt.Sprintf("spec.memory %s is out of range (above 0, at most %s)", m.String(), manifests.MaxMemory.String()))
	}
	if d := spec.Timeout; d != nil && (d.Duration <= 0 || d.Duration > manifests.MaxTimeout) {
		whys = append(whys, fmt.Sprintf("spec.timeout %s is out of range (above 0, at most %s)", d.Duration, manifests.MaxTimeout))
	}
	if len(whys) == 0 {
		return ""
	}
	return strings.Join(whys, "; ") + ": a release never holds that (ferry validates it); apply the release's Function, or bring the value within bounds"
}

// rollout sets fn's conditions from its Deployment: Ready once every
// replica runs the current template, Reconciling while it rolls, and
// Ready False with the pods' reason when they cannot start.
func (r *functionReconciler) rollout(ctx context.Context, fn *v1alpha1.Function, dep *appsv1.Deployment) error {
	want := int32(1)
	if dep.Spec.Replicas != nil {
		want = *dep.Spec.Replicas
	}
	st := dep.Status
	if st.ObservedGeneration >= dep.Generation && st.UpdatedReplicas == want && st.Replicas == want && st.AvailableReplicas == want {
		markReady(fn, fmt.Sprintf("%d of %d replicas run %s", st.AvailableReplicas, want, fn.Status.Digest))
		return nil
	}
	for _, c := range st.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Reason == "ProgressDeadlineExceeded" {
			markFailed(fn, v1alpha1.ReasonRolloutFailed, "rollout failed: ProgressDeadlineExceeded: "+c.Message)
			return nil
		}
	}
	var pods corev1.PodList
	if err := r.List(ctx, &pods, client.InNamespace(fn.Namespace), client.MatchingLabels{kube.LabelFunction: fn.Name}); err != nil {
		return err
	}
	if why := podTrouble(pods.Items, fn.Spec.Image); why != "" {
		markFailed(fn, v1alpha1.ReasonRolloutFailed, "rollout failed: "+why)
		return nil
	}
	markProgressing(fn, fmt.Sprintf("rolling out %s: %d of %d replicas updated, %d available", fn.Status.Digest, st.UpdatedReplicas, want, st.AvailableReplicas))
	return nil
}

// podTrouble is why pods of image cannot run, from their containers'
// waiting reasons: ImagePullBackOff, CrashLoopBackOff and the like.
// ContainerCreating and PodInitializing are on their way, not trouble.
func podTrouble(pods []corev1.Pod, image string) string {
	var whys []string
	seen := map[string]bool{}
	for _, p := range pods {
		if len(p.Spec.Containers) == 0 || p.Spec.Containers[0].Image != image {
			continue // an old pod, going away
		}
		for _, cs := range p.Status.ContainerStatuses {
			w := cs.State.Waiting
			if w == nil {
				continue
			}
			if w.Reason == "" || w.Reason == "ContainerCreating" || w.Reason == "PodInitializing" {
				continue
			}
			why := w.Reason
			if w.Message != "" {
				why += ": " + w.Message
			}
			if !seen[why] {
				seen[why] = true
				whys = append(whys, fmt.Sprintf("pod %s: %s", p.Name, why))
			}
		}
	}
	sort.Strings(whys)
	return strings.Join(whys, "; ")
}

// functionContainer is the container's name in every function pod.
const functionContainer = "function"

func deployment(fn *v1alpha1.Function) *appsv1ac.DeploymentApplyConfiguration {
	timeout := manifests.DefaultTimeout
	if fn.Spec.Timeout != nil {
		timeout = fn.Spec.Timeout.Duration
	}
	memory := manifests.DefaultMemory
	if fn.Spec.Memory != nil {
		memory = *fn.Spec.Memory
	}
	podLabels := map[string]string{kube.LabelManagedBy: kube.ManagedBy, kube.LabelFunction: fn.Name}
	healthz := corev1ac.HTTPGetAction().WithPath("/healthz").WithPort(intstr.FromInt32(kube.FunctionPort))
	c := corev1ac.Container().
		WithName(functionContainer).
		WithImage(fn.Spec.Image).
		WithPorts(corev1ac.ContainerPort().WithName("http").WithContainerPort(kube.FunctionPort).WithProtocol(corev1.ProtocolTCP)).
		WithEnv(functionEnv(fn, timeout, memory)...).
		WithResources(corev1ac.ResourceRequirements().
			WithRequests(corev1.ResourceList{corev1.ResourceMemory: memory, corev1.ResourceCPU: resource.MustParse(cpuRequest)}).
			WithLimits(corev1.ResourceList{corev1.ResourceMemory: memory})).
		WithReadinessProbe(corev1ac.Probe().WithHTTPGet(healthz).WithPeriodSeconds(5).WithFailureThreshold(3)).
		WithLivenessProbe(corev1ac.Probe().WithHTTPGet(healthz).WithPeriodSeconds(10).WithFailureThreshold(3)).
		WithSecurityContext(containerSecurity()).
		WithVolumeMounts(tmpMount())
	// why: after SIGTERM the invoker gives calls in flight their timeout
	// and a second more; the kubelet must not kill it before.
	grace := int64((timeout + 5*time.Second) / time.Second)
	return appsv1ac.Deployment(fn.Name, fn.Namespace).
		WithLabels(childLabels(fn)).
		WithLabels(map[string]string{kube.LabelFunction: fn.Name}).
		WithAnnotations(childAnnotations(fn)).
		WithOwnerReferences(ownerRef(fn, v1alpha1.KindFunction)).
		// No replicas: the HPA owns the count (it raises it to min itself).
		WithSpec(appsv1ac.DeploymentSpec().
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(map[string]string{kube.LabelFunction: fn.Name})).
			WithStrategy(appsv1ac.DeploymentStrategy().
				WithType(appsv1.RollingUpdateDeploymentStrategyType).
				WithRollingUpdate(appsv1ac.RollingUpdateDeployment().
					WithMaxUnavailable(intstr.FromInt32(0)).
					WithMaxSurge(intstr.FromInt32(1)))).
			WithTemplate(corev1ac.PodTemplateSpec().
				WithLabels(podLabels).
				WithSpec(hardenedPod(memory).
					WithTerminationGracePeriodSeconds(grace).
					WithContainers(c))))
}

// functionEnv is the function's env, sorted, then the variables of the
// function contract that the embedded target sets too (PORT,
// FUNCTION_NAME, FUNCTION_TIMEOUT, FUNCTION_MEMORY), Knative's K_SERVICE,
// and FERRY_LISTEN_ADDR, the invokers' address. A secret is a reference into the environment's Secret: its
// value is in no Deployment.
func functionEnv(fn *v1alpha1.Function, timeout time.Duration, memory resource.Quantity) []*corev1ac.EnvVarApplyConfiguration {
	contract := []*corev1ac.EnvVarApplyConfiguration{
		corev1ac.EnvVar().WithName("PORT").WithValue(fmt.Sprint(kube.FunctionPort)),
		corev1ac.EnvVar().WithName("FUNCTION_NAME").WithValue(fn.Name),
		corev1ac.EnvVar().WithName("FUNCTION_TIMEOUT").WithValue(timeout.String()),
		corev1ac.EnvVar().WithName("FUNCTION_MEMORY").WithValue(memory.String()),
		corev1ac.EnvVar().WithName("K_SERVICE").WithValue(fn.Name),
		// why: a pod's network is its own, and the Service and the
		// kubelet's probes reach it at the pod's IP, not its loopback.
		corev1ac.EnvVar().WithName("FERRY_LISTEN_ADDR").WithValue("0.0.0.0"),
	}
	reserved := map[string]bool{}
	for _, e := range contract {
		reserved[*e.Name] = true
	}
	keys := make([]string, 0, len(fn.Spec.Env))
	for k := range fn.Spec.Env {
		if !reserved[k] { // the manifest refuses them; the contract wins
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var env []*corev1ac.EnvVarApplyConfiguration
	for _, k := range keys {
		v := fn.Spec.Env[k]
		e := corev1ac.EnvVar().WithName(k)
		if s := v.Secret(); s != "" {
			e.WithValueFrom(corev1ac.EnvVarSource().WithSecretKeyRef(
				corev1ac.SecretKeySelector().WithName(kube.SecretName).WithKey(s)))
		} else {
			e.WithValue(v.Value)
		}
		env = append(env, e)
	}
	return append(env, contract...)
}

func service(fn *v1alpha1.Function) *corev1ac.ServiceApplyConfiguration {
	return corev1ac.Service(fn.Name, fn.Namespace).
		WithLabels(childLabels(fn)).
		WithLabels(map[string]string{kube.LabelFunction: fn.Name}).
		WithAnnotations(childAnnotations(fn)).
		WithOwnerReferences(ownerRef(fn, v1alpha1.KindFunction)).
		WithSpec(corev1ac.ServiceSpec().
			WithType(corev1.ServiceTypeClusterIP).
			WithSelector(map[string]string{kube.LabelFunction: fn.Name}).
			WithPorts(corev1ac.ServicePort().
				WithName("http").
				WithProtocol(corev1.ProtocolTCP).
				WithPort(kube.ServicePort).
				WithTargetPort(intstr.FromString("http"))))
}

func autoscaler(fn *v1alpha1.Function, min, max int32) *autoscalingv2ac.HorizontalPodAutoscalerApplyConfiguration {
	return autoscalingv2ac.HorizontalPodAutoscaler(fn.Name, fn.Namespace).
		WithLabels(childLabels(fn)).
		WithLabels(map[string]string{kube.LabelFunction: fn.Name}).
		WithAnnotations(childAnnotations(fn)).
		WithOwnerReferences(ownerRef(fn, v1alpha1.KindFunction)).
		WithSpec(autoscalingv2ac.HorizontalPodAutoscalerSpec().
			WithScaleTargetRef(autoscalingv2ac.CrossVersionObjectReference().
				WithAPIVersion("apps/v1").WithKind("Deployment").WithName(fn.Name)).
			WithMinReplicas(min).
			WithMaxReplicas(max).
			WithMetrics(autoscalingv2ac.MetricSpec().
				WithType(autoscalingv2.ResourceMetricSourceType).
				WithResource(autoscalingv2ac.ResourceMetricSource().
					WithName(corev1.ResourceCPU).
					WithTarget(autoscalingv2ac.MetricTarget().
						WithType(autoscalingv2.UtilizationMetricType).
						WithAverageUtilization(cpuTarget)))))
}
