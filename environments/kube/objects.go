package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/ferrycd/ferry/manifests/v1alpha1"
)

// kind is one of ferry's CRDs as the dynamic client reaches it.
type kind struct {
	name     string
	resource schema.GroupVersionResource
}

func ferryKind(name, plural string) kind {
	return kind{name: name, resource: v1alpha1.GroupVersion.WithResource(plural)}
}

var (
	kindFunction     = ferryKind(v1alpha1.KindFunction, "functions")
	kindHTTPTrigger  = ferryKind(v1alpha1.KindHTTPTrigger, "httptriggers")
	kindCronTrigger  = ferryKind(v1alpha1.KindCronTrigger, "crontriggers")
	kindNATSTrigger  = ferryKind(v1alpha1.KindNATSTrigger, "natstriggers")
	kindKafkaTrigger = ferryKind(v1alpha1.KindKafkaTrigger, "kafkatriggers")
	// kinds are what a release applies, functions first: a trigger's
	// function is there before the trigger.
	kinds = []kind{kindFunction, kindHTTPTrigger, kindCronTrigger, kindNATSTrigger, kindKafkaTrigger}
)

// selector selects what ferry applied for this environment.
func (t *Target) selector() string {
	return LabelManagedBy + "=" + ManagedBy + "," + LabelEnvironment + "=" + t.cfg.Environment
}

// ownLabels are the labels of what ferry applies beside a release's
// objects (namespace, Secret, ConfigMap).
func (t *Target) ownLabels() map[string]string {
	return map[string]string{LabelManagedBy: ManagedBy, LabelEnvironment: t.cfg.Environment}
}

// applyConfig is the object ferry applies for one of a release's: its
// name, labels and annotations (the user's, then ferry's over them) and
// its spec, in the JSON the CRD holds. Status is the controller's and
// is never sent.
func (t *Target) applyConfig(k kind, meta metav1.ObjectMeta, spec any, release string) (*unstructured.Unstructured, error) {
	raw, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", k.name, meta.Name, err)
	}
	var specMap map[string]any
	if err := json.Unmarshal(raw, &specMap); err != nil {
		return nil, fmt.Errorf("%s %s: %w", k.name, meta.Name, err)
	}
	labels := maps.Clone(meta.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	maps.Copy(labels, t.ownLabels())
	labels[LabelRelease] = ReleaseLabel(release)
	annotations := maps.Clone(meta.Annotations)
	if annotations == nil {
		annotations = map[string]string{}
	}
	annotations[AnnotationRelease] = release
	u := &unstructured.Unstructured{Object: map[string]any{"spec": specMap}}
	u.SetAPIVersion(v1alpha1.APIVersion)
	u.SetKind(k.name)
	u.SetName(meta.Name)
	u.SetNamespace(t.namespace)
	u.SetLabels(labels)
	u.SetAnnotations(annotations)
	return u, nil
}

// apply server-side-applies u as ferry, taking over any field another
// manager set: the release is the truth for what ferry applies.
func (t *Target) apply(ctx context.Context, k kind, u *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	got, err := t.dyn.Resource(k.resource).Namespace(t.namespace).Apply(ctx, u.GetName(), u, metav1.ApplyOptions{FieldManager: FieldManager, Force: true})
	if err != nil {
		return nil, t.apiError("applying "+k.name+" "+u.GetName(), err)
	}
	return got, nil
}

// list lists k's objects in the namespace that selector selects, page by
// page.
func (t *Target) list(ctx context.Context, k kind, selector string) ([]unstructured.Unstructured, error) {
	var out []unstructured.Unstructured
	opts := metav1.ListOptions{LabelSelector: selector, Limit: 500}
	for {
		l, err := t.dyn.Resource(k.resource).Namespace(t.namespace).List(ctx, opts)
		if err != nil {
			return nil, t.apiError("listing "+k.resource.Resource, err)
		}
		out = append(out, l.Items...)
		if l.GetContinue() == "" {
			return out, nil
		}
		opts.Continue = l.GetContinue()
	}
}

// deleteAll deletes k's objects that selector selects and says how many
// it deleted. Their children (Deployments, routes) go with them: the
// controller makes them owned.
func (t *Target) deleteAll(ctx context.Context, k kind, selector string) (int, error) {
	objs, err := t.list(ctx, k, selector)
	if err != nil {
		return 0, err
	}
	bg := metav1.DeletePropagationBackground
	n := 0
	for _, o := range objs {
		err := t.dyn.Resource(k.resource).Namespace(t.namespace).Delete(ctx, o.GetName(), metav1.DeleteOptions{PropagationPolicy: &bg})
		if err != nil && !apierrors.IsNotFound(err) {
			return n, t.apiError("deleting "+k.name+" "+o.GetName(), err)
		}
		n++
		t.logf("deleted %s %s (release %s)", k.name, o.GetName(), o.GetAnnotations()[AnnotationRelease])
	}
	return n, nil
}

// fromUnstructured reads u into one of ferry's types through JSON, so the
// types' own JSON (an env value's two forms) applies.
func fromUnstructured(u *unstructured.Unstructured, into any) error {
	raw, err := u.MarshalJSON()
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, into); err != nil {
		return fmt.Errorf("%s %s in the cluster does not read as ferry's %s: %w", u.GetKind(), u.GetName(), v1alpha1.APIVersion, err)
	}
	return nil
}

// condition returns the condition of type typ, or nil.
func condition(cs []metav1.Condition, typ string) *metav1.Condition {
	for i := range cs {
		if cs[i].Type == typ {
			return &cs[i]
		}
	}
	return nil
}

// apiError names the operation, the environment and the namespace, and
// says what to do for the failures a user can fix.
func (t *Target) apiError(op string, err error) error {
	where := fmt.Sprintf("environment %s: %s in namespace %s", t.cfg.Environment, op, t.namespace)
	switch {
	case apierrors.IsForbidden(err):
		return fmt.Errorf("%s: %w; give ferry's identity in the kubeconfig the rights ferry install grants", where, err)
	case apierrors.IsNotFound(err) && strings.Contains(err.Error(), "the server could not find the requested resource"):
		return fmt.Errorf("%s: %w; ferry's CRDs are not installed in this cluster: run ferry install", where, err)
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("%s: %w; the kubeconfig's credentials were refused", where, err)
	}
	return fmt.Errorf("%s: %w", where, err)
}
