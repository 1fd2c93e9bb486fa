package kube

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	"github.com/ferrycd/ferry/build"
	"github.com/ferrycd/ferry/manifests"
	"github.com/ferrycd/ferry/manifests/v1alpha1"
)

// Apply implements environments.Target. In order: refuse what this
// target cannot run, with nothing changed; resolve the secrets the
// functions reference; claim the namespace; apply the environment's
// ConfigMap and Secret, then the release's Functions and the triggers
// that run in this environment; prune what ferry applied before that
// the release no longer has; wait until every Function is Ready on its
// new image. Each object is applied server-side as field manager
// "ferry", so applying the same release again writes nothing.
func (t *Target) Apply(ctx context.Context, rel *build.Release) error {
	if rel == nil || rel.Set == nil {
		return errors.New("kube: no release to apply")
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	release := rel.Digest.String()
	// why: the steps before the wait are bounded as a whole, so an API
	// server (or registry) that takes connections and never answers
	// fails the deploy instead of holding the environment for good; the
	// wait has its own bound.
	actx, cancel := context.WithTimeout(ctx, applyBound)
	defer cancel()
	all := t.withEnv(rel.Set)
	if err := t.refuse(actx, all); err != nil {
		return err
	}
	secrets, err := t.resolveSecrets(actx, all)
	if err != nil {
		return err
	}
	if err := t.claimNamespace(actx); err != nil {
		return err
	}
	if err := t.applyEnvironment(actx, secrets); err != nil {
		return err
	}
	set := all.In(t.cfg.Environment)
	applied, err := t.applyRelease(actx, set, release)
	if err != nil {
		return err
	}
	// why: the triggers of the new release are in place, so Call routes
	// by them from now on, whatever the wait below says.
	t.setRoutes(routesOf(set))
	pruned, err := t.prune(actx, release)
	if err != nil {
		return err
	}
	triggers := len(set.HTTPTriggers) + len(set.CronTriggers) + len(set.NATSTriggers) + len(set.KafkaTriggers)
	t.logf("applied release %s to namespace %s: %d functions, %d triggers; pruned %d objects of earlier releases", release, t.namespace, len(applied), triggers, pruned)
	return t.waitReady(ctx, applied)
}

// refuse says, for every function at once, what this target cannot run:
// a function with no image, one that may scale to zero, an image that
// needs the host's interpreter. Nothing in the cluster is changed.
func (t *Target) refuse(ctx context.Context, set *manifests.Set) error {
	var errs []error
	var check []*v1alpha1.Function
	for _, f := range set.Functions {
		// why: a function's Service is named as it, and a Service's name
		// must start with a letter; "9lives" passes the manifest's rules
		// (DNS-1123) but no controller could ever serve it.
		if bad := validation.IsDNS1035Label(f.Name); len(bad) > 0 {
			errs = append(errs, fmt.Errorf("function %s: on the Kubernetes target a function's name is its Service's, which must start with a letter (%s); rename it", f.Name, strings.Join(bad, "; ")))
			continue
		}
		switch {
		case f.Spec.Image == "":
			errs = append(errs, fmt.Errorf("function %s has no image; apply a release that ferry built", f.Name))
			continue
		case f.Spec.Scale == nil || f.Spec.Scale.Min == nil || *f.Spec.Scale.Min == 0:
			errs = append(errs, fmt.Errorf("function %s: scale.min: 0 is not supported on the Kubernetes target yet; set min to 1 or more, or deploy this environment on the embedded target", f.Name))
		}
		check = append(check, f)
	}
	errs = append(errs, t.checkImages(ctx, check)...)
	if err := errors.Join(errs...); err != nil {
		// why: the first reason on the first line, which is all a log line or event keeps.
		return fmt.Errorf("environment %s (Kubernetes, namespace %s) cannot run this release, nothing was changed: %w", t.cfg.Environment, t.namespace, err)
	}
	return nil
}

// resolveSecrets reads every secret a function references, by name,
// before anything is applied: a missing one fails the Apply with the
// environment as it was. Errors name the secret, never a value.
func (t *Target) resolveSecrets(ctx context.Context, set *manifests.Set) (map[string][]byte, error) {
	users := map[string][]string{} // secret -> functions.variables that use it
	for _, f := range set.Functions {
		for _, k := range slices.Sorted(maps.Keys(f.Spec.Env)) {
			if s := f.Spec.Env[k].Secret(); s != "" {
				users[s] = append(users[s], f.Name+"."+k)
			}
		}
	}
	out := map[string][]byte{}
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(users)) {
		if t.cfg.Secrets == nil {
			errs = append(errs, fmt.Errorf("secret %s (used by %s): this ferry keeps no secrets for the environment; deploy through ferry serve (ferry secrets set %s %s)", name, strings.Join(users[name], ", "), t.cfg.Environment, name))
			continue
		}
		v, err := t.cfg.Secrets(ctx, name)
		if err != nil {
			errs = append(errs, fmt.Errorf("secret %s (used by %s): %w", name, strings.Join(users[name], ", "), err))
			continue
		}
		out[name] = []byte(v)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("environment %s: nothing was changed:\n%w", t.cfg.Environment, err)
	}
	return out, nil
}

