package controller

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/ferrycd/ferry/environments/kube"
	"github.com/ferrycd/ferry/manifests/v1alpha1"
)

// Hostile names: what a repository names its objects decides the names
// of what the controller makes, so a name may be one that is already
// taken, by someone else or by another of ferry's objects.

// TestForeignServiceNotTakenOver: a Function named as a Service the
// cluster's operator made in the namespace (no ferry label, so not in
// the controller's cache) does not point that Service's traffic at the
// function's pods.
func TestForeignServiceNotTakenOver(t *testing.T) {
	ns := namespace(t, direct)
	theirs := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "billing"},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "billing"},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(9000), Protocol: corev1.ProtocolTCP}},
		},
	}
	create(t, theirs)
	fn := function(ns, "billing")
	create(t, fn)
	c := waitCondition(t, fn, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonFailed)
	if !strings.Contains(c.Message, "Service "+ns+"/billing was not made by ferry's controller") || !strings.Contains(c.Message, "rename Function billing") {
		t.Errorf("Ready's message %q: want it to say the Service is not ferry's and to rename the Function", c.Message)
	}
	var svc corev1.Service
	if err := get(ns, "billing", &svc); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(svc.Spec.Selector, theirs.Spec.Selector) || svc.Spec.Ports[0].TargetPort != intstr.FromInt32(9000) {
		t.Errorf("the operator's Service now selects %v on %v", svc.Spec.Selector, svc.Spec.Ports)
	}
	if len(svc.OwnerReferences) != 0 || svc.Labels[kube.LabelManagedBy] != "" {
		t.Errorf("the operator's Service now has owners %v and labels %v", svc.OwnerReferences, svc.Labels)
	}

	// Nor by labelling its pods as the operator's: a Function's labels
	// and annotations stay on the Function.
	impostor := function(ns, "impostor")
	impostor.Labels["app"] = "billing"
	impostor.Annotations = map[string]string{"sidecar.istio.io/inject": "false", "container.apparmor.security.beta.kubernetes.io/function": "unconfined"}
	create(t, impostor)
	var dep appsv1.Deployment
	waitFor(t, "the impostor's Deployment", func() (bool, string) { err := get(ns, "impostor", &dep); return err == nil, errText(err) })
	tpl := dep.Spec.Template
	if want := map[string]string{kube.LabelManagedBy: kube.ManagedBy, kube.LabelFunction: "impostor"}; !reflect.DeepEqual(tpl.Labels, want) || len(tpl.Annotations) != 0 {
		t.Errorf("the impostor's pods are labelled %v, annotated %v", tpl.Labels, tpl.Annotations)
	}
}

// TestForeignIngressNotTakenOver: an HTTPTrigger named as the operator's
// Ingress would route the operator's host to the repository's function.
func TestForeignIngressNotTakenOver(t *testing.T) {
	ns := namespace(t, direct)
	create(t, envConfigMap(ns, map[string]string{kube.KeyIngressClass: "nginx"}), function(ns, "hi"))
	prefix := networkingv1.PathTypePrefix
	theirs := &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "www"},
		Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{{
			Host: "www.example.com",
			IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
				Path: "/", PathType: &prefix,
				Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "site", Port: networkingv1.ServiceBackendPort{Number: 80}}},
			}}}},
		}}},
	}
	create(t, theirs)
	tr := httpTrigger(ns, "www", "hi", "/hi")
	create(t, tr)
	c := waitCondition(t, tr, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonFailed)
	if !strings.Contains(c.Message, "Ingress "+ns+"/www was not made by ferry") {
		t.Errorf("Ready's message %q", c.Message)
	}
	var ing networkingv1.Ingress
	if err := get(ns, "www", &ing); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ing.Spec, theirs.Spec) || len(ing.OwnerReferences) != 0 {
		t.Errorf("the operator's Ingress is now %+v, owners %v", ing.Spec, ing.OwnerReferences)
	}
}

