package kubenode_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	"github.com/ferrycd/ferry/build"
	"github.com/ferrycd/ferry/environments/kube"
	"github.com/ferrycd/ferry/internal/kubenode"
	"github.com/ferrycd/ferry/manifests"
	"github.com/ferrycd/ferry/test/testreg"
)

// hang bounds each wait only to catch a hang: a pod is Ready in seconds.
const hang = 3 * time.Minute

// TestPodsAnswer runs ferry-built images as pods on a real node: the Go
// example built by ferry's builder and pushed to a registry on loopback,
// a Deployment pinned by digest with the hardening the controller uses,
// an HTTP call to the pod's IP; then a second image, and the answer
// changes. After stop, nothing of the node is left.
func TestPodsAnswer(t *testing.T) {
	reg := testreg.Embedded(t, "")
	first := buildHello(t, reg.Addr, "hello from go")
	second := buildHello(t, reg.Addr, "hello from the second image")

	kubenode.Exclusive(t)
	before := hostState(t)
	node := kubenode.Start(t, reg.Addr)
	t.Logf("node Ready in %s", node.Started.Round(100*time.Millisecond))
	cs, err := kubernetes.NewForConfig(node.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*hang)
	defer cancel()

	begin := time.Now()
	deps := cs.AppsV1().Deployments("default")
	if _, err := deps.Create(ctx, deployment(first), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := readyPod(ctx, t, cs, first)
	if got := message(ctx, t, pod); got != "hello from go" {
		t.Fatalf("the pod of %s answered %q, want %q", first, got, "hello from go")
	}
	t.Logf("Deployment created → first answer from pod %s in %s", pod.Status.PodIP, time.Since(begin).Round(100*time.Millisecond))
	t.Logf("node memory (its processes' RSS): %d MiB", node.MemoryMiB())

	// The API server reaches the kubelet (by the node's name): logs, and
	// a port-forward into the pod, as ferry's Kubernetes target calls a
	// function.
	logs, err := cs.CoreV1().Pods("default").GetLogs(pod.Name, &corev1.PodLogOptions{}).DoRaw(ctx)
	if err != nil {
		t.Fatalf("logs of the pod %s: %v", pod.Name, err)
	}
	if want := "function hello (example.com/hello/hello.Handle) serving on"; !strings.Contains(string(logs), want) {
		t.Errorf("logs of the pod %s do not say %q:\n%s", pod.Name, want, logs)
	}
	if got := forwardedMessage(ctx, t, node, pod); got != "hello from go" {
		t.Errorf("through a port-forward, the pod of %s answered %q, want %q", first, got, "hello from go")
	}

	// A new image, as a new release makes: the rollout replaces the pod.
	// (The controller-manager writes the Deployment's status meanwhile:
	// an update retries on the conflict.)
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d, err := deps.Get(ctx, "hello", metav1.GetOptions{})
		if err != nil {
			return err
		}
		d.Spec.Template.Spec.Containers[0].Image = second
		_, err = deps.Update(ctx, d, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	pod = readyPod(ctx, t, cs, second)
	if got := message(ctx, t, pod); got != "hello from the second image" {
		t.Fatalf("the pod of %s answered %q, want %q", second, got, "hello from the second image")
	}

	if err := node.Stop(); err != nil {
		t.Fatal(err)
	}
	if left := kubenode.Processes(node.Bin, node.Dir); len(left) > 0 {
		t.Errorf("processes of the node left after stop: %v", left)
	}
	if left := kubenode.Mounts(node.Dir); len(left) > 0 {
		t.Errorf("mounts left under the node's folder after stop: %v", left)
	}
	if after := hostState(t); after != before {
		t.Errorf("the host after the node stopped differs from before it started:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// hostState is what the kubelet, containerd and the bridge plugin change
// on the host outside the node's folder: sysctls, folders, the bridge.
func hostState(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, key := range []string{"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops", "kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes", "net/ipv4/ip_forward"} {
		v, err := os.ReadFile("/proc/sys/" + key)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s=%s", key, v)
	}
	for _, d := range []string{"/var/lib/kubelet", "/var/log/pods", "/var/log/containers", "/var/lib/cni", "/run/containerd", "/run/netns", "/sys/fs/cgroup/memory/kubepods", "/sys/class/net/ferry0"} {
		ents, err := os.ReadDir(d)
		switch {
		case os.IsNotExist(err):
			fmt.Fprintf(&b, "%s absent\n", d)
		case err != nil:
			t.Fatal(err)
		default:
			fmt.Fprintf(&b, "%s has %d entries\n", d, len(ents))
		}
	}
	return b.String()
}

// buildHello builds examples/go with its message replaced, with ferry's
// builder, into reg, and returns the image pinned by digest.
func buildHello(t *testing.T, reg, msg string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(filepath.Join(kubenode.Root(), "examples", "go"))); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(dir, "hello", "hello.go")
	code, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(code), `"hello from go"`) {
		t.Fatal(`examples/go/hello/hello.go no longer says "hello from go"; update this test`)
	}
	code = []byte(strings.Replace(string(code), `"hello from go"`, strconv.Quote(msg), 1))
	if err := os.WriteFile(src, code, 0o644); err != nil {
		t.Fatal(err)
	}
	set, err := manifests.Load(context.Background(), os.DirFS(dir))
	if err != nil {
		t.Fatal(err)
	}
	b, err := build.New(reg+"/kubenode", build.WithCacheDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	img, err := b.Build(context.Background(), os.DirFS(dir), set.Function("hello"), build.Info{})
	if err != nil {
		t.Fatal(err)
	}
	return img.Ref
}

// deployment runs image as the function "hello", hardened as ferry's
// controller makes function Deployments: not root, read-only root file
// system with an emptyDir /tmp, no capabilities, no privilege escalation.
func deployment(image string) *appsv1.Deployment {
	labels := map[string]string{kube.LabelFunction: "hello"}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "hello", Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Strategy: appsv1.DeploymentStrategy{
				Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{
					MaxUnavailable: ptr.To(intstr.FromInt32(0)),
					MaxSurge:       ptr.To(intstr.FromInt32(1)),
				},
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					AutomountServiceAccountToken: ptr.To(false),
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot: ptr.To(true),
						RunAsUser:    ptr.To[int64](65532),
						RunAsGroup:   ptr.To[int64](65532),
					},
					Containers: []corev1.Container{{
						Name:  "function",
						Image: image,
						Env: []corev1.EnvVar{
							{Name: "PORT", Value: strconv.Itoa(kube.FunctionPort)},
							// The pod's network is its own: serve on its IP.
							{Name: "FERRY_LISTEN_ADDR", Value: "0.0.0.0"},
							{Name: "FUNCTION_NAME", Value: "hello"},
						},
						Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: kube.FunctionPort}},
						ReadinessProbe: &corev1.Probe{
							ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(kube.FunctionPort)}},
							PeriodSeconds: 1,
						},
						SecurityContext: &corev1.SecurityContext{
							AllowPrivilegeEscalation: ptr.To(false),
							ReadOnlyRootFilesystem:   ptr.To(true),
							Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
						},
						VolumeMounts: []corev1.VolumeMount{{Name: "tmp", MountPath: "/tmp"}},
					}},
					Volumes: []corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
				},
			},
		},
	}
}

