package install

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

const testImage = "registry.example.com/ferry@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestObjectsOrder(t *testing.T) {
	objs, err := Objects(Options{Image: testImage})
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, o := range objs {
		kinds = append(kinds, o.GetKind())
	}
	want := []string{
		"CustomResourceDefinition", "CustomResourceDefinition", "CustomResourceDefinition", "CustomResourceDefinition", "CustomResourceDefinition",
		"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Deployment",
	}
	if !slices.Equal(kinds, want) {
		t.Fatalf("kinds in order:\n%v\nwant\n%v", kinds, want)
	}
	for _, o := range objs[5:] {
		ns := o.GetNamespace()
		switch o.GetKind() {
		case "Namespace", "ClusterRole", "ClusterRoleBinding":
			if ns != "" {
				t.Errorf("%s %s is cluster-scoped but has namespace %q", o.GetKind(), o.GetName(), ns)
			}
		default:
			if ns != DefaultNamespace {
				t.Errorf("%s %s in namespace %q, want %s", o.GetKind(), o.GetName(), ns, DefaultNamespace)
			}
		}
	}
}

// TestYAMLDeterministic: the same options print the same bytes, and the
// namespace option reaches every namespaced object and the binding.
func TestYAMLDeterministic(t *testing.T) {
	print := func(o Options) string {
		objs, err := Objects(o)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := WriteYAML(&b, objs); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	a, b := print(Options{Image: testImage}), print(Options{Image: testImage})
	if a != b {
		t.Fatal("two dry runs printed different YAML")
	}
	if n := strings.Count(a, "\n---\n") + 1; n != 12 {
		t.Errorf("%d documents, want 12", n)
	}
	// Past the CRDs (whose schema names both), the objects ferry makes.
	ours := a[strings.Index(a, "kind: Namespace"):]
	for _, bad := range []string{"creationTimestamp", "status: {}", "strategy: {}"} {
		if strings.Contains(ours, bad) {
			t.Errorf("the YAML holds %q, a field no one set", bad)
		}
	}
	other := print(Options{Image: testImage, Namespace: "ops"})
	if strings.Contains(other, DefaultNamespace) {
		t.Errorf("--namespace ops still prints %s somewhere", DefaultNamespace)
	}
	if !strings.Contains(other, "namespace: ops") || !strings.Contains(other, "--leader-election-namespace=ops") {
		t.Errorf("--namespace ops does not reach the objects and the controller's args")
	}
}

func TestObjectsRefuseUnpinnedImage(t *testing.T) {
	for _, img := range []string{"", "registry.example.com/ferry:latest", "registry.example.com/ferry", "ferry@sha256:123"} {
		_, err := Objects(Options{Image: img})
		if err == nil {
			t.Errorf("image %q accepted", img)
			continue
		}
		if !strings.Contains(err.Error(), "ferry image push") {
			t.Errorf("image %q: %v; the message should say how to get a pinned image", img, err)
		}
	}
}

// TestRulesNoWildcardNoSecrets reads the RBAC as data: no wildcard, no
// Secrets, nothing outside the groups the controller works in.
func TestRulesNoWildcardNoSecrets(t *testing.T) {
	groups := map[string]bool{"ferry.dev": true, "apps": true, "": true, "autoscaling": true, "gateway.networking.k8s.io": true, "networking.k8s.io": true, "batch": true, "events.k8s.io": true, "coordination.k8s.io": true}
	for _, r := range append(Rules(), LeaseRules()...) {
		for _, list := range [][]string{r.APIGroups, r.Resources, r.Verbs} {
			if slices.Contains(list, "*") {
				t.Errorf("rule %+v has a wildcard", r)
			}
		}
		for _, g := range r.APIGroups {
			if !groups[g] {
				t.Errorf("rule %+v reaches the API group %q", r, g)
			}
		}
		for _, res := range r.Resources {
			if res == "secrets" || res == "namespaces" || res == "pods" && !slices.Equal(r.Verbs, []string{"get", "list", "watch"}) {
				t.Errorf("rule %+v grants %s", r, res)
			}
		}
		if len(r.NonResourceURLs) > 0 || len(r.ResourceNames) > 0 && r.Resources[0] != "leases" {
			t.Errorf("rule %+v is not a plain resource rule", r)
		}
	}
}

// TestDeploymentHardened: the controller's pod is held to what a
// function's is.
func TestDeploymentHardened(t *testing.T) {
	objs, err := Objects(Options{Image: testImage})
	if err != nil {
		t.Fatal(err)
	}
	var d appsv1.Deployment
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(objs[len(objs)-1].Object, &d); err != nil {
		t.Fatal(err)
	}
	pod := d.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers", len(pod.Containers))
	}
	c := pod.Containers[0]
	if c.Image != testImage {
		t.Errorf("image %s", c.Image)
	}
	if want := []string{"controller", "--leader-elect"}; !slices.Equal(c.Args[:2], want) || !slices.Contains(c.Args, "--image="+testImage) {
		t.Errorf("args %q: want controller --leader-elect ... --image=%s", c.Args, testImage)
	}
	sc := c.SecurityContext
	switch {
	case pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot:
		t.Error("the pod may run as root")
	case sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Error("the root filesystem is writable")
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Error("privilege escalation allowed")
	case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}):
		t.Errorf("capabilities %+v, want drop ALL", sc.Capabilities)
	case sc.SeccompProfile == nil || sc.SeccompProfile.Type != "RuntimeDefault":
		t.Error("no RuntimeDefault seccomp profile")
	}
	if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() || c.Resources.Requests.Cpu().IsZero() {
		t.Errorf("resources %+v: want requests and a memory limit", c.Resources)
	}
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" || c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Error("probes are not on /healthz and /readyz")
	}
	if pod.ServiceAccountName != ControllerName {
		t.Errorf("service account %q", pod.ServiceAccountName)
	}
}
