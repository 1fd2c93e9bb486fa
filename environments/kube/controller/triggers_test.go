package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"reflect"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/ferrycd/ferry/environments/dispatch"
	"github.com/ferrycd/ferry/environments/kube"
	"github.com/ferrycd/ferry/internal/kubetest"
	"github.com/ferrycd/ferry/manifests/v1alpha1"
)

func envConfigMap(ns string, data map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: kube.ConfigMapName,
			Labels: map[string]string{kube.LabelManagedBy: kube.ManagedBy}},
		Data: data,
	}
}

func httpTrigger(ns, name, fn, path string, methods ...string) *v1alpha1.HTTPTrigger {
	return &v1alpha1.HTTPTrigger{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{kube.LabelEnvironment: "dev"}},
		Spec: v1alpha1.HTTPTriggerSpec{
			FunctionTarget: v1alpha1.FunctionTarget{Function: fn},
			Path:           path, Methods: methods,
		},
	}
}

func TestHTTPRoute(t *testing.T) {
	ns := namespace(t, direct)
	create(t, envConfigMap(ns, map[string]string{kube.KeyEnvironment: "dev", kube.KeyGateway: "infra/public"}))
	tr := httpTrigger(ns, "hello-route", "hello", "/hello", "GET", "POST")
	create(t, tr)

	// The function is not there yet: not Ready, and no route.
	c := waitCondition(t, tr, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonFunctionNotFound)
	if !strings.Contains(c.Message, "Function hello") {
		t.Errorf("Ready says %q", c.Message)
	}
	var route gatewayv1.HTTPRoute
	if err := get(ns, "hello-route", &route); !apierrors.IsNotFound(err) {
		t.Errorf("an HTTPRoute before its function (err %v)", err)
	}

	// The function comes: the trigger wakes and routes.
	create(t, function(ns, "hello"))
	waitCondition(t, tr, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded)
	if !reflect.DeepEqual(tr.Status.Functions, []string{"hello"}) || tr.Status.ObservedGeneration != tr.Generation {
		t.Errorf("status %+v", tr.Status)
	}
	if err := get(ns, "hello-route", &route); err != nil {
		t.Fatal(err)
	}
	isOwnedBy(t, &route, v1alpha1.KindHTTPTrigger, tr)
	if route.Labels[kube.LabelManagedBy] != kube.ManagedBy || route.Labels[kube.LabelEnvironment] != "dev" {
		t.Errorf("labels %v", route.Labels)
	}
	infra := gatewayv1.Namespace("infra")
	if want := []gatewayv1.ParentReference{{Name: "public", Namespace: &infra}}; !sameParents(route.Spec.ParentRefs, want) {
		t.Errorf("parentRefs %+v, want infra/public", route.Spec.ParentRefs)
	}
	if len(route.Spec.Rules) != 1 {
		t.Fatalf("%d rules, want 1", len(route.Spec.Rules))
	}
	rule := route.Spec.Rules[0]
	var got []string
	for _, m := range rule.Matches {
		got = append(got, string(*m.Path.Type)+" "+*m.Path.Value+" "+string(ptrOr(m.Method)))
	}
	want := []string{"Exact /hello GET", "Exact /hello POST", "Exact /hello/ GET", "Exact /hello/ POST"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("matches %q, want %q (exact, with or without a trailing slash, as the embedded gateway)", got, want)
	}
	if len(rule.BackendRefs) != 1 {
		t.Fatalf("backendRefs %+v", rule.BackendRefs)
	}
	br := rule.BackendRefs[0].BackendObjectReference
	if br.Name != "hello" || br.Port == nil || *br.Port != 80 || br.Kind == nil || *br.Kind != "Service" || br.Namespace != nil {
		t.Errorf("backendRef %+v, want Service hello port 80", br)
	}

	// A route deleted by hand comes back.
	uid := route.UID
	if err := direct.Delete(context.Background(), &route); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a new HTTPRoute", func() (bool, string) {
		err := get(ns, "hello-route", &route)
		return err == nil && route.UID != uid, errText(err)
	})
}

func ptrOr(m *gatewayv1.HTTPMethod) gatewayv1.HTTPMethod {
	if m == nil {
		return "*"
	}
	return *m
}

// sameParents compares what the controller sets of parent references;
// the API server defaults group and kind.
func sameParents(got, want []gatewayv1.ParentReference) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i].Name != want[i].Name || !reflect.DeepEqual(got[i].Namespace, want[i].Namespace) {
			return false
		}
	}
	return true
}