// readyPod waits until the function's only pods run image and one is
// Ready, and returns it.
func readyPod(ctx context.Context, t *testing.T, cs kubernetes.Interface, image string) *corev1.Pod {
	t.Helper()
	deadline := time.Now().Add(hang)
	var last string
	for time.Now().Before(deadline) {
		pods, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: kube.LabelFunction + "=hello"})
		if err != nil {
			t.Fatal(err)
		}
		var ready *corev1.Pod
		others := 0
		last = ""
		for i := range pods.Items {
			p := &pods.Items[i]
			last += fmt.Sprintf(" %s(%s %s)", p.Name, p.Status.Phase, podWhy(p))
			if p.Spec.Containers[0].Image != image {
				others++
				continue
			}
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue && p.DeletionTimestamp == nil {
					ready = p
				}
			}
		}
		if ready != nil && others == 0 {
			return ready
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("no Ready pod of %s alone within %s; pods:%s", image, hang, last)
	return nil
}

// podWhy is why a pod's container is not running, if it says.
func podWhy(p *corev1.Pod) string {
	for _, s := range p.Status.ContainerStatuses {
		if s.State.Waiting != nil {
			return s.State.Waiting.Reason + ": " + s.State.Waiting.Message
		}
		if s.State.Terminated != nil {
			return s.State.Terminated.Reason + ": " + s.State.Terminated.Message
		}
	}
	return ""
}

// message calls the pod at its IP, as a plain HTTP client would, and
// returns the "message" of the function's JSON answer.
func message(ctx context.Context, t *testing.T, pod *corev1.Pod) string {
	t.Helper()
	return messageAt(ctx, t, pod, kube.FunctionPort)
}