// TestChildNameCollision: Function nats-orders and NATSTrigger orders
// both name a Deployment nats-orders. The first to make it keeps it; the
// other says so; and the trigger, moved out of the environment, does not
// delete the function's Deployment as its dispatcher.
func TestChildNameCollision(t *testing.T) {
	ns := namespace(t, direct)
	create(t, envConfigMap(ns, map[string]string{kube.KeyEnvironment: "prod", kube.KeyNATSURL: "nats://nats.infra:4222"}))
	fn := function(ns, "nats-orders")
	create(t, fn, function(ns, "orders"))
	var dep appsv1.Deployment
	waitFor(t, "the function's Deployment", func() (bool, string) { err := get(ns, "nats-orders", &dep); return err == nil, errText(err) })
	if err := get(ns, "nats-orders", fn); err != nil {
		t.Fatal(err)
	}
	isOwnedBy(t, &dep, v1alpha1.KindFunction, fn)

	nt := &v1alpha1.NATSTrigger{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "orders"},
		Spec:       v1alpha1.TopicTriggerSpec{FunctionTarget: v1alpha1.FunctionTarget{Function: "orders"}, Topic: "orders.created"},
	}
	create(t, nt)
	c := waitCondition(t, nt, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonFailed)
	// The ConfigMap comes first, and nothing else is named nats-orders.
	if !strings.Contains(c.Message, "Deployment "+ns+"/nats-orders belongs to Function nats-orders") || !strings.Contains(c.Message, "rename NATSTrigger orders") {
		t.Errorf("the trigger's Ready message %q", c.Message)
	}
	if err := get(ns, "nats-orders", &dep); err != nil {
		t.Fatal(err)
	}
	isOwnedBy(t, &dep, v1alpha1.KindFunction, fn)
	if img := dep.Spec.Template.Spec.Containers[0].Image; img != fn.Spec.Image {
		t.Errorf("the function's Deployment runs %s, want %s", img, fn.Spec.Image)
	}

	// Out of the environment, the trigger deletes what is its own (the
	// plan's ConfigMap) and nothing else.
	updateSpec(t, nt, func() { nt.Spec.Environments = []string{"staging"} })
	waitCondition(t, nt, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded)
	var cm corev1.ConfigMap
	waitFor(t, "the trigger's ConfigMap to go", func() (bool, string) {
		err := get(ns, "nats-orders", &cm)
		return err != nil, errText(err)
	})
	if err := get(ns, "nats-orders", &dep); err != nil {
		t.Fatalf("the function's Deployment: %v (deleted as the trigger's?)", err)
	}
	if !dep.DeletionTimestamp.IsZero() {
		t.Error("the function's Deployment is being deleted")
	}
}

// TestEveryPodHardened: function, dispatcher and CronJob pods alike get
// no API token and a bounded /tmp; a function's is its memory.
func TestEveryPodHardened(t *testing.T) {
	ns := namespace(t, direct)
	create(t, envConfigMap(ns, map[string]string{kube.KeyEnvironment: "pr-7-web", kube.KeyNATSURL: "nats://nats.infra:4222"}))
	fn := function(ns, "greet")
	create(t, fn)
	nt := &v1alpha1.NATSTrigger{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "greet"},
		Spec:       v1alpha1.TopicTriggerSpec{FunctionTarget: v1alpha1.FunctionTarget{Function: "greet"}, Topic: "greet"},
	}
	ct := &v1alpha1.CronTrigger{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "tick"},
		Spec:       v1alpha1.CronTriggerSpec{FunctionTarget: v1alpha1.FunctionTarget{Function: "greet"}, Schedule: "*/5 * * * *"},
	}
	create(t, nt, ct)
	waitCondition(t, nt, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded)
	waitCondition(t, ct, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded)

	var fdep, ddep appsv1.Deployment
	var cj batchv1.CronJob
	if err := get(ns, "greet", &fdep); err != nil {
		t.Fatal(err)
	}
	if err := get(ns, "nats-greet", &ddep); err != nil {
		t.Fatal(err)
	}
	if err := get(ns, "tick", &cj); err != nil {
		t.Fatal(err)
	}
	pods := map[string]corev1.PodSpec{
		"function":   fdep.Spec.Template.Spec,
		"dispatcher": ddep.Spec.Template.Spec,
		"CronJob":    cj.Spec.JobTemplate.Spec.Template.Spec,
	}
	want := map[string]string{"function": "256Mi", "dispatcher": "64Mi", "CronJob": "64Mi"}
	for what, ps := range pods {
		if ps.AutomountServiceAccountToken == nil || *ps.AutomountServiceAccountToken {
			t.Errorf("%s pod: automountServiceAccountToken %v, want false", what, ps.AutomountServiceAccountToken)
		}
		if ps.ServiceAccountName != "" && ps.ServiceAccountName != "default" {
			t.Errorf("%s pod runs as service account %s", what, ps.ServiceAccountName)
		}
		var tmp *corev1.EmptyDirVolumeSource
		for _, v := range ps.Volumes {
			if v.Name == "tmp" {
				tmp = v.EmptyDir
			}
		}
		if tmp == nil || tmp.SizeLimit == nil || tmp.SizeLimit.Cmp(resource.MustParse(want[what])) != 0 || tmp.Medium != corev1.StorageMediumMemory {
			t.Errorf("%s pod's /tmp %+v, want a memory emptyDir of at most %s", what, tmp, want[what])
		}
		for _, c := range ps.Containers {
			if c.SecurityContext == nil || c.SecurityContext.AllowPrivilegeEscalation == nil || *c.SecurityContext.AllowPrivilegeEscalation {
				t.Errorf("%s container %s may escalate privileges", what, c.Name)
			}
		}
	}
}

