package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	"github.com/ferrycd/ferry/environments/kube"
	"github.com/ferrycd/ferry/manifests/v1alpha1"
)

// base is what every reconciler shares.
type base struct {
	client.Client
	// reader reads past the cache, for the environment's ConfigMap, which
	// the cache (ferry's own children only) may not hold.
	reader client.Reader
	events events.EventRecorder
	image  string // Options.Image
}

// Event reasons and the action the events record, besides the
// conditions' reasons.
const (
	reasonApplied = "Applied"
	actionApply   = "Reconcile"
)

// applyChild server-side applies ac, a child of owner, and leaves in out
// (typed, of the same kind) the object the API server answered. It
// records an event when the apply created or changed the object.
func (b *base) applyChild(ctx context.Context, owner client.Object, ac runtime.ApplyConfiguration, out client.Object, name string) error {
	gvk, err := apiutil.GVKForObject(out, b.Scheme())
	if err != nil {
		return err
	}
	before := ""
	key := client.ObjectKey{Namespace: owner.GetNamespace(), Name: name}
	err = b.Get(ctx, key, out)
	if apierrors.IsNotFound(err) {
		// why: the cache holds only objects with ferry's label; one made
		// by someone else is seen only by asking the API server, and a
		// forced apply would take it over.
		err = b.reader.Get(ctx, key, out)
	}
	switch {
	case err == nil:
		if err := b.controls(owner, out, gvk.Kind); err != nil {
			return err
		}
		before = out.GetResourceVersion()
	case !apierrors.IsNotFound(err):
		return err
	}
	if err := b.Apply(ctx, ac, client.FieldOwner(fieldManager), client.ForceOwnership); err != nil {
		return fmt.Errorf("applying %s %s/%s: %w", gvk.Kind, owner.GetNamespace(), name, err)
	}
	// The apply answers the whole object, status included: fresher than
	// the cache, which may not have seen this very write yet.
	raw, err := json.Marshal(ac)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return err
	}
	if after := out.GetResourceVersion(); after != before {
		verb := "updated"
		if before == "" {
			verb = "created"
		}
		b.events.Eventf(owner, out, corev1.EventTypeNormal, reasonApplied, actionApply, "%s %s %s", gvk.Kind, name, verb)
	}
	return nil
}

// deleteChild deletes obj (name and namespace set) if it is there and
// owner controls it: an object of that name that is another's stays.
// The cache answers first, so a reconcile with nothing to delete asks
// the API server nothing.
func (b *base) deleteChild(ctx context.Context, owner, obj client.Object) error {
	err := b.Get(ctx, client.ObjectKeyFromObject(obj), obj)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if ref := metav1.GetControllerOf(obj); ref == nil || ref.UID != owner.GetUID() {
		return nil
	}
	return client.IgnoreNotFound(b.Delete(ctx, obj, client.PropagationPolicy(metav1.DeletePropagationBackground),
		client.Preconditions{UID: ptrTo(obj.GetUID())}))
}

func ptrTo[T any](v T) *T { return &v }

// controls refuses obj, an object named as one of owner's children,
// unless owner is its controller. Names come from a repository: a
// Function named as a dispatcher, or an HTTPTrigger named as an Ingress
// the cluster's operator made, must not take that object over.
func (b *base) controls(owner, obj client.Object, kind string) error {
	ownerKind := "owner"
	if gvk, err := apiutil.GVKForObject(owner, b.Scheme()); err == nil {
		ownerKind = gvk.Kind
	}
	where := fmt.Sprintf("%s %s/%s", kind, obj.GetNamespace(), obj.GetName())
	ref := metav1.GetControllerOf(obj)
	switch {
	case ref != nil && ref.UID == owner.GetUID():
		return nil
	case ref != nil && ref.APIVersion == v1alpha1.APIVersion && ref.Kind == ownerKind && ref.Name == owner.GetName():
		return fmt.Errorf("%s still belongs to the %s %s deleted before; it is made again once the garbage collector has deleted it", where, ownerKind, ref.Name)
	case ref != nil:
		return fmt.Errorf("%s belongs to %s %s, and ferry takes over nothing: rename %s %s", where, ref.Kind, ref.Name, ownerKind, owner.GetName())
	}
	return fmt.Errorf("%s was not made by ferry's controller, and ferry takes over nothing: rename %s %s, or delete that %s if nothing needs it", where, ownerKind, owner.GetName(), kind)
}

