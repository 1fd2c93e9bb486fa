package controller

import (
	"context"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/ferrycd/ferry/environments/kube"
	"github.com/ferrycd/ferry/manifests/v1alpha1"
)

// indexFunction indexes triggers by the Function they name, or
// anySelector for those that select functions by label, so a changed
// Function wakes the triggers that may call it without listing all.
const (
	indexFunction = "ferry.dev/function"
	anySelector   = "*"
)

// targetOf is the FunctionTarget of any trigger.
func targetOf(o client.Object) v1alpha1.FunctionTarget {
	switch t := o.(type) {
	case *v1alpha1.HTTPTrigger:
		return t.Spec.FunctionTarget
	case *v1alpha1.CronTrigger:
		return t.Spec.FunctionTarget
	case *v1alpha1.NATSTrigger:
		return t.Spec.FunctionTarget
	case *v1alpha1.KafkaTrigger:
		return t.Spec.FunctionTarget
	}
	return v1alpha1.FunctionTarget{}
}

func indexTriggers(mgr ctrl.Manager) error {
	for _, o := range []client.Object{&v1alpha1.HTTPTrigger{}, &v1alpha1.CronTrigger{}, &v1alpha1.NATSTrigger{}, &v1alpha1.KafkaTrigger{}} {
		err := mgr.GetFieldIndexer().IndexField(context.Background(), o, indexFunction, func(o client.Object) []string {
			t := targetOf(o)
			switch {
			case t.Function != "":
				return []string{t.Function}
			case t.FunctionSelector != nil:
				return []string{anySelector}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// watchFunctions and watchEnvironment wake a trigger kind's reconciler
// when a Function it may call comes, goes or changes its labels, and
// when the environment's ConfigMap changes.
func watchFunctions(b *builder.Builder, c client.Reader, newList func() client.ObjectList) *builder.Builder {
	fnChanged := predicate.Or(predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{})
	return b.
		Watches(&v1alpha1.Function{}, handler.EnqueueRequestsFromMapFunc(triggersCalling(c, newList)), builder.WithPredicates(fnChanged)).
		Watches(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(allTriggers(c, newList)),
			builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool { return o.GetName() == kube.ConfigMapName })))
}

func triggersCalling(c client.Reader, newList func() client.ObjectList) handler.MapFunc {
	return func(ctx context.Context, fn client.Object) []reconcile.Request {
		var reqs []reconcile.Request
		for _, key := range []string{fn.GetName(), anySelector} {
			reqs = append(reqs, listRequests(ctx, c, newList(), client.InNamespace(fn.GetNamespace()), client.MatchingFields{indexFunction: key})...)
		}
		return reqs
	}
}

func allTriggers(c client.Reader, newList func() client.ObjectList) handler.MapFunc {
	return func(ctx context.Context, cm client.Object) []reconcile.Request {
		return listRequests(ctx, c, newList(), client.InNamespace(cm.GetNamespace()))
	}
}

func listRequests(ctx context.Context, c client.Reader, l client.ObjectList, opts ...client.ListOption) []reconcile.Request {
	if err := c.List(ctx, l, opts...); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "listing triggers to wake")
		return nil
	}
	items, err := apimeta.ExtractList(l)
	if err != nil {
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(items))
	for _, it := range items {
		o := it.(client.Object)
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: o.GetName()}})
	}
	return reqs
}

// notHere is the message of a trigger whose environments leave out env:
// it runs elsewhere, and has no children here.
func notHere(envs []string, env string) string {
	return "runs in " + strings.Join(envs, ", ") + " only, not in " + env
}