// claimNamespace makes the namespace when it is not there, and refuses
// one that another environment's ConfigMap claims: two environments in
// one namespace would apply over each other's objects, which have the
// same names.
func (t *Target) claimNamespace(ctx context.Context) error {
	_, err := t.core.CoreV1().Namespaces().Get(ctx, t.namespace, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: t.namespace, Labels: t.ownLabels()}}
		if _, err := t.core.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{FieldManager: FieldManager}); err != nil && !apierrors.IsAlreadyExists(err) {
			return t.apiError("creating the namespace", err)
		}
		t.logf("created namespace %s", t.namespace)
	case apierrors.IsForbidden(err):
		// why: a least-privilege identity may not read namespaces; one
		// made for it by its administrator is then assumed, and the
		// applies below say so if it is not there.
	case err != nil:
		return t.apiError("reading the namespace", err)
	}
	cm, err := t.core.CoreV1().ConfigMaps(t.namespace).Get(ctx, ConfigMapName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		// why create, not apply: of two environments deploying into one
		// new namespace at once, exactly one create succeeds; the other
		// reads the winner's claim below instead of applying over it.
		claim := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: ConfigMapName, Namespace: t.namespace, Labels: t.ownLabels()},
			Data:       map[string]string{KeyEnvironment: t.cfg.Environment},
		}
		_, err = t.core.CoreV1().ConfigMaps(t.namespace).Create(ctx, claim, metav1.CreateOptions{FieldManager: FieldManager})
		if err == nil {
			return nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return t.apiError("creating ConfigMap "+ConfigMapName, err)
		}
		cm, err = t.core.CoreV1().ConfigMaps(t.namespace).Get(ctx, ConfigMapName, metav1.GetOptions{})
	}
	if err != nil {
		return t.apiError("reading ConfigMap "+ConfigMapName, err)
	}
	if other := cm.Data[KeyEnvironment]; other != "" && other != t.cfg.Environment {
		return fmt.Errorf("environment %s: namespace %s holds environment %s (its ConfigMap %s says so); give each environment its own namespace in the server configuration. Nothing was changed", t.cfg.Environment, t.namespace, other, ConfigMapName)
	}
	return nil
}

// applyEnvironment applies the ConfigMap the controller reads and the
// Secret with exactly the secrets the release references: a key the
// release no longer references leaves the Secret, since server-side
// apply removes what ferry set before and sets no more.
func (t *Target) applyEnvironment(ctx context.Context, secrets map[string][]byte) error {
	data := map[string]string{KeyEnvironment: t.cfg.Environment}
	set := func(k, v string) {
		if v != "" {
			data[k] = v
		}
	}
	set(KeyNATSURL, t.cfg.NATSURL)
	set(KeyKafkaBrokers, strings.Join(t.cfg.KafkaBrokers, ","))
	set(KeyGateway, t.cfg.Gateway)
	set(KeyIngressClass, t.cfg.IngressClass)
	set(KeyHost, routeHost(t.cfg.GatewayURL))
	set(KeyImage, t.cfg.Image)
	opts := metav1.ApplyOptions{FieldManager: FieldManager, Force: true}
	cm := corev1ac.ConfigMap(ConfigMapName, t.namespace).WithLabels(t.ownLabels()).WithData(data)
	if _, err := t.core.CoreV1().ConfigMaps(t.namespace).Apply(ctx, cm, opts); err != nil {
		return t.apiError("applying ConfigMap "+ConfigMapName, err)
	}
	sec := corev1ac.Secret(SecretName, t.namespace).WithLabels(t.ownLabels()).WithType(corev1.SecretTypeOpaque).WithData(secrets)
	if _, err := t.core.CoreV1().Secrets(t.namespace).Apply(ctx, sec, opts); err != nil {
		return t.apiError("applying Secret "+SecretName, err)
	}
	return nil
}