// messageAt calls the function at the pod's IP and port.
func messageAt(ctx context.Context, t *testing.T, pod *corev1.Pod, port int) string {
	t.Helper()
	url := "http://" + net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(port)) + "/"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(`{"from":"kubenode"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("calling the pod %s at %s: %v", pod.Name, url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the pod %s answered %s: %s", pod.Name, resp.Status, body)
	}
	var out struct {
		Message string          `json:"message"`
		Echo    json.RawMessage `json:"echo"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("the pod %s answered %s, not the function's JSON: %v", pod.Name, body, err)
	}
	if string(out.Echo) != `{"from":"kubenode"}` {
		t.Errorf("the pod %s echoed %s, want the request's data", pod.Name, out.Echo)
	}
	return out.Message
}

// TestStartAfterCrash: a node whose processes all died (a test binary
// killed mid-run leaves one so) is cleaned up by the next start, which
// then runs; and a late stop of the dead node does not touch the new one.
func TestStartAfterCrash(t *testing.T) {
	reg := testreg.Embedded(t, "")
	kubenode.Exclusive(t)
	before := hostState(t)
	dead := kubenode.Start(t, reg.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 4*hang)
	defer cancel()
	// A pod, so the crash leaves mounts and a network namespace.
	idlePod(ctx, t, dead)
	for _, pid := range kubenode.Processes(dead.Bin, dead.Dir) {
		if p, err := os.FindProcess(pid); err == nil {
			_ = p.Kill()
		}
	}
	if len(kubenode.Mounts(dead.Dir)) == 0 {
		t.Fatal("the crashed node left no mounts; this test no longer tests the clean-up")
	}

	live := kubenode.Start(t, reg.Addr)
	if left := kubenode.Mounts(dead.Dir); len(left) > 0 {
		t.Errorf("mounts of the crashed node left after the next start: %v", left)
	}
	if left := kubenode.Processes(dead.Bin, dead.Dir); len(left) > 0 {
		t.Errorf("processes of the crashed node left after the next start: %v", left)
	}
	if err := dead.Stop(); err != nil {
		t.Fatal(err)
	}
	// The live node still runs pods, and has its bridge.
	idlePod(ctx, t, live)
	if _, err := os.Stat("/sys/class/net/ferry0"); err != nil {
		t.Errorf("the live node has no bridge: %v", err)
	}
	if err := live.Stop(); err != nil {
		t.Fatal(err)
	}
	if after := hostState(t); after != before {
		t.Errorf("the host after both nodes stopped differs from before:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// idlePod runs a pod of the node's pause image and waits until it is
// Ready.
func idlePod(ctx context.Context, t *testing.T, node *kubenode.Node) {
	t.Helper()
	cs, err := kubernetes.NewForConfig(node.Config)
	if err != nil {
		t.Fatal(err)
	}
	pause := node.Pause
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "idle", Labels: map[string]string{kube.LabelFunction: "hello"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "idle", Image: pause}}, AutomountServiceAccountToken: ptr.To(false)},
	}
	if _, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	readyPod(ctx, t, cs, pause)
}

// forwardedMessage calls the pod through a port-forward (API server →
// kubelet → the pod's network namespace) and returns the "message" of the
// answer.
func forwardedMessage(ctx context.Context, t *testing.T, node *kubenode.Node, pod *corev1.Pod) string {
	t.Helper()
	transport, upgrader, err := spdy.RoundTripperFor(node.Config)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(node.Config)
	if err != nil {
		t.Fatal(err)
	}
	url := cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(pod.Namespace).Name(pod.Name).SubResource("portforward").URL()
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, url)
	stop, ready := make(chan struct{}), make(chan struct{})
	defer close(stop)
	fw, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{"0:" + strconv.Itoa(kube.FunctionPort)}, stop, ready, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 1)
	go func() { errs <- fw.ForwardPorts() }()
	select {
	case <-ready:
	case err := <-errs:
		t.Fatalf("port-forward to the pod %s: %v", pod.Name, err)
	case <-time.After(hang):
		t.Fatalf("port-forward to the pod %s not ready within %s", pod.Name, hang)
	}
	ports, err := fw.GetPorts()
	if err != nil || len(ports) != 1 {
		t.Fatalf("port-forward ports: %v %v", ports, err)
	}
	forwarded := *pod
	forwarded.Status.PodIP = "127.0.0.1"
	return messageAt(ctx, t, &forwarded, int(ports[0].Local))
}