// ownerRef makes owner the controller of a child, so the garbage
// collector deletes the child with it and Owns watches map the child
// back. (controllerutil.SetControllerReference's reference, for an apply
// configuration.)
func ownerRef(owner client.Object, kind string) *metav1ac.OwnerReferenceApplyConfiguration {
	return metav1ac.OwnerReference().
		WithAPIVersion(v1alpha1.APIVersion).
		WithKind(kind).
		WithName(owner.GetName()).
		WithUID(owner.GetUID()).
		WithController(true).
		WithBlockOwnerDeletion(true)
}

// childLabels are the labels of every child of owner: ferry's, and the
// environment and release the owner came from, so `kubectl get -l`
// finds a release's Deployments as it finds its Functions.
func childLabels(owner client.Object) map[string]string {
	l := map[string]string{kube.LabelManagedBy: kube.ManagedBy}
	for _, k := range []string{kube.LabelEnvironment, kube.LabelRelease} {
		if v := owner.GetLabels()[k]; v != "" {
			l[k] = v
		}
	}
	return l
}

// childAnnotations carry the owner's whole release digest.
func childAnnotations(owner client.Object) map[string]string {
	if v := owner.GetAnnotations()[kube.AnnotationRelease]; v != "" {
		return map[string]string{kube.AnnotationRelease: v}
	}
	return nil
}

// childName is prefix+name cut to max characters, a hash of the whole
// keeping two long names apart.
func childName(prefix, name string, max int) string {
	n := prefix + name
	if len(n) <= max {
		return n
	}
	sum := sha256.Sum256([]byte(n))
	return strings.TrimRight(n[:max-9], "-.") + "-" + hex.EncodeToString(sum[:])[:8]
}

// nonRootUID is the user every pod the controller makes runs as: the
// "nonroot" user of distroless images, owning nothing in the image.
const nonRootUID = 65532

// podSecurity and containerSecurity are the hardening of every pod the
// controller makes: not root, no privilege escalation, no capabilities,
// a read-only root filesystem (an emptyDir at /tmp is the one writable
// place) and the runtime's default seccomp profile.
func podSecurity() *corev1ac.PodSecurityContextApplyConfiguration {
	return corev1ac.PodSecurityContext().
		WithRunAsNonRoot(true).
		WithRunAsUser(nonRootUID).
		WithRunAsGroup(nonRootUID).
		WithSeccompProfile(corev1ac.SeccompProfile().WithType(corev1.SeccompProfileTypeRuntimeDefault))
}

func containerSecurity() *corev1ac.SecurityContextApplyConfiguration {
	return corev1ac.SecurityContext().
		WithRunAsNonRoot(true).
		WithAllowPrivilegeEscalation(false).
		WithReadOnlyRootFilesystem(true).
		WithCapabilities(corev1ac.Capabilities().WithDrop("ALL"))
}

const tmpVolume = "tmp"

func tmpMount() *corev1ac.VolumeMountApplyConfiguration {
	return corev1ac.VolumeMount().WithName(tmpVolume).WithMountPath("/tmp")
}

// defaultTmpSize bounds /tmp of the pods that run ferry's own image
// (dispatchers, CronJobs), as the embedded target's sandbox bounds a
// /tmp by default.
var defaultTmpSize = resource.MustParse("64Mi")

// tmpDir is /tmp in memory, at most size: as on the embedded target, a
// function's /tmp is a tmpfs as large as its memory, and its pages count
// against the container's memory limit. A disk-backed one without a
// bound would let a function fill its node's disk.
func tmpDir(size resource.Quantity) *corev1ac.VolumeApplyConfiguration {
	return corev1ac.Volume().WithName(tmpVolume).WithEmptyDir(corev1ac.EmptyDirVolumeSource().
		WithMedium(corev1.StorageMediumMemory).
		WithSizeLimit(size))
}

