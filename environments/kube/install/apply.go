package install

import (
	"context"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"github.com/ferrycd/ferry/environments/kube"
)

// DefaultTimeout bounds the wait for the CRDs to be Established: an API
// server establishes a CRD within a second or two; a minute leaves room
// for a busy control plane, and still reports a stuck one.
const DefaultTimeout = time.Minute

// establishPoll is how often Apply asks whether the CRDs are Established.
const establishPoll = 250 * time.Millisecond

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// Apply server-side-applies objs through cfg in their order, as field
// manager "ferry", forcing ownership of the fields it sets (ferry owns
// these objects; a kubectl edit of them is undone by the next install),
// and waits up to timeout for every CRD among them to be Established.
// report, if set, hears each object as it is applied.
func Apply(ctx context.Context, cfg *rest.Config, objs []*unstructured.Unstructured, timeout time.Duration, report func(kind, name string)) error {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return err
	}
	groups, err := restmapper.GetAPIGroupResources(disc)
	if err != nil {
		return fmt.Errorf("install: asking the API server %s what it serves: %w; check the kubeconfig and context", cfg.Host, err)
	}
	mapper := restmapper.NewDiscoveryRESTMapper(groups)
	var crds []string
	for _, obj := range objs {
		gvk := obj.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			return fmt.Errorf("install: %s %s: the API server does not serve %s: %w", gvk.Kind, obj.GetName(), gvk.GroupVersion(), err)
		}
		var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
		if m.Scope.Name() == meta.RESTScopeNameNamespace {
			ri = dyn.Resource(m.Resource).Namespace(obj.GetNamespace())
		}
		if _, err := ri.Apply(ctx, obj.GetName(), obj, metav1.ApplyOptions{FieldManager: kube.FieldManager, Force: true}); err != nil {
			return fmt.Errorf("install: applying %s %s: %w", gvk.Kind, qualified(obj), explain(err))
		}
		if report != nil {
			report(gvk.Kind, qualified(obj))
		}
		if m.Resource == crdResource {
			crds = append(crds, obj.GetName())
		}
	}
	return waitEstablished(ctx, dyn, crds, timeout)
}

func qualified(obj *unstructured.Unstructured) string {
	if ns := obj.GetNamespace(); ns != "" {
		return ns + "/" + obj.GetName()
	}
	return obj.GetName()
}

// explain adds what to do to the errors an install meets most.
func explain(err error) error {
	switch {
	case apierrors.IsForbidden(err):
		return fmt.Errorf("%w; ferry install needs a cluster administrator (it creates CRDs and ClusterRoles): use such a context", err)
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("%w; the kubeconfig's credentials were refused: log in again", err)
	}
	return err
}

// waitEstablished waits until each CRD named has Established=True.
func waitEstablished(ctx context.Context, dyn dynamic.Interface, names []string, timeout time.Duration) error {
	pending := append([]string(nil), names...)
	err := wait.PollUntilContextTimeout(ctx, establishPoll, timeout, true, func(ctx context.Context) (bool, error) {
		for len(pending) > 0 {
			crd, err := dyn.Resource(crdResource).Get(ctx, pending[0], metav1.GetOptions{})
			if err != nil {
				return false, fmt.Errorf("install: reading CRD %s: %w", pending[0], err)
			}
			if !established(crd) {
				return false, nil
			}
			pending = pending[1:]
		}
		return true, nil
	})
	if err != nil && len(pending) > 0 && (wait.Interrupted(err) || errors.Is(err, context.DeadlineExceeded)) {
		return fmt.Errorf("install: the CRD %s is not Established after %s; `kubectl describe crd %s` says why", pending[0], timeout, pending[0])
	}
	return err
}

func established(crd *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	for _, c := range conds {
		m, ok := c.(map[string]any)
		if ok && m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}
