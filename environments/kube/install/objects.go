package install

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/ferrycd/ferry/environments/kube/controller"
	"io"
	"io/fs"
	"path"
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/ferrycd/ferry/config"
	"github.com/ferrycd/ferry/environments/kube"
	"github.com/ferrycd/ferry/manifests"
)

const (
	// DefaultNamespace is where the controller runs unless told.
	DefaultNamespace = "ferry-system"
	// ControllerName names the controller's ServiceAccount, RBAC objects
	// and Deployment.
	ControllerName = "ferry-controller"
	// MetricsPort and HealthPort are where the controller serves its
	// metrics and its /healthz and /readyz.
	MetricsPort = 8080
	HealthPort  = 8081
	// runAs is the controller's user and group: ferry's image runs as
	// 65532 (build.PushSelf), and naming it lets the kubelet check
	// runAsNonRoot without reading the image's passwd (it has none).
	runAs = 65532
)

// Options says what to install.
type Options struct {
	// Namespace is the controller's namespace (DefaultNamespace if empty).
	Namespace string
	// Image is ferry's own image, pinned by digest
	// (HOST[:PORT]/PATH@sha256:...): the controller runs it, and gives it
	// to the CronJobs and dispatchers it makes.
	Image string
}

// Objects returns what `ferry install` applies, in the order it applies
// them: the CRDs, the Namespace, the ServiceAccount, the RBAC, the
// Deployment. The same Options always give the same objects.
func Objects(o Options) ([]*unstructured.Unstructured, error) {
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	if o.Image == "" {
		return nil, errors.New("install: no image for the controller; push ferry's own with `ferry image push REPO` (or --push REPO) and pass the REPO@sha256:... it prints")
	}
	if !manifests.IsPinnedImage(o.Image) {
		return nil, fmt.Errorf("install: the image %q is not pinned by digest; a tag can move under a running controller, so pass HOST[:PORT]/PATH@sha256:<64 hex> (`ferry image push REPO` prints one)", o.Image)
	}
	objs, err := CRDs()
	if err != nil {
		return nil, err
	}
	for _, obj := range []runtime.Object{
		namespace(o),
		serviceAccount(o),
		clusterRole(),
		clusterRoleBinding(o),
		leaseRole(o),
		leaseRoleBinding(o),
		deployment(o),
	} {
		u, err := toUnstructured(obj)
		if err != nil {
			return nil, err
		}
		objs = append(objs, u)
	}
	return objs, nil
}

// CRDs are ferry's CustomResourceDefinitions as committed under
// config/crd, in file order.
func CRDs() ([]*unstructured.Unstructured, error) {
	entries, err := fs.ReadDir(config.CRDs, "crd")
	if err != nil {
		return nil, err
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	var out []*unstructured.Unstructured
	for _, e := range entries {
		data, err := fs.ReadFile(config.CRDs, path.Join("crd", e.Name()))
		if err != nil {
			return nil, err
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for {
			u := &unstructured.Unstructured{}
			if err := dec.Decode(&u.Object); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				return nil, fmt.Errorf("config/crd/%s: %w", e.Name(), err)
			}
			if len(u.Object) > 0 {
				out = append(out, u)
			}
		}
	}
	if len(out) == 0 {
		return nil, errors.New("install: no CRDs embedded; run `make generate`")
	}
	return out, nil
}

// WriteYAML writes objs as one multi-document YAML stream, each document
// with its keys sorted, so the same objects print the same bytes.
func WriteYAML(w io.Writer, objs []*unstructured.Unstructured) error {
	for _, obj := range objs {
		b, err := yaml.Marshal(obj.Object)
		if err != nil {
			return fmt.Errorf("%s %s: %w", obj.GetKind(), obj.GetName(), err)
		}
		if _, err := fmt.Fprintf(w, "---\n%s", b); err != nil {
			return err
		}
	}
	return nil
}

// toUnstructured turns a typed object into what Apply sends and WriteYAML
// prints, without the empty status and creation time a typed object
// carries: an apply must not claim fields it does not set.
func toUnstructured(obj runtime.Object) (*unstructured.Unstructured, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	delete(m, "status")
	unstructured.RemoveNestedField(m, "metadata", "creationTimestamp")
	unstructured.RemoveNestedField(m, "spec", "template", "metadata", "creationTimestamp")
	return &unstructured.Unstructured{Object: m}, nil
}

func labels() map[string]string {
	return map[string]string{
		kube.LabelManagedBy:           kube.ManagedBy,
		"app.kubernetes.io/name":      ControllerName,
		"app.kubernetes.io/component": "controller",
	}
}

func objectMeta(name, namespace string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: labels()}
}

func namespace(o Options) *corev1.Namespace {
	ns := &corev1.Namespace{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
		ObjectMeta: objectMeta(o.Namespace, ""),
	}
	// The controller's pod meets the "restricted" Pod Security Standard;
	// enforcing it here keeps it so.
	ns.Labels["pod-security.kubernetes.io/enforce"] = "restricted"
	return ns
}

