package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ferrycd/ferry/environments/dispatch"
	"github.com/ferrycd/ferry/environments/kube"
	"github.com/ferrycd/ferry/manifests/v1alpha1"
)

// topicReconciler makes a NATSTrigger's or KafkaTrigger's dispatcher: a
// ConfigMap holding its dispatch.Plan and a Deployment running `ferry
// dispatch` on it (the same dispatcher code as the embedded target's).
// The plan's hash is an annotation of the pod template, so a new plan
// rolls the dispatcher.
type topicReconciler struct {
	base
	kind string // KindNATSTrigger or KindKafkaTrigger
}

// Labels and annotations of a dispatcher's pods.
const (
	labelDispatcher    = "ferry.dev/dispatcher"
	annotationPlanHash = "ferry.dev/plan-hash"
	planKey            = "plan.json"
	planDir            = "/etc/ferry"
)

func (r *topicReconciler) setup(mgr ctrl.Manager) error {
	var obj client.Object = &v1alpha1.NATSTrigger{}
	newList := func() client.ObjectList { return &v1alpha1.NATSTriggerList{} }
	if r.kind == v1alpha1.KindKafkaTrigger {
		obj = &v1alpha1.KafkaTrigger{}
		newList = func() client.ObjectList { return &v1alpha1.KafkaTriggerList{} }
	}
	b := ctrl.NewControllerManagedBy(mgr).
		Named(strings.ToLower(r.kind)).
		For(obj).
		Owns(&corev1.ConfigMap{}).
		Owns(&appsv1.Deployment{})
	return watchFunctions(b, mgr.GetClient(), newList).Complete(r)
}

// topicTrigger is what the reconciler needs of either kind.
type topicTrigger interface {
	conditioned
	topicSpec() *v1alpha1.TopicTriggerSpec
	status() *v1alpha1.TriggerStatus
	// object is the trigger itself, of the kind the scheme knows, for the
	// client and the events.
	object() conditioned
}

type natsTrigger struct{ *v1alpha1.NATSTrigger }

func (t natsTrigger) topicSpec() *v1alpha1.TopicTriggerSpec { return &t.Spec }
func (t natsTrigger) status() *v1alpha1.TriggerStatus       { return &t.Status }
func (t natsTrigger) object() conditioned                   { return t.NATSTrigger }

type kafkaTrigger struct{ *v1alpha1.KafkaTrigger }

func (t kafkaTrigger) topicSpec() *v1alpha1.TopicTriggerSpec { return &t.Spec.TopicTriggerSpec }
func (t kafkaTrigger) status() *v1alpha1.TriggerStatus       { return &t.Status }
func (t kafkaTrigger) object() conditioned                   { return t.KafkaTrigger }

func (r *topicReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var t, old topicTrigger
	if r.kind == v1alpha1.KindNATSTrigger {
		n := &v1alpha1.NATSTrigger{}
		if err := r.Get(ctx, req.NamespacedName, n); err != nil {
			return ctrl.Result{}, client.IgnoreNotFound(err)
		}
		t, old = natsTrigger{n}, natsTrigger{n.DeepCopy()}
	} else {
		k := &v1alpha1.KafkaTrigger{}
		if err := r.Get(ctx, req.NamespacedName, k); err != nil {
			return ctrl.Result{}, client.IgnoreNotFound(err)
		}
		t, old = kafkaTrigger{k}, kafkaTrigger{k.DeepCopy()}
	}
	if !t.GetDeletionTimestamp().IsZero() {
		return ctrl.Result{}, nil
	}
	err := r.reconcile(ctx, t)
	if err != nil {
		markFailed(t, v1alpha1.ReasonFailed, err.Error())
	}
	if serr := r.writeStatus(ctx, t.object(), old.object()); serr != nil && err == nil {
		err = serr
	}
	return ctrl.Result{}, err
}