// applyRelease applies every object of set and returns the Functions as
// the API server holds them after the apply (their generation is what
// the wait looks for).
func (t *Target) applyRelease(ctx context.Context, set *manifests.Set, release string) ([]*unstructured.Unstructured, error) {
	var fns []*unstructured.Unstructured
	for _, obj := range set.Objects() {
		var k kind
		var spec any
		switch o := obj.(type) {
		case *v1alpha1.Function:
			k, spec = kindFunction, o.Spec
		case *v1alpha1.HTTPTrigger:
			k, spec = kindHTTPTrigger, o.Spec
		case *v1alpha1.CronTrigger:
			k, spec = kindCronTrigger, o.Spec
		case *v1alpha1.NATSTrigger:
			k, spec = kindNATSTrigger, o.Spec
		case *v1alpha1.KafkaTrigger:
			k, spec = kindKafkaTrigger, o.Spec
		default:
			continue // the Pipeline is ferry's, not the cluster's
		}
		meta := metav1.ObjectMeta{Name: obj.GetName(), Labels: obj.GetLabels(), Annotations: obj.GetAnnotations()}
		u, err := t.applyConfig(k, meta, spec, release)
		if err != nil {
			return nil, err
		}
		got, err := t.apply(ctx, k, u)
		if err != nil {
			return nil, err
		}
		if k == kindFunction {
			fns = append(fns, got)
		}
	}
	return fns, nil
}

// prune deletes what ferry applied for this environment from another
// release: the objects this release no longer has (its own were all
// just labelled with it). Triggers go before functions. It returns how
// many it deleted.
func (t *Target) prune(ctx context.Context, release string) (int, error) {
	sel := t.selector() + "," + LabelRelease + "!=" + ReleaseLabel(release)
	total := 0
	for _, k := range slices.Backward(kinds) {
		n, err := t.deleteAll(ctx, k, sel)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// deleteOwn deletes the environment's Secret and ConfigMap.
func (t *Target) deleteOwn(ctx context.Context) error {
	var errs []error
	if err := t.core.CoreV1().Secrets(t.namespace).Delete(ctx, SecretName, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		errs = append(errs, t.apiError("deleting Secret "+SecretName, err))
	}
	if err := t.core.CoreV1().ConfigMaps(t.namespace).Delete(ctx, ConfigMapName, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		errs = append(errs, t.apiError("deleting ConfigMap "+ConfigMapName, err))
	}
	return errors.Join(errs...)
}

// routeHost is the host name of gatewayURL that routes can match: none
// for an IP address (neither an HTTPRoute's hostnames nor an Ingress's
// host may be one) or an unset URL.
func routeHost(gatewayURL string) string {
	u, err := url.Parse(gatewayURL)
	if err != nil {
		return ""
	}
	h := strings.ToLower(u.Hostname())
	if h == "" || net.ParseIP(h) != nil {
		return ""
	}
	return h
}

// withEnv returns set with each function's env as Config.Env makes it
// (the operator's overrides for this environment); the release itself is
// shared with other environments and stays as it is.
func (t *Target) withEnv(set *manifests.Set) *manifests.Set {
	if t.cfg.Env == nil {
		return set
	}
	c := *set
	c.Functions = make([]*v1alpha1.Function, len(set.Functions))
	for i, f := range set.Functions {
		g := f.DeepCopy()
		g.Spec.Env = t.cfg.Env(f)
		c.Functions[i] = g
	}
	return &c
}