func serviceAccount(o Options) *corev1.ServiceAccount {
	return &corev1.ServiceAccount{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
		ObjectMeta: objectMeta(ControllerName, o.Namespace),
	}
}

// Rules are the controller's permissions across the cluster, exactly
// what its tests run it with (controller.ClusterRules): one list, so
// what install grants cannot drift from what the controller needs.
func Rules() []rbacv1.PolicyRule { return controller.ClusterRules() }

// LeaseRules are the controller's permissions in its own namespace only:
// the leader-election Lease and the events about it
// (controller.LeaderElectionRules).
func LeaseRules() []rbacv1.PolicyRule { return controller.LeaderElectionRules() }

func clusterRole() *rbacv1.ClusterRole {
	return &rbacv1.ClusterRole{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole"},
		ObjectMeta: objectMeta(ControllerName, ""),
		Rules:      Rules(),
	}
}

func subjects(o Options) []rbacv1.Subject {
	return []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: ControllerName, Namespace: o.Namespace}}
}

func clusterRoleBinding(o Options) *rbacv1.ClusterRoleBinding {
	return &rbacv1.ClusterRoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRoleBinding"},
		ObjectMeta: objectMeta(ControllerName, ""),
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: ControllerName},
		Subjects:   subjects(o),
	}
}

func leaseRole(o Options) *rbacv1.Role {
	return &rbacv1.Role{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role"},
		ObjectMeta: objectMeta(ControllerName, o.Namespace),
		Rules:      LeaseRules(),
	}
}

func leaseRoleBinding(o Options) *rbacv1.RoleBinding {
	return &rbacv1.RoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "RoleBinding"},
		ObjectMeta: objectMeta(ControllerName, o.Namespace),
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: ControllerName},
		Subjects:   subjects(o),
	}
}

// Args are the controller container's arguments: leader election, so a
// rolling update never runs two controllers at once, in its own
// namespace; the ports the Deployment's probes and metrics port name;
// and the image its CronJobs and dispatchers run, ferry's own.
func Args(o Options) []string {
	return []string{
		"controller",
		"--leader-elect",
		"--leader-election-namespace=" + o.Namespace,
		fmt.Sprintf("--metrics-bind-address=:%d", MetricsPort),
		fmt.Sprintf("--health-probe-bind-address=:%d", HealthPort),
		"--image=" + o.Image,
	}
}

// Resources of the controller: a reconcile is light; the cache of the
// objects it watches is what grows, and 512 MiB holds thousands.
var (
	requestCPU    = resource.MustParse("100m")
	requestMemory = resource.MustParse("128Mi")
	limitCPU      = resource.MustParse("1")
	limitMemory   = resource.MustParse("512Mi")
)

func deployment(o Options) *appsv1.Deployment {
	selector := map[string]string{"app.kubernetes.io/name": ControllerName}
	probe := func(path string) *corev1.Probe {
		return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString("health")}}}
	}
	liveness, readiness := probe("/healthz"), probe("/readyz")
	liveness.InitialDelaySeconds = 15
	liveness.PeriodSeconds = 20
	readiness.InitialDelaySeconds = 5
	readiness.PeriodSeconds = 10
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: objectMeta(ControllerName, o.Namespace),
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: selector},
			// A new controller starts before the old one stops; leader
			// election keeps one of them reconciling.
			Strategy: appsv1.DeploymentStrategy{
				Type:          appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxUnavailable: ptr.To(intstr.FromInt32(0))},
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels()},
				Spec: corev1.PodSpec{
					ServiceAccountName: ControllerName,
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot:   ptr.To(true),
						RunAsUser:      ptr.To[int64](runAs),
						RunAsGroup:     ptr.To[int64](runAs),
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
					Containers: []corev1.Container{{
						Name:  "controller",
						Image: o.Image,
						Args:  Args(o),
						Ports: []corev1.ContainerPort{
							{Name: "metrics", ContainerPort: MetricsPort, Protocol: corev1.ProtocolTCP},
							{Name: "health", ContainerPort: HealthPort, Protocol: corev1.ProtocolTCP},
						},
						LivenessProbe:  liveness,
						ReadinessProbe: readiness,
						Resources: corev1.ResourceRequirements{
							Requests: corev1.ResourceList{corev1.ResourceCPU: requestCPU, corev1.ResourceMemory: requestMemory},
							Limits:   corev1.ResourceList{corev1.ResourceCPU: limitCPU, corev1.ResourceMemory: limitMemory},
						},
						SecurityContext: &corev1.SecurityContext{
							RunAsNonRoot:             ptr.To(true),
							ReadOnlyRootFilesystem:   ptr.To(true),
							AllowPrivilegeEscalation: ptr.To(false),
							Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
							SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
						},
						VolumeMounts: []corev1.VolumeMount{{Name: "tmp", MountPath: "/tmp"}},
					}},
					// The root filesystem is read-only; a temporary folder is
					// the one place the process may write.
					Volumes: []corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
				},
			},
		},
	}
}
