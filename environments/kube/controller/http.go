package controller

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	networkingv1ac "k8s.io/client-go/applyconfigurations/networking/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayv1ac "sigs.k8s.io/gateway-api/applyconfiguration/apis/v1"

	"github.com/ferrycd/ferry/environments/kube"
	"github.com/ferrycd/ferry/manifests/v1alpha1"
)

// httpReconciler routes an HTTPTrigger's path to its function's Service:
// a Gateway API HTTPRoute, or an Ingress when the environment names an
// ingress class.
type httpReconciler struct {
	base
	// gateway: the API server serves HTTPRoutes (looked up at start; a
	// controller started before Gateway API's CRDs were installed needs a
	// restart to see them).
	gateway bool
}

func (r *httpReconciler) setup(mgr ctrl.Manager) error {
	b := ctrl.NewControllerManagedBy(mgr).
		Named("httptrigger").
		For(&v1alpha1.HTTPTrigger{}).
		Owns(&networkingv1.Ingress{})
	if r.gateway {
		b = b.Owns(&gatewayv1.HTTPRoute{})
	}
	return watchFunctions(b, mgr.GetClient(), func() client.ObjectList { return &v1alpha1.HTTPTriggerList{} }).Complete(r)
}

func (r *httpReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	return reconcileWith(ctx, &r.base, req, &v1alpha1.HTTPTrigger{}, r.reconcile)
}

func (r *httpReconciler) reconcile(ctx context.Context, t *v1alpha1.HTTPTrigger) error {
	t.Status.ObservedGeneration = t.Generation
	env, err := r.settings(ctx, t.Namespace)
	if err != nil {
		return err
	}
	route := &gatewayv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Namespace: t.Namespace, Name: t.Name}}
	ingress := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: t.Namespace, Name: t.Name}}
	if !v1alpha1.RunsIn(t.Spec.Environments, env.environment) {
		t.Status.Functions = nil
		if err := r.deleteRoutes(ctx, t, route, ingress); err != nil {
			return err
		}
		markReady(t, notHere(t.Spec.Environments, env.environment))
		return nil
	}
	fns, err := r.resolve(ctx, t.Namespace, t.Spec.FunctionTarget)
	if err != nil {
		return err
	}
	t.Status.Functions = names(fns)
	switch len(fns) {
	case 0:
		markFailed(t, v1alpha1.ReasonFunctionNotFound, targetText(t.Spec.FunctionTarget)+" is not in namespace "+t.Namespace+"; apply it, or fix the trigger")
		return nil
	case 1:
	default:
		markStalled(t, v1alpha1.ReasonInvalidSpec, fmt.Sprintf("spec.functionSelector matches %d functions (%s), but an HTTP request is answered by one; name it with spec.function", len(fns), strings.Join(t.Status.Functions, ", ")))
		return nil
	}
	fn := fns[0].Name
	if env.ingressClass != "" {
		if r.gateway {
			if err := r.deleteChild(ctx, t, route); err != nil {
				return err
			}
		}
		if !ingressPath.MatchString(t.Spec.Path) {
			if err := r.deleteChild(ctx, t, ingress); err != nil {
				return err
			}
			markStalled(t, v1alpha1.ReasonInvalidSpec, fmt.Sprintf("spec.path %q has characters other than letters, digits, '/' and -._~, which an Ingress controller may write into its own configuration (ingress-nginx's nginx.conf) unescaped; change the path, or route through a Gateway (unset %s)", t.Spec.Path, kube.KeyIngressClass))
			return nil
		}
		var out networkingv1.Ingress
		if err := r.applyChild(ctx, t, ingressFor(t, fn, env.ingressClass, env.host), &out, t.Name); err != nil {
			return err
		}
		markReady(t, fmt.Sprintf("Ingress of class %s routes %s to Function %s", env.ingressClass, t.Spec.Path, fn))
		return nil
	}
	if err := r.deleteChild(ctx, t, ingress); err != nil {
		return err
	}
	if !r.gateway {
		markStalled(t, v1alpha1.ReasonInvalidSpec, "this cluster serves no Gateway API HTTPRoute: install Gateway API's standard CRDs and restart the controller, or set "+kube.KeyIngressClass+" in ConfigMap "+kube.ConfigMapName+" to make Ingresses")
		return nil
	}
	parent, err := parentRef(env.gateway)
	if err != nil {
		markStalled(t, v1alpha1.ReasonInvalidSpec, err.Error())
		return nil
	}
	var out gatewayv1.HTTPRoute
	if err := r.applyChild(ctx, t, httpRoute(t, fn, parent, env.host), &out, t.Name); err != nil {
		return err
	}
	msg := fmt.Sprintf("HTTPRoute routes %s to Function %s", t.Spec.Path, fn)
	if parent == nil {
		msg += " (attached to no Gateway: set " + kube.KeyGateway + " in ConfigMap " + kube.ConfigMapName + ")"
	}
	markReady(t, msg)
	return nil
}

