package controller

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ferrycd/ferry/environments/kube"
	"github.com/ferrycd/ferry/manifests/v1alpha1"
)

const digest = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func int32p(v int32) *int32 { return &v }

func function(ns, name string) *v1alpha1.Function {
	mem := resource.MustParse("256Mi")
	return &v1alpha1.Function{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns, Name: name,
			Labels:      map[string]string{kube.LabelEnvironment: "dev", kube.LabelRelease: strings.Repeat("ab", 20), "team": "web"},
			Annotations: map[string]string{kube.AnnotationRelease: "sha256:" + strings.Repeat("ab", 32)},
		},
		Spec: v1alpha1.FunctionSpec{
			Runtime: v1alpha1.RuntimeGo,
			Image:   "ferry.test/fns/" + name + "@sha256:" + digest,
			Env: map[string]v1alpha1.EnvValue{
				"GREETING":    v1alpha1.Plain("hello"),
				"DB_PASSWORD": v1alpha1.SecretRef("db-password"),
			},
			Timeout: &metav1.Duration{Duration: 10 * time.Second},
			Memory:  &mem,
			Scale:   &v1alpha1.Scale{Min: int32p(2), Max: int32p(5), Concurrency: int32p(50)},
		},
	}
}

// isOwnedBy fails unless o's one owner reference makes owner its
// controller: what the garbage collector follows (envtest has none, so
// deletion is checked here, by the reference).
func isOwnedBy(t *testing.T, o client.Object, kind string, owner client.Object) {
	t.Helper()
	want := []metav1.OwnerReference{{
		APIVersion: v1alpha1.APIVersion, Kind: kind, Name: owner.GetName(), UID: owner.GetUID(),
		Controller: ptrTrue(), BlockOwnerDeletion: ptrTrue(),
	}}
	if got := o.GetOwnerReferences(); !reflect.DeepEqual(got, want) {
		t.Errorf("%T %s: ownerReferences %+v, want %+v", o, o.GetName(), got, want)
	}
}

func ptrTrue() *bool { b := true; return &b }

func condition(conds []metav1.Condition, typ string) string {
	c := apimeta.FindStatusCondition(conds, typ)
	if c == nil {
		return typ + "=absent"
	}
	return typ + "=" + string(c.Status) + "/" + c.Reason + ": " + c.Message
}

func waitCondition(t *testing.T, o conditioned, typ string, status metav1.ConditionStatus, reason string) *metav1.Condition {
	t.Helper()
	var found *metav1.Condition
	waitFor(t, typ+"="+string(status)+"/"+reason+" on "+o.GetName(), func() (bool, string) {
		if err := get(o.GetNamespace(), o.GetName(), o); err != nil {
			return false, err.Error()
		}
		c := apimeta.FindStatusCondition(o.GetConditions(), typ)
		if c != nil && c.Status == status && c.Reason == reason && c.ObservedGeneration == o.GetGeneration() {
			found = c
			return true, ""
		}
		return false, condition(o.GetConditions(), typ)
	})
	return found
}