func (r *topicReconciler) reconcile(ctx context.Context, t topicTrigger) error {
	st := t.status()
	st.ObservedGeneration = t.GetGeneration()
	env, err := r.settings(ctx, t.GetNamespace())
	if err != nil {
		return err
	}
	name := childName(strings.TrimSuffix(strings.ToLower(r.kind), "trigger")+"-", t.GetName(), 63)
	spec := t.topicSpec()
	if !v1alpha1.RunsIn(spec.Environments, env.environment) {
		st.Functions = nil
		if err := r.deleteChild(ctx, t.object(), &appsv1.Deployment{ObjectMeta: objectMeta(t.GetNamespace(), name)}); err != nil {
			return err
		}
		if err := r.deleteChild(ctx, t.object(), &corev1.ConfigMap{ObjectMeta: objectMeta(t.GetNamespace(), name)}); err != nil {
			return err
		}
		markReady(t, notHere(spec.Environments, env.environment))
		return nil
	}
	fns, err := r.resolve(ctx, t.GetNamespace(), spec.FunctionTarget)
	if err != nil {
		return err
	}
	st.Functions = names(fns)
	if len(fns) == 0 {
		markFailed(t, v1alpha1.ReasonFunctionNotFound, targetText(spec.FunctionTarget)+" is not in namespace "+t.GetNamespace()+"; apply it, or fix the trigger")
		return nil
	}
	if env.image == "" {
		markFailed(t, v1alpha1.ReasonFailed, noImage)
		return nil
	}
	plan := dispatch.Plan{Environment: env.environment, Functions: map[string]string{}}
	for _, fn := range fns {
		plan.Functions[fn.Name] = functionURL(fn.Namespace, fn.Name)
		if len(fn.Labels) > 0 {
			if plan.FunctionLabels == nil {
				plan.FunctionLabels = map[string]map[string]string{}
			}
			plan.FunctionLabels[fn.Name] = fn.Labels
		}
	}
	// Only what the dispatcher reads of the trigger: a new resourceVersion
	// must not change the plan and roll the dispatcher.
	meta := metav1.ObjectMeta{Name: t.GetName(), Namespace: t.GetNamespace(), Labels: t.GetLabels()}
	switch x := t.(type) {
	case natsTrigger:
		if env.natsURL == "" {
			markFailed(t, v1alpha1.ReasonFailed, kube.KeyNATSURL+" is not set in ConfigMap "+kube.ConfigMapName+": the environment has no NATS server to subscribe to")
			return nil
		}
		plan.NATSURL = env.natsURL
		plan.NATSTriggers = []v1alpha1.NATSTrigger{{TypeMeta: metav1.TypeMeta{APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.KindNATSTrigger}, ObjectMeta: meta, Spec: x.Spec}}
	case kafkaTrigger:
		if len(env.kafkaBrokers) == 0 {
			markFailed(t, v1alpha1.ReasonFailed, kube.KeyKafkaBrokers+" is not set in ConfigMap "+kube.ConfigMapName+": the environment has no Kafka brokers to consume from")
			return nil
		}
		plan.KafkaBrokers = env.kafkaBrokers
		plan.KafkaTriggers = []v1alpha1.KafkaTrigger{{TypeMeta: metav1.TypeMeta{APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.KindKafkaTrigger}, ObjectMeta: meta, Spec: x.Spec}}
	}
	raw, err := json.MarshalIndent(plan, "", "  ")
	if err != nil {
		return err
	}
	sum := sha256.Sum256(raw)
	hash := hex.EncodeToString(sum[:])[:16]

	var cm corev1.ConfigMap
	if err := r.applyChild(ctx, t.object(), corev1ac.ConfigMap(name, t.GetNamespace()).
		WithLabels(childLabels(t)).
		WithAnnotations(childAnnotations(t)).
		WithOwnerReferences(ownerRef(t, r.kind)).
		WithData(map[string]string{planKey: string(raw)}), &cm, name); err != nil {
		return err
	}
	var dep appsv1.Deployment
	if err := r.applyChild(ctx, t.object(), dispatcher(t, r.kind, name, hash, env.image), &dep, name); err != nil {
		return err
	}
	markReady(t, fmt.Sprintf("dispatcher %s delivers %s to %d function(s)", name, spec.Topic, len(fns)))
	return nil
}

func dispatcher(t topicTrigger, kind, name, hash, image string) *appsv1ac.DeploymentApplyConfiguration {
	sel := map[string]string{kube.LabelManagedBy: kube.ManagedBy, labelDispatcher: name}
	return appsv1ac.Deployment(name, t.GetNamespace()).
		WithLabels(childLabels(t)).
		WithAnnotations(childAnnotations(t)).
		WithOwnerReferences(ownerRef(t, kind)).
		WithSpec(appsv1ac.DeploymentSpec().
			// One: the consumer group (Kafka) or queue group (NATS)
			// would share the work among more, but one keeps up with
			// what a function behind it can take.
			WithReplicas(1).
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(map[string]string{labelDispatcher: name})).
			WithStrategy(appsv1ac.DeploymentStrategy().
				WithType(appsv1.RollingUpdateDeploymentStrategyType).
				WithRollingUpdate(appsv1ac.RollingUpdateDeployment().
					WithMaxUnavailable(intstr.FromInt32(0)).
					WithMaxSurge(intstr.FromInt32(1)))).
			WithTemplate(corev1ac.PodTemplateSpec().
				WithLabels(sel).
				WithAnnotations(map[string]string{annotationPlanHash: hash}).
				WithSpec(hardenedPod(defaultTmpSize).
					WithVolumes(corev1ac.Volume().WithName("plan").
						WithConfigMap(corev1ac.ConfigMapVolumeSource().WithName(name))).
					WithContainers(corev1ac.Container().
						WithName("dispatch").
						WithImage(image).
						WithArgs("dispatch", "--plan", planDir+"/"+planKey).
						WithSecurityContext(containerSecurity()).
						WithVolumeMounts(tmpMount(),
							corev1ac.VolumeMount().WithName("plan").WithMountPath(planDir).WithReadOnly(true))))))
}

func objectMeta(namespace, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: namespace, Name: name}
}