func (r *httpReconciler) deleteRoutes(ctx context.Context, t *v1alpha1.HTTPTrigger, route, ingress client.Object) error {
	if r.gateway {
		if err := r.deleteChild(ctx, t, route); err != nil {
			return err
		}
	}
	return r.deleteChild(ctx, t, ingress)
}

// routePaths are the paths a trigger answers, as on the embedded
// gateway: the path exactly, and with one trailing slash.
func routePaths(p string) []string {
	if p == "/" {
		return []string{p}
	}
	return []string{p, p + "/"}
}

// parentRef reads the gateway setting, NAMESPACE/NAME or NAME (in the
// route's namespace); nil when unset.
func parentRef(gw string) (*gatewayv1ac.ParentReferenceApplyConfiguration, error) {
	if gw == "" {
		return nil, nil
	}
	ns, name, ok := strings.Cut(gw, "/")
	if !ok {
		name, ns = ns, ""
	}
	if name == "" || strings.Contains(name, "/") {
		return nil, fmt.Errorf("%s %q in ConfigMap %s is not NAMESPACE/NAME or NAME of a Gateway", kube.KeyGateway, gw, kube.ConfigMapName)
	}
	p := gatewayv1ac.ParentReference().WithName(gatewayv1.ObjectName(name))
	if ns != "" {
		p.WithNamespace(gatewayv1.Namespace(ns))
	}
	return p, nil
}

func httpRoute(t *v1alpha1.HTTPTrigger, fn string, parent *gatewayv1ac.ParentReferenceApplyConfiguration, host string) *gatewayv1ac.HTTPRouteApplyConfiguration {
	var matches []*gatewayv1ac.HTTPRouteMatchApplyConfiguration
	for _, p := range routePaths(t.Spec.Path) {
		path := gatewayv1ac.HTTPPathMatch().WithType(gatewayv1.PathMatchExact).WithValue(p)
		if len(t.Spec.Methods) == 0 {
			matches = append(matches, gatewayv1ac.HTTPRouteMatch().WithPath(path))
			continue
		}
		for _, m := range t.Spec.Methods {
			matches = append(matches, gatewayv1ac.HTTPRouteMatch().WithPath(path).WithMethod(gatewayv1.HTTPMethod(m)))
		}
	}
	spec := gatewayv1ac.HTTPRouteSpec().
		WithRules(gatewayv1ac.HTTPRouteRule().
			WithMatches(matches...).
			WithBackendRefs(gatewayv1ac.HTTPBackendRef().
				WithKind("Service").
				WithName(gatewayv1.ObjectName(fn)).
				WithPort(kube.ServicePort)))
	if parent != nil {
		spec.WithParentRefs(parent)
	}
	if host != "" {
		spec.WithHostnames(gatewayv1.Hostname(host))
	}
	return gatewayv1ac.HTTPRoute(t.Name, t.Namespace).
		WithLabels(childLabels(t)).
		WithAnnotations(childAnnotations(t)).
		WithOwnerReferences(ownerRef(t, v1alpha1.KindHTTPTrigger)).
		WithSpec(spec)
}

// ingressPath is a path an Ingress may carry: the manifest allows the
// sub-delimiters of RFC 3986 (;, ', $ ...) and %-escapes, which the
// Gateway API's implementations match as data but an Ingress controller
// may paste into its configuration, shared with every other tenant.
var ingressPath = regexp.MustCompile(`^/[A-Za-z0-9/._~-]*$`)

// ingressFor routes the trigger's paths through an Ingress. An Ingress
// cannot match methods: a trigger's methods are not enforced by it.
func ingressFor(t *v1alpha1.HTTPTrigger, fn, class, host string) *networkingv1ac.IngressApplyConfiguration {
	rule := networkingv1ac.HTTPIngressRuleValue()
	for _, p := range routePaths(t.Spec.Path) {
		rule.WithPaths(networkingv1ac.HTTPIngressPath().
			WithPath(p).
			WithPathType(networkingv1.PathTypeExact).
			WithBackend(networkingv1ac.IngressBackend().
				WithService(networkingv1ac.IngressServiceBackend().
					WithName(fn).
					WithPort(networkingv1ac.ServiceBackendPort().WithNumber(kube.ServicePort)))))
	}
	r := networkingv1ac.IngressRule().WithHTTP(rule)
	if host != "" {
		r.WithHost(host)
	}
	return networkingv1ac.Ingress(t.Name, t.Namespace).
		WithLabels(childLabels(t)).
		WithAnnotations(childAnnotations(t)).
		WithOwnerReferences(ownerRef(t, v1alpha1.KindHTTPTrigger)).
		WithSpec(networkingv1ac.IngressSpec().
			WithIngressClassName(class).
			WithRules(r))
}