// TestGreedyFunctionRefused: a Function applied by hand (a release is
// validated before it gets here) that asks for more than a release may
// gets no Deployment: the controller bounds what the embedded target's
// validation bounds.
func TestGreedyFunctionRefused(t *testing.T) {
	ns := namespace(t, direct)
	huge := resource.MustParse("1Ti")
	fn := function(ns, "greedy")
	fn.Spec.Memory = &huge
	fn.Spec.Scale.Max = int32p(100000)
	fn.Spec.Timeout = &metav1.Duration{Duration: 1000 * time.Hour}
	create(t, fn)
	c := waitCondition(t, fn, v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonInvalidSpec)
	for _, want := range []string{"spec.scale.max 100000 is more than 1000", "spec.memory 1Ti is out of range (above 0, at most 64Gi)", "spec.timeout 1000h0m0s is out of range (above 0, at most 15m0s)"} {
		if !strings.Contains(c.Message, want) {
			t.Errorf("Stalled says %q; want %q in it", c.Message, want)
		}
	}
	noDeployment(t, ns, "greedy")
	var hpa autoscalingv2.HorizontalPodAutoscaler
	if err := get(ns, "greedy", &hpa); err == nil {
		t.Errorf("an HPA of up to %d replicas", hpa.Spec.MaxReplicas)
	}

	// No memory limit at all is as greedy.
	zero := resource.MustParse("0")
	fn = function(ns, "unbounded")
	fn.Spec.Memory = &zero
	create(t, fn)
	c = waitCondition(t, fn, v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonInvalidSpec)
	if !strings.Contains(c.Message, "spec.memory 0 is out of range (above 0, at most 64Gi)") {
		t.Errorf("Stalled says %q", c.Message)
	}
	noDeployment(t, ns, "unbounded")
}

// TestRoutesMatchTheirHostOnly: a preview's trigger for /login, on a
// Gateway or ingress class prod shares, must not answer prod's
// https://shop.example.com/login: with the environment's host in its
// ConfigMap, its HTTPRoute and Ingress match that host alone.
func TestRoutesMatchTheirHostOnly(t *testing.T) {
	ns := namespace(t, direct)
	create(t, envConfigMap(ns, map[string]string{kube.KeyEnvironment: "pr-7-shop", kube.KeyGateway: "infra/public", kube.KeyHost: "pr-7.shop.example.com"}), function(ns, "login"))
	tr := httpTrigger(ns, "login", "login", "/login")
	create(t, tr)
	waitCondition(t, tr, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded)
	var route gatewayv1.HTTPRoute
	if err := get(ns, "login", &route); err != nil {
		t.Fatal(err)
	}
	if want := []gatewayv1.Hostname{"pr-7.shop.example.com"}; !reflect.DeepEqual(route.Spec.Hostnames, want) {
		t.Errorf("HTTPRoute hostnames %v, want %v", route.Spec.Hostnames, want)
	}

	ns2 := namespace(t, direct)
	create(t, envConfigMap(ns2, map[string]string{kube.KeyEnvironment: "pr-8-shop", kube.KeyIngressClass: "nginx", kube.KeyHost: "pr-8.shop.example.com"}), function(ns2, "login"))
	tr2 := httpTrigger(ns2, "login", "login", "/login")
	create(t, tr2)
	waitCondition(t, tr2, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded)
	var ing networkingv1.Ingress
	if err := get(ns2, "login", &ing); err != nil {
		t.Fatal(err)
	}
	if len(ing.Spec.Rules) != 1 || ing.Spec.Rules[0].Host != "pr-8.shop.example.com" {
		t.Errorf("Ingress rules %+v, want one for host pr-8.shop.example.com", ing.Spec.Rules)
	}
}