func TestIngressWhenAClassIsSet(t *testing.T) {
	ns := namespace(t, direct)
	create(t, envConfigMap(ns, map[string]string{kube.KeyIngressClass: "nginx"}), function(ns, "hi"))
	tr := httpTrigger(ns, "hi", "hi", "/hi")
	create(t, tr)
	waitCondition(t, tr, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded)
	var ing networkingv1.Ingress
	if err := get(ns, "hi", &ing); err != nil {
		t.Fatal(err)
	}
	isOwnedBy(t, &ing, v1alpha1.KindHTTPTrigger, tr)
	if ing.Spec.IngressClassName == nil || *ing.Spec.IngressClassName != "nginx" {
		t.Errorf("ingressClassName %v", ing.Spec.IngressClassName)
	}
	if len(ing.Spec.Rules) != 1 || ing.Spec.Rules[0].HTTP == nil {
		t.Fatalf("rules %+v", ing.Spec.Rules)
	}
	var got []string
	for _, p := range ing.Spec.Rules[0].HTTP.Paths {
		b := p.Backend.Service
		got = append(got, string(*p.PathType)+" "+p.Path+" → "+b.Name+":"+itoa(b.Port.Number))
	}
	if want := []string{"Exact /hi → hi:80", "Exact /hi/ → hi:80"}; !reflect.DeepEqual(got, want) {
		t.Errorf("paths %q, want %q", got, want)
	}
	var route gatewayv1.HTTPRoute
	if err := get(ns, "hi", &route); !apierrors.IsNotFound(err) {
		t.Errorf("an HTTPRoute as well as the Ingress (err %v)", err)
	}

	// The class unset: the Ingress goes, an HTTPRoute comes.
	var cm corev1.ConfigMap
	if err := get(ns, kube.ConfigMapName, &cm); err != nil {
		t.Fatal(err)
	}
	cm.Data = nil
	if err := direct.Update(context.Background(), &cm); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the HTTPRoute instead of the Ingress", func() (bool, string) {
		ierr := get(ns, "hi", &ing)
		rerr := get(ns, "hi", &route)
		return apierrors.IsNotFound(ierr) && rerr == nil, "ingress: " + errText(ierr) + "; route: " + errText(rerr)
	})
}

func itoa(i int32) string { b, _ := json.Marshal(i); return string(b) }