func TestFunctionChildren(t *testing.T) {
	ns := namespace(t, direct)
	fn := function(ns, "hello")
	create(t, fn)

	var dep appsv1.Deployment
	waitFor(t, "the Deployment", func() (bool, string) { err := get(ns, "hello", &dep); return err == nil, errText(err) })
	var svc corev1.Service
	waitFor(t, "the Service", func() (bool, string) { err := get(ns, "hello", &svc); return err == nil, errText(err) })
	var hpa autoscalingv2.HorizontalPodAutoscaler
	waitFor(t, "the HPA", func() (bool, string) { err := get(ns, "hello", &hpa); return err == nil, errText(err) })
	if err := get(ns, "hello", fn); err != nil {
		t.Fatal(err)
	}

	wantLabels := map[string]string{
		kube.LabelManagedBy: kube.ManagedBy, kube.LabelFunction: "hello",
		kube.LabelEnvironment: "dev", kube.LabelRelease: strings.Repeat("ab", 20),
	}
	wantAnn := map[string]string{kube.AnnotationRelease: "sha256:" + strings.Repeat("ab", 32)}
	for _, o := range []client.Object{&dep, &svc, &hpa} {
		isOwnedBy(t, o, v1alpha1.KindFunction, fn)
		if !reflect.DeepEqual(o.GetLabels(), wantLabels) {
			t.Errorf("%T labels %v, want %v", o, o.GetLabels(), wantLabels)
		}
		if !reflect.DeepEqual(o.GetAnnotations(), wantAnn) {
			t.Errorf("%T annotations %v, want %v", o, o.GetAnnotations(), wantAnn)
		}
	}

	// Deployment, field by field.
	sel := map[string]string{kube.LabelFunction: "hello"}
	if !reflect.DeepEqual(dep.Spec.Selector.MatchLabels, sel) || len(dep.Spec.Selector.MatchExpressions) != 0 {
		t.Errorf("selector %+v, want %v", dep.Spec.Selector, sel)
	}
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 1 {
		t.Errorf("replicas %v: the controller sets none (the HPA owns them), so the API server's default 1", dep.Spec.Replicas)
	}
	st := dep.Spec.Strategy
	if st.Type != appsv1.RollingUpdateDeploymentStrategyType || st.RollingUpdate == nil ||
		*st.RollingUpdate.MaxUnavailable != intstr.FromInt32(0) || *st.RollingUpdate.MaxSurge != intstr.FromInt32(1) {
		t.Errorf("strategy %+v, want RollingUpdate maxUnavailable 0 maxSurge 1", st)
	}
	tpl := dep.Spec.Template
	if want := map[string]string{kube.LabelManagedBy: kube.ManagedBy, kube.LabelFunction: "hello"}; !reflect.DeepEqual(tpl.Labels, want) {
		t.Errorf("pod labels %v, want %v (no release label: a release that keeps the image must not roll the pods)", tpl.Labels, want)
	}
	ps := tpl.Spec
	if ps.AutomountServiceAccountToken == nil || *ps.AutomountServiceAccountToken {
		t.Error("the pod gets an API token; a function talks to no API server")
	}
	if ps.EnableServiceLinks == nil || *ps.EnableServiceLinks {
		t.Error("service links are on")
	}
	if ps.TerminationGracePeriodSeconds == nil || *ps.TerminationGracePeriodSeconds != 15 {
		t.Errorf("terminationGracePeriodSeconds %v, want 15 (timeout 10s + 5s)", ps.TerminationGracePeriodSeconds)
	}
	psc := ps.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser != 65532 ||
		psc.RunAsGroup == nil || *psc.RunAsGroup != 65532 || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext %+v", psc)
	}
	if len(ps.Volumes) != 1 || ps.Volumes[0].Name != "tmp" || ps.Volumes[0].EmptyDir == nil {
		t.Errorf("volumes %+v, want one emptyDir tmp", ps.Volumes)
	}
	if len(ps.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(ps.Containers))
	}
	c := ps.Containers[0]
	if c.Name != "function" || c.Image != fn.Spec.Image {
		t.Errorf("container %s image %s, want function %s", c.Name, c.Image, fn.Spec.Image)
	}
	if len(c.Ports) != 1 || c.Ports[0].ContainerPort != 8080 || c.Ports[0].Name != "http" {
		t.Errorf("ports %+v", c.Ports)
	}
	wantEnv := []corev1.EnvVar{
		{Name: "DB_PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: kube.SecretName}, Key: "db-password"}}},
		{Name: "GREETING", Value: "hello"},
		{Name: "PORT", Value: "8080"},
		{Name: "FUNCTION_NAME", Value: "hello"},
		{Name: "FUNCTION_TIMEOUT", Value: "10s"},
		{Name: "FUNCTION_MEMORY", Value: "256Mi"},
		{Name: "K_SERVICE", Value: "hello"},
		{Name: "FERRY_LISTEN_ADDR", Value: "0.0.0.0"},
	}
	if !reflect.DeepEqual(c.Env, wantEnv) {
		t.Errorf("env\n got %+v\nwant %+v", c.Env, wantEnv)
	}
	mem := resource.MustParse("256Mi")
	if got := c.Resources.Requests[corev1.ResourceMemory]; got.Cmp(mem) != 0 {
		t.Errorf("memory request %s", got.String())
	}
	if got := c.Resources.Limits[corev1.ResourceMemory]; got.Cmp(mem) != 0 {
		t.Errorf("memory limit %s", got.String())
	}
	if got := c.Resources.Requests[corev1.ResourceCPU]; got.String() != "100m" {
		t.Errorf("cpu request %s, want 100m (the HPA's CPU target is a share of it)", got.String())
	}
	if _, ok := c.Resources.Limits[corev1.ResourceCPU]; ok {
		t.Error("a CPU limit is set; it would throttle a function the HPA is about to scale out")
	}
	for name, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" || p.HTTPGet.Port != intstr.FromInt32(8080) {
			t.Errorf("%s probe %+v, want GET /healthz on 8080", name, p)
		}
	}
	sc := c.SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.Capabilities == nil ||
		!reflect.DeepEqual(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 {
		t.Errorf("container securityContext %+v", sc)
	}
	if len(c.VolumeMounts) != 1 || c.VolumeMounts[0].Name != "tmp" || c.VolumeMounts[0].MountPath != "/tmp" {
		t.Errorf("volumeMounts %+v", c.VolumeMounts)
	}

	// Service.
	if svc.Spec.Type != corev1.ServiceTypeClusterIP || !reflect.DeepEqual(svc.Spec.Selector, sel) {
		t.Errorf("service type %s selector %v", svc.Spec.Type, svc.Spec.Selector)
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 80 || svc.Spec.Ports[0].TargetPort != intstr.FromString("http") ||
		svc.Spec.Ports[0].Protocol != corev1.ProtocolTCP {
		t.Errorf("service ports %+v, want 80 → http (8080)", svc.Spec.Ports)
	}

	// HPA.
	hs := hpa.Spec
	if hs.ScaleTargetRef != (autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "hello"}) {
		t.Errorf("scaleTargetRef %+v", hs.ScaleTargetRef)
	}
	if hs.MinReplicas == nil || *hs.MinReplicas != 2 || hs.MaxReplicas != 5 {
		t.Errorf("min %v max %d, want 2 and 5", hs.MinReplicas, hs.MaxReplicas)
	}
	if len(hs.Metrics) != 1 || hs.Metrics[0].Type != autoscalingv2.ResourceMetricSourceType || hs.Metrics[0].Resource.Name != corev1.ResourceCPU ||
		hs.Metrics[0].Resource.Target.Type != autoscalingv2.UtilizationMetricType || *hs.Metrics[0].Resource.Target.AverageUtilization != 80 {
		t.Errorf("metrics %+v, want CPU at 80%%", hs.Metrics)
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// setRolledOut writes the status the deployment controller writes once
// every replica of the current template is available.
func setRolledOut(t *testing.T, ns, name string) {
	t.Helper()
	var dep appsv1.Deployment
	if err := get(ns, name, &dep); err != nil {
		t.Fatal(err)
	}
	dep.Status = appsv1.DeploymentStatus{
		ObservedGeneration: dep.Generation,
		Replicas:           1, UpdatedReplicas: 1, ReadyReplicas: 1, AvailableReplicas: 1,
	}
	if err := direct.Status().Update(context.Background(), &dep); err != nil {
		t.Fatal(err)
	}
}

func TestFunctionReady(t *testing.T) {
	ns := namespace(t, direct)
	fn := function(ns, "ready")
	create(t, fn)

	c := waitCondition(t, fn, v1alpha1.ConditionReconciling, metav1.ConditionTrue, v1alpha1.ReasonProgressing)
	if !strings.Contains(c.Message, "0 of 1 replicas updated") {
		t.Errorf("Reconciling says %q", c.Message)
	}
	if got := condition(fn.Status.Conditions, v1alpha1.ConditionReady); !strings.HasPrefix(got, "Ready=Unknown/Progressing") {
		t.Errorf("while rolling: %s", got)
	}
	setRolledOut(t, ns, "ready")
	waitCondition(t, fn, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded)
	for _, typ := range []string{v1alpha1.ConditionReconciling, v1alpha1.ConditionStalled} {
		if apimeta.FindStatusCondition(fn.Status.Conditions, typ) != nil {
			t.Errorf("Ready, yet %s", condition(fn.Status.Conditions, typ))
		}
	}
	s := fn.Status
	if s.Image != fn.Spec.Image || s.Digest != digest[:12] || s.Replicas != 1 || s.ObservedGeneration != fn.Generation ||
		s.URL != "http://ready."+ns+".svc:80" {
		t.Errorf("status %+v", s)
	}

	// Events: the children made, and Ready. The recorder sends them
	// asynchronously, so wait for them.
	want := map[string]bool{"Applied": false, "Succeeded": false}
	waitFor(t, "events Applied and Succeeded", func() (bool, string) {
		var evs corev1.EventList
		if err := direct.List(context.Background(), &evs, client.InNamespace(ns)); err != nil {
			return false, err.Error()
		}
		var seen []string
		for _, e := range evs.Items {
			if e.InvolvedObject.Kind == v1alpha1.KindFunction && e.InvolvedObject.Name == "ready" {
				if _, ok := want[e.Reason]; ok {
					want[e.Reason] = true
				}
				seen = append(seen, e.Reason+": "+e.Message)
			}
		}
		return want["Applied"] && want["Succeeded"], strings.Join(seen, "; ")
	})

	// A new image rolls: Reconciling again until the new template is out.
	if err := get(ns, "ready", fn); err != nil {
		t.Fatal(err)
	}
	fn.Spec.Image = "ferry.test/fns/ready@sha256:" + strings.Repeat("e", 64)
	if err := direct.Update(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
	waitCondition(t, fn, v1alpha1.ConditionReconciling, metav1.ConditionTrue, v1alpha1.ReasonProgressing)
	setRolledOut(t, ns, "ready")
	waitCondition(t, fn, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded)
	if fn.Status.Digest != strings.Repeat("e", 12) {
		t.Errorf("digest %s after the new image", fn.Status.Digest)
	}
}

func TestFunctionRolloutFailed(t *testing.T) {
	ns := namespace(t, direct)
	fn := function(ns, "broken")
	create(t, fn)
	waitCondition(t, fn, v1alpha1.ConditionReconciling, metav1.ConditionTrue, v1alpha1.ReasonProgressing)

	// A pod of the current template that cannot pull its image, as the
	// kubelet reports it.
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "broken-abc",
			Labels: map[string]string{kube.LabelManagedBy: kube.ManagedBy, kube.LabelFunction: "broken"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "function", Image: fn.Spec.Image}}},
	}
	create(t, pod)
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{
		Name: "function", Image: fn.Spec.Image,
		State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: "Back-off pulling image"}},
	}}
	if err := direct.Status().Update(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
	c := waitCondition(t, fn, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonRolloutFailed)
	if !strings.Contains(c.Message, "ImagePullBackOff") || !strings.Contains(c.Message, "broken-abc") {
		t.Errorf("Ready says %q; want the pod and its reason", c.Message)
	}
	if apimeta.FindStatusCondition(fn.Status.Conditions, v1alpha1.ConditionReconciling) != nil {
		t.Errorf("failed, yet %s", condition(fn.Status.Conditions, v1alpha1.ConditionReconciling))
	}

	// The deployment controller giving up says so as well.
	if err := direct.Delete(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
	var dep appsv1.Deployment
	if err := get(ns, "broken", &dep); err != nil {
		t.Fatal(err)
	}
	dep.Status = appsv1.DeploymentStatus{ObservedGeneration: dep.Generation, Replicas: 1, UpdatedReplicas: 1,
		Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse,
			Reason: "ProgressDeadlineExceeded", Message: `ReplicaSet "broken-1" has timed out progressing.`}}}
	if err := direct.Status().Update(context.Background(), &dep); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "Ready to say ProgressDeadlineExceeded", func() (bool, string) {
		if err := get(ns, "broken", fn); err != nil {
			return false, err.Error()
		}
		got := condition(fn.Status.Conditions, v1alpha1.ConditionReady)
		return strings.HasPrefix(got, "Ready=False/RolloutFailed") && strings.Contains(got, "ProgressDeadlineExceeded"), got
	})
}