// hardenedPod is the pod spec every child's pods start from: no API
// token (nothing in them talks to the API server), no service links
// (their variables would crowd the function's environment), and a /tmp
// of at most tmpSize.
func hardenedPod(tmpSize resource.Quantity) *corev1ac.PodSpecApplyConfiguration {
	return corev1ac.PodSpec().
		WithAutomountServiceAccountToken(false).
		WithEnableServiceLinks(false).
		WithSecurityContext(podSecurity()).
		WithVolumes(tmpDir(tmpSize))
}

// settings are an environment's, from its ConfigMap (kube.ConfigMapName).
type settings struct {
	environment  string
	natsURL      string
	kafkaBrokers []string
	gateway      string // NAMESPACE/NAME or NAME
	ingressClass string
	host         string // the only host name routes match; any when empty
	image        string // ferry's own image; Options.Image when unset
}

// settings reads namespace's ConfigMap; a namespace without one is an
// environment named as the namespace with nothing set. The cache holds it
// when it carries ferry's managed-by label, as the target writes it;
// one written without is read from the API server.
func (b *base) settings(ctx context.Context, namespace string) (settings, error) {
	var cm corev1.ConfigMap
	key := client.ObjectKey{Namespace: namespace, Name: kube.ConfigMapName}
	err := b.Get(ctx, key, &cm)
	if apierrors.IsNotFound(err) {
		err = b.reader.Get(ctx, key, &cm)
	}
	if err != nil && !apierrors.IsNotFound(err) {
		return settings{}, fmt.Errorf("reading ConfigMap %s/%s: %w", namespace, kube.ConfigMapName, err)
	}
	d := cm.Data
	s := settings{
		environment:  d[kube.KeyEnvironment],
		natsURL:      d[kube.KeyNATSURL],
		gateway:      d[kube.KeyGateway],
		ingressClass: d[kube.KeyIngressClass],
		host:         d[kube.KeyHost],
		image:        d[kube.KeyImage],
	}
	if s.environment == "" {
		s.environment = namespace
	}
	if s.image == "" {
		s.image = b.image
	}
	for _, k := range strings.Split(d[kube.KeyKafkaBrokers], ",") {
		if k = strings.TrimSpace(k); k != "" {
			s.kafkaBrokers = append(s.kafkaBrokers, k)
		}
	}
	return s, nil
}

// resolve returns the Functions a trigger calls, sorted by name: the one
// it names, or those its selector matches. None is no error.
func (b *base) resolve(ctx context.Context, namespace string, t v1alpha1.FunctionTarget) ([]v1alpha1.Function, error) {
	if t.Function != "" {
		var fn v1alpha1.Function
		err := b.Get(ctx, client.ObjectKey{Namespace: namespace, Name: t.Function}, &fn)
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return []v1alpha1.Function{fn}, nil
	}
	if t.FunctionSelector == nil {
		return nil, nil
	}
	sel, err := metav1.LabelSelectorAsSelector(t.FunctionSelector)
	if err != nil {
		return nil, err
	}
	var list v1alpha1.FunctionList
	if err := b.List(ctx, &list, client.InNamespace(namespace), client.MatchingLabelsSelector{Selector: sel}); err != nil {
		return nil, err
	}
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Name < list.Items[j].Name })
	return list.Items, nil
}

func names(fns []v1alpha1.Function) []string {
	out := make([]string, len(fns))
	for i, f := range fns {
		out[i] = f.Name
	}
	return out
}

// targetText names what a trigger calls, for messages.
func targetText(t v1alpha1.FunctionTarget) string {
	if t.Function != "" {
		return "Function " + t.Function
	}
	if t.FunctionSelector != nil {
		return "no Function matching " + metav1.FormatLabelSelector(t.FunctionSelector)
	}
	return "no function (set spec.function or spec.functionSelector)"
}

// functionURL is where a function answers inside the cluster: its
// Service.
func functionURL(namespace, name string) string {
	return fmt.Sprintf("http://%s.%s.svc:%d", name, namespace, kube.ServicePort)
}