// TestSecondCluster runs a controller on an API server without Gateway
// API, as a user granted ClusterRules and LeaderElectionRules and nothing
// more (impersonated): every kind reconciles, events are recorded, the
// Lease is held; and an HTTPTrigger without an ingress class says what
// to install.
func TestSecondCluster(t *testing.T) {
	other := kubetest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	admin, err := client.New(other.Config, client.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}
	ns := namespace(t, admin)
	const user = "ferry-controller"
	subjects := []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}}
	for _, o := range []client.Object{
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: user}, Rules: ClusterRules()},
		&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: user}, Subjects: subjects,
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: user}},
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: user}, Rules: LeaderElectionRules()},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: user}, Subjects: subjects,
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: user}},
	} {
		if err := admin.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	cfg := rest.CopyConfig(other.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	if _, err := startManager(ctx, cfg, Options{Image: testImage, LeaderElect: true, LeaderElectionNamespace: ns}); err != nil {
		t.Fatal(err)
	}
	read := func(name string, o client.Object) error {
		return admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, o)
	}
	waitCond := func(name string, o conditioned, typ, prefix string) {
		t.Helper()
		waitFor(t, typ+" of "+name+" "+prefix, func() (bool, string) {
			if err := read(name, o); err != nil {
				return false, err.Error()
			}
			got := condition(o.GetConditions(), typ)
			return strings.HasPrefix(got, prefix), got
		})
	}

	for _, o := range []client.Object{
		envConfigMap(ns, map[string]string{kube.KeyNATSURL: "nats://nats:4222"}),
		function(ns, "hello"),
		httpTrigger(ns, "hello", "hello", "/hello"),
		&v1alpha1.CronTrigger{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "tick"},
			Spec: v1alpha1.CronTriggerSpec{FunctionTarget: v1alpha1.FunctionTarget{Function: "hello"}, Schedule: "@hourly"}},
		&v1alpha1.NATSTrigger{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "msgs"},
			Spec: v1alpha1.TopicTriggerSpec{FunctionTarget: v1alpha1.FunctionTarget{Function: "hello"}, Topic: "msgs"}},
	} {
		if err := admin.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	waitCond("hello", &v1alpha1.Function{}, v1alpha1.ConditionReconciling, "Reconciling=True/Progressing")
	waitCond("tick", &v1alpha1.CronTrigger{}, v1alpha1.ConditionReady, "Ready=True/Succeeded")
	waitCond("msgs", &v1alpha1.NATSTrigger{}, v1alpha1.ConditionReady, "Ready=True/Succeeded")
	var tr v1alpha1.HTTPTrigger
	waitCond("hello", &tr, v1alpha1.ConditionStalled, "Stalled=True/InvalidSpec")
	if msg := condition(tr.Status.Conditions, v1alpha1.ConditionStalled); !strings.Contains(msg, "install Gateway API") || !strings.Contains(msg, kube.KeyIngressClass) {
		t.Errorf("Stalled says %q", msg)
	}
	for _, o := range []client.Object{&appsv1.Deployment{}, &corev1.Service{}} {
		if err := read("hello", o); err != nil {
			t.Errorf("%T: %v", o, err)
		}
	}

	// An ingress class set: the trigger routes through an Ingress.
	var cm corev1.ConfigMap
	if err := read(kube.ConfigMapName, &cm); err != nil {
		t.Fatal(err)
	}
	cm.Data[kube.KeyIngressClass] = "nginx"
	if err := admin.Update(ctx, &cm); err != nil {
		t.Fatal(err)
	}
	waitCond("hello", &tr, v1alpha1.ConditionReady, "Ready=True/Succeeded")
	if err := read("hello", &networkingv1.Ingress{}); err != nil {
		t.Errorf("Ingress: %v", err)
	}

	waitFor(t, "events and the Lease", func() (bool, string) {
		var evs eventsv1.EventList
		if err := admin.List(ctx, &evs, client.InNamespace(ns)); err != nil {
			return false, err.Error()
		}
		var lease coordinationv1.Lease
		lerr := read(leaderElectionID, &lease)
		return len(evs.Items) > 0 && lerr == nil, fmt.Sprintf("%d events; lease: %v", len(evs.Items), lerr)
	})
}

func TestCronJob(t *testing.T) {
	ns := namespace(t, direct)
	ferryImage := "ferry.test/ferry@sha256:" + strings.Repeat("2", 64)
	create(t, envConfigMap(ns, map[string]string{kube.KeyEnvironment: "staging", kube.KeyImage: ferryImage}))
	a, b, other := function(ns, "a"), function(ns, "b"), function(ns, "c")
	a.Labels["job"], b.Labels["job"] = "nightly", "nightly"
	b.Spec.Timeout = nil
	create(t, a, b, other)
	tr := &v1alpha1.CronTrigger{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "nightly"},
		Spec: v1alpha1.CronTriggerSpec{
			FunctionTarget: v1alpha1.FunctionTarget{FunctionSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"job": "nightly"}}},
			Schedule:       "0 3 * * *", TimeZone: "Europe/Paris",
			Data: &runtime.RawExtension{Raw: []byte(`{"full":true}`)},
		},
	}
	create(t, tr)
	waitCondition(t, tr, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded)
	if !reflect.DeepEqual(tr.Status.Functions, []string{"a", "b"}) {
		t.Errorf("functions %v, want a b", tr.Status.Functions)
	}
	var cj batchv1.CronJob
	if err := get(ns, "nightly", &cj); err != nil {
		t.Fatal(err)
	}
	isOwnedBy(t, &cj, v1alpha1.KindCronTrigger, tr)
	s := cj.Spec
	if s.Schedule != "0 3 * * *" || s.TimeZone == nil || *s.TimeZone != "Europe/Paris" || s.ConcurrencyPolicy != batchv1.ForbidConcurrent {
		t.Errorf("schedule %q zone %v policy %s", s.Schedule, s.TimeZone, s.ConcurrencyPolicy)
	}
	js := s.JobTemplate.Spec
	if js.BackoffLimit == nil || *js.BackoffLimit != 0 {
		t.Errorf("backoffLimit %v, want 0: one tick, one try", js.BackoffLimit)
	}
	ps := js.Template.Spec
	if ps.RestartPolicy != corev1.RestartPolicyNever || ps.SecurityContext == nil || ps.SecurityContext.RunAsNonRoot == nil || !*ps.SecurityContext.RunAsNonRoot {
		t.Errorf("pod restartPolicy %s securityContext %+v", ps.RestartPolicy, ps.SecurityContext)
	}
	if len(ps.Containers) != 2 {
		t.Fatalf("%d containers, want one per function (2)", len(ps.Containers))
	}
	source := "/ferry/staging/cron/nightly"
	for i, want := range []struct{ name, timeout string }{{"a", "15s"}, {"b", "35s"}} {
		c := ps.Containers[i]
		args := []string{"fire", "--url", "http://" + want.name + "." + ns + ".svc:80/", "--type", "dev.ferry.cron.tick",
			"--source", source, "--timeout", want.timeout, "--data", `{"full":true}`}
		if c.Name != want.name || c.Image != ferryImage || !reflect.DeepEqual(c.Args, args) || len(c.Command) != 0 {
			t.Errorf("container %d: %s %s command %q args %q, want %s %s args %q", i, c.Name, c.Image, c.Command, c.Args, want.name, ferryImage, args)
		}
		sc := c.SecurityContext
		if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("container %d securityContext %+v", i, sc)
		}
	}
}