// noDeployment fails if name has a Deployment: a refused Function
// changes nothing.
func noDeployment(t *testing.T, ns, name string) {
	t.Helper()
	var dep appsv1.Deployment
	if err := get(ns, name, &dep); !apierrors.IsNotFound(err) {
		t.Errorf("a Deployment %s exists (err %v); a refused Function must make none", name, err)
	}
}

func TestScaleFromZeroRefused(t *testing.T) {
	ns := namespace(t, direct)
	fn := function(ns, "idle")
	fn.Spec.Scale.Min = int32p(0)
	create(t, fn)
	c := waitCondition(t, fn, v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonInvalidSpec)
	if !strings.Contains(c.Message, "scale from zero is not on this target yet") || !strings.Contains(c.Message, "set scale.min to 1") {
		t.Errorf("Stalled says %q", c.Message)
	}
	if got := condition(fn.Status.Conditions, v1alpha1.ConditionReady); !strings.HasPrefix(got, "Ready=False/InvalidSpec") {
		t.Errorf("%s", got)
	}
	noDeployment(t, ns, "idle")
	waitFor(t, "a Warning event InvalidSpec", func() (bool, string) {
		var evs eventsv1.EventList
		if err := direct.List(context.Background(), &evs, client.InNamespace(ns)); err != nil {
			return false, err.Error()
		}
		for _, e := range evs.Items {
			if e.Regarding.Name == "idle" && e.Type == corev1.EventTypeWarning && e.Reason == v1alpha1.ReasonInvalidSpec {
				return true, ""
			}
		}
		return false, "none"
	})
}