// conditioned is a ferry object with conditions.
type conditioned interface {
	client.Object
	GetConditions() []metav1.Condition
	SetConditions([]metav1.Condition)
}

func setCondition(obj conditioned, typ string, status metav1.ConditionStatus, reason, msg string) {
	c := obj.GetConditions()
	apimeta.SetStatusCondition(&c, metav1.Condition{Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: obj.GetGeneration()})
	obj.SetConditions(c)
}

func removeCondition(obj conditioned, typ string) {
	c := obj.GetConditions()
	apimeta.RemoveStatusCondition(&c, typ)
	obj.SetConditions(c)
}

// The states an object's conditions describe, as Flux's objects do.

// markReady: it does its job.
func markReady(obj conditioned, msg string) {
	setCondition(obj, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded, msg)
	removeCondition(obj, v1alpha1.ConditionReconciling)
	removeCondition(obj, v1alpha1.ConditionStalled)
}

// markProgressing: on its way; Ready is Unknown until it gets there.
func markProgressing(obj conditioned, msg string) {
	setCondition(obj, v1alpha1.ConditionReconciling, metav1.ConditionTrue, v1alpha1.ReasonProgressing, msg)
	setCondition(obj, v1alpha1.ConditionReady, metav1.ConditionUnknown, v1alpha1.ReasonProgressing, msg)
	removeCondition(obj, v1alpha1.ConditionStalled)
}

// markFailed: not working, and retried (a change elsewhere may fix it).
func markFailed(obj conditioned, reason, msg string) {
	setCondition(obj, v1alpha1.ConditionReady, metav1.ConditionFalse, reason, msg)
	removeCondition(obj, v1alpha1.ConditionReconciling)
	removeCondition(obj, v1alpha1.ConditionStalled)
}

// markStalled: not working until its spec changes; nothing retries it.
func markStalled(obj conditioned, reason, msg string) {
	setCondition(obj, v1alpha1.ConditionStalled, metav1.ConditionTrue, reason, msg)
	setCondition(obj, v1alpha1.ConditionReady, metav1.ConditionFalse, reason, msg)
	removeCondition(obj, v1alpha1.ConditionReconciling)
}

// reconcileWith is the frame of each reconciler of one kind: read obj
// (gone: nothing to do); leave one being deleted to the garbage
// collector, which takes its children; run reconcile; mark a failure
// Ready=False with its message; write the status only if it changed.
func reconcileWith[T conditioned](ctx context.Context, b *base, req ctrl.Request, obj T, reconcile func(context.Context, T) error) (ctrl.Result, error) {
	if err := b.Get(ctx, req.NamespacedName, obj); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !obj.GetDeletionTimestamp().IsZero() {
		return ctrl.Result{}, nil
	}
	old := obj.DeepCopyObject().(conditioned)
	err := reconcile(ctx, obj)
	if err != nil {
		markFailed(obj, v1alpha1.ReasonFailed, err.Error())
	}
	if serr := b.writeStatus(ctx, obj, old); serr != nil && err == nil {
		err = serr
	}
	return ctrl.Result{}, err
}

// writeStatus writes obj's status when the reconcile changed it from
// old's (so a reconcile that finds all as it was writes nothing), and
// records an event when Ready changed.
func (b *base) writeStatus(ctx context.Context, obj, old conditioned) error {
	if equality.Semantic.DeepEqual(obj, old) {
		return nil
	}
	nr := apimeta.FindStatusCondition(obj.GetConditions(), v1alpha1.ConditionReady)
	or := apimeta.FindStatusCondition(old.GetConditions(), v1alpha1.ConditionReady)
	if nr != nil && (or == nil || or.Status != nr.Status || or.Reason != nr.Reason || or.Message != nr.Message) {
		typ := corev1.EventTypeNormal
		if nr.Status == metav1.ConditionFalse {
			typ = corev1.EventTypeWarning
		}
		b.events.Eventf(obj, nil, typ, nr.Reason, actionApply, "%s", nr.Message)
	}
	if err := b.Status().Patch(ctx, obj, client.MergeFrom(old)); err != nil {
		return client.IgnoreNotFound(err)
	}
	return nil
}