func TestDispatcher(t *testing.T) {
	ns := namespace(t, direct)
	create(t, envConfigMap(ns, map[string]string{kube.KeyEnvironment: "prod", kube.KeyNATSURL: "nats://nats.infra:4222", kube.KeyKafkaBrokers: "k1:9092, k2:9092"}))
	create(t, function(ns, "orders"))
	nt := &v1alpha1.NATSTrigger{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "orders"},
		Spec:       v1alpha1.TopicTriggerSpec{FunctionTarget: v1alpha1.FunctionTarget{Function: "orders"}, Topic: "orders.created"},
	}
	kt := &v1alpha1.KafkaTrigger{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "orders"},
		Spec: v1alpha1.KafkaTriggerSpec{TopicTriggerSpec: v1alpha1.TopicTriggerSpec{
			FunctionTarget: v1alpha1.FunctionTarget{Function: "orders"}, Topic: "orders"}, InitialOffset: v1alpha1.OffsetEarliest},
	}
	create(t, nt, kt)
	waitCondition(t, nt, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded)
	waitCondition(t, kt, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded)

	nplan, ndep := dispatcherOf(t, ns, "nats-orders", nt, v1alpha1.KindNATSTrigger)
	if nplan.Environment != "prod" || nplan.NATSURL != "nats://nats.infra:4222" || len(nplan.NATSTriggers) != 1 || len(nplan.KafkaTriggers) != 0 {
		t.Errorf("NATS plan %+v", nplan)
	} else if got := nplan.NATSTriggers[0]; got.Name != "orders" || got.Spec.Topic != "orders.created" || got.Kind != v1alpha1.KindNATSTrigger {
		t.Errorf("NATS plan's trigger %+v", got)
	}
	if want := map[string]string{"orders": "http://orders." + ns + ".svc:80"}; !reflect.DeepEqual(nplan.Functions, want) {
		t.Errorf("plan functions %v, want %v", nplan.Functions, want)
	}
	if nplan.FunctionLabels["orders"]["team"] != "web" {
		t.Errorf("plan function labels %v", nplan.FunctionLabels)
	}
	kplan, _ := dispatcherOf(t, ns, "kafka-orders", kt, v1alpha1.KindKafkaTrigger)
	if !reflect.DeepEqual(kplan.KafkaBrokers, []string{"k1:9092", "k2:9092"}) || len(kplan.KafkaTriggers) != 1 ||
		kplan.KafkaTriggers[0].Spec.InitialOffset != v1alpha1.OffsetEarliest {
		t.Errorf("Kafka plan %+v", kplan)
	}

	// A new topic is a new plan, and a new hash rolls the pods.
	hash := ndep.Spec.Template.Annotations["ferry.dev/plan-hash"]
	if err := get(ns, "orders", nt); err != nil {
		t.Fatal(err)
	}
	nt.Spec.Topic = "orders.paid"
	if err := direct.Update(context.Background(), nt); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a new plan hash", func() (bool, string) {
		var dep appsv1.Deployment
		if err := get(ns, "nats-orders", &dep); err != nil {
			return false, err.Error()
		}
		h := dep.Spec.Template.Annotations["ferry.dev/plan-hash"]
		return h != hash && h != "", h
	})
	nplan, _ = dispatcherOf(t, ns, "nats-orders", nt, v1alpha1.KindNATSTrigger)
	if nplan.NATSTriggers[0].Spec.Topic != "orders.paid" {
		t.Errorf("plan topic %s after the change", nplan.NATSTriggers[0].Spec.Topic)
	}
}