func TestUnpinnedImageRefused(t *testing.T) {
	ns := namespace(t, direct)
	fn := function(ns, "latest")
	fn.Spec.Image = "ferry.test/fns/latest:latest"
	create(t, fn)
	c := waitCondition(t, fn, v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonInvalidSpec)
	if !strings.Contains(c.Message, "not pinned by digest") {
		t.Errorf("Stalled says %q", c.Message)
	}
	noDeployment(t, ns, "latest")
}

func TestDeletedChildIsMadeAgain(t *testing.T) {
	ns := namespace(t, direct)
	create(t, function(ns, "again"))
	var svc corev1.Service
	waitFor(t, "the Service", func() (bool, string) { err := get(ns, "again", &svc); return err == nil, errText(err) })
	first := svc.UID
	if err := direct.Delete(context.Background(), &svc); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a new Service", func() (bool, string) {
		err := get(ns, "again", &svc)
		return err == nil && svc.UID != first, errText(err)
	})
}

// TestReconcileIsIdempotent runs the reconcilers again by hand on
// settled objects: no object may change, so no resourceVersion does.
func TestReconcileIsIdempotent(t *testing.T) {
	ns := namespace(t, direct)
	fn := function(ns, "same")
	create(t, fn)
	waitCondition(t, fn, v1alpha1.ConditionReconciling, metav1.ConditionTrue, v1alpha1.ReasonProgressing)
	setRolledOut(t, ns, "same")
	waitCondition(t, fn, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded)

	objs := []client.Object{&v1alpha1.Function{}, &appsv1.Deployment{}, &corev1.Service{}, &autoscalingv2.HorizontalPodAutoscaler{}}
	versions := func() []string {
		var v []string
		for _, o := range objs {
			if err := get(ns, "same", o); err != nil {
				t.Fatal(err)
			}
			v = append(v, o.GetResourceVersion())
		}
		return v
	}
	before := versions()
	r := &functionReconciler{base: base{Client: direct, reader: direct, events: mgr.GetEventRecorder("test")}}
	for range 2 {
		if _, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKey{Namespace: ns, Name: "same"}}); err != nil {
			t.Fatal(err)
		}
	}
	if after := versions(); !reflect.DeepEqual(before, after) {
		t.Errorf("resourceVersions of Function, Deployment, Service, HPA went from %v to %v", before, after)
	}
}