// TestLongNames: names at the manifest's limit (63) make children whose
// names, with the controller's prefixes, still fit theirs: a CronJob's
// 52, a dispatcher's 63, two long names apart.
func TestLongNames(t *testing.T) {
	ns := namespace(t, direct)
	create(t, envConfigMap(ns, map[string]string{kube.KeyEnvironment: "dev", kube.KeyNATSURL: "nats://nats.infra:4222"}))
	long := strings.Repeat("a", 62)
	fn := function(ns, long+"1")
	create(t, fn)
	mk := func(suffix string) (*v1alpha1.NATSTrigger, *v1alpha1.CronTrigger) {
		return &v1alpha1.NATSTrigger{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: long + suffix},
				Spec:       v1alpha1.TopicTriggerSpec{FunctionTarget: v1alpha1.FunctionTarget{Function: fn.Name}, Topic: "t" + suffix},
			}, &v1alpha1.CronTrigger{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: long + suffix},
				Spec:       v1alpha1.CronTriggerSpec{FunctionTarget: v1alpha1.FunctionTarget{Function: fn.Name}, Schedule: "@hourly"},
			}
	}
	n1, c1 := mk("1")
	n2, c2 := mk("2")
	create(t, n1, c1, n2, c2)
	var dep appsv1.Deployment
	waitFor(t, "the function's Deployment", func() (bool, string) { err := get(ns, fn.Name, &dep); return err == nil, errText(err) })
	seen := map[string]bool{}
	for _, tr := range []conditioned{n1, c1, n2, c2} {
		c := waitCondition(t, tr, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded)
		seen[c.Message] = true
	}
	var deps appsv1.DeploymentList
	var cjs batchv1.CronJobList
	if err := direct.List(context.Background(), &deps, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if err := direct.List(context.Background(), &cjs, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if len(deps.Items) != 3 || len(cjs.Items) != 2 || len(seen) != 4 {
		t.Fatalf("%d Deployments, %d CronJobs, %d distinct trigger messages: want 3 (the function, two dispatchers), 2 and 4", len(deps.Items), len(cjs.Items), len(seen))
	}
	for _, d := range deps.Items {
		if len(d.Name) > 63 {
			t.Errorf("Deployment %s: %d characters", d.Name, len(d.Name))
		}
	}
	for _, c := range cjs.Items {
		if len(c.Name) > 52 {
			t.Errorf("CronJob %s: %d characters", c.Name, len(c.Name))
		}
	}
}

// TestIngressPathInjection: a path the manifest allows but an Ingress
// controller may paste into its configuration (ingress-nginx writes
// nginx.conf) makes no Ingress; a path that was fine before and is not
// now takes its Ingress away.
func TestIngressPathInjection(t *testing.T) {
	ns := namespace(t, direct)
	create(t, envConfigMap(ns, map[string]string{kube.KeyIngressClass: "nginx"}), function(ns, "hi"))
	tr := httpTrigger(ns, "hi", "hi", "/hi")
	create(t, tr)
	waitCondition(t, tr, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded)
	var ing networkingv1.Ingress
	if err := get(ns, "hi", &ing); err != nil {
		t.Fatal(err)
	}
	updateSpec(t, tr, func() { tr.Spec.Path = "/hi;return 200 'owned';" })
	c := waitCondition(t, tr, v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonInvalidSpec)
	if !strings.Contains(c.Message, "an Ingress controller may write into its own configuration") {
		t.Errorf("Stalled says %q", c.Message)
	}
	waitFor(t, "the Ingress to go", func() (bool, string) {
		err := get(ns, "hi", &ing)
		return err != nil, "still there: " + errText(err)
	})
}

// updateSpec reads o afresh, changes it with edit and updates it, again
// when the controller's status write came in between.
func updateSpec(t *testing.T, o client.Object, edit func()) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := get(o.GetNamespace(), o.GetName(), o); err != nil {
			return err
		}
		edit()
		return direct.Update(context.Background(), o)
	})
	if err != nil {
		t.Fatal(err)
	}
}