// dispatcherOf checks a dispatcher's ConfigMap and Deployment and returns
// its plan.
func dispatcherOf(t *testing.T, ns, name string, owner client.Object, kind string) (dispatch.Plan, appsv1.Deployment) {
	t.Helper()
	var cm corev1.ConfigMap
	var dep appsv1.Deployment
	if err := get(ns, name, &cm); err != nil {
		t.Fatal(err)
	}
	if err := get(ns, name, &dep); err != nil {
		t.Fatal(err)
	}
	isOwnedBy(t, &cm, kind, owner)
	isOwnedBy(t, &dep, kind, owner)
	var plan dispatch.Plan
	if err := json.Unmarshal([]byte(cm.Data["plan.json"]), &plan); err != nil {
		t.Fatalf("plan.json: %v", err)
	}
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 1 {
		t.Errorf("replicas %v", dep.Spec.Replicas)
	}
	ps := dep.Spec.Template.Spec
	if len(ps.Containers) != 1 {
		t.Fatalf("containers %+v", ps.Containers)
	}
	c := ps.Containers[0]
	if c.Image != testImage || !reflect.DeepEqual(c.Args, []string{"dispatch", "--plan", "/etc/ferry/plan.json"}) {
		t.Errorf("container image %s args %q", c.Image, c.Args)
	}
	var mounted bool
	for _, m := range c.VolumeMounts {
		mounted = mounted || (m.MountPath == "/etc/ferry" && m.ReadOnly)
	}
	var fromCM bool
	for _, v := range ps.Volumes {
		fromCM = fromCM || (v.ConfigMap != nil && v.ConfigMap.Name == name)
	}
	if !mounted || !fromCM {
		t.Errorf("the plan is not mounted read-only at /etc/ferry from ConfigMap %s: mounts %+v volumes %+v", name, c.VolumeMounts, ps.Volumes)
	}
	if h := dep.Spec.Template.Annotations["ferry.dev/plan-hash"]; len(h) != 16 {
		t.Errorf("plan hash %q", h)
	}
	if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("securityContext %+v", sc)
	}
	return plan, dep
}

// TestRun starts the controller as `ferry controller` does: its probes
// answer, and it holds the leader Lease.
func TestRun(t *testing.T) {
	ns := namespace(t, direct)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, cluster.Config, Options{
			HealthProbeBindAddress: addr, LeaderElect: true, LeaderElectionNamespace: ns,
			Namespace: ns, Image: testImage, skipNameValidation: true,
		})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	for _, p := range []string{"/healthz", "/readyz"} {
		waitFor(t, p+" 200", func() (bool, string) {
			resp, err := http.Get("http://" + addr + p)
			if err != nil {
				return false, err.Error()
			}
			resp.Body.Close()
			return resp.StatusCode == 200, resp.Status
		})
	}
	waitFor(t, "the leader Lease", func() (bool, string) {
		var lease coordinationv1.Lease
		err := get(ns, leaderElectionID, &lease)
		return err == nil && lease.Spec.HolderIdentity != nil && *lease.Spec.HolderIdentity != "", errText(err)
	})
}

// TestTriggerOfAnotherEnvironment: a trigger whose environments leave
// this one out makes nothing here, and says where it runs.
func TestTriggerOfAnotherEnvironment(t *testing.T) {
	ns := namespace(t, direct)
	create(t, envConfigMap(ns, map[string]string{kube.KeyEnvironment: "dev"}), function(ns, "nightly"))
	tr := httpTrigger(ns, "prod-only", "nightly", "/nightly")
	tr.Spec.Environments = []string{"prod"}
	create(t, tr)
	c := waitCondition(t, tr, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded)
	if c.Message != "runs in prod only, not in dev" {
		t.Errorf("Ready says %q", c.Message)
	}
	var route gatewayv1.HTTPRoute
	if err := get(ns, "prod-only", &route); !apierrors.IsNotFound(err) {
		t.Errorf("an HTTPRoute for a prod-only trigger in dev (err %v)", err)
	}
}
