package test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/ferrycd/ferry/environments/kube"
	"github.com/ferrycd/ferry/internal/kubenode"
	"github.com/ferrycd/ferry/server"
	"github.com/ferrycd/ferry/store"
	"github.com/ferrycd/ferry/test/gitserver"
	"github.com/ferrycd/ferry/test/testreg"
)

// nodeHang bounds each wait of the kube node test, only to catch a hang:
// a commit reaches a pod in well under a minute.
const nodeHang = 5 * time.Minute

// stagingNS is the namespace of the test's kube environment.
const stagingNS = "ferry-staging"

// TestKubeNodeCommitToPod runs ferry end to end on a real single-node
// cluster (internal/kubenode): a commit of a Go function is built by
// `ferry serve`, pushed to its embedded registry on loopback, deployed to
// dev (embedded) and promoted to staging (target: kube), where `ferry
// controller` makes the Deployment and a pod pulled by digest answers
// HTTP at its pod IP with the commit's code. The staging stage's checks
// (an HTTP check and an event check) go through the kube target's
// port-forward and must pass. A second commit replaces the pod's code
// and digest; `ferry rollback staging` brings the first back.
//
// The controller runs out of the cluster, as the built binary with the
// node's kubeconfig: the node's API server listens on the host's
// loopback only and no kube-proxy runs, so a pod on the bridge network
// cannot reach it, and in-cluster `ferry install --push` would not work
// here. The Deployments it makes are the same either way.
//
// With FERRY_BENCH_KUBE_NODE set it prints the figure test/bench/kube-node.sh
// reports.
func TestKubeNodeCommitToPod(t *testing.T) {
	// why: its own API server (or node) and ports; it overlaps the others.
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("the kube node needs root (a kubelet)")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 4*nodeHang)
	defer cancel()

	// The node pulls from two loopback registries: one that carries its
	// pause image (it must answer when the node starts), and ferry
	// serve's own, whose port is chosen now and which listens once
	// ferry serve runs.
	pauseReg := testreg.Embedded(t, "")
	regAddr := freeAddr(t)
	node := kubenode.Start(t, pauseReg.Addr, regAddr)
	t.Logf("node Ready in %s", node.Started.Round(100*time.Millisecond))
	cs, err := kubernetes.NewForConfig(node.Config)
	if err != nil {
		t.Fatal(err)
	}

	// ferry's CRDs and Gateway API's HTTPRoute CRD, then the controller.
	gwDir, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/gateway-api").Output()
	if err != nil {
		t.Fatalf("finding the gateway-api module: %v", err)
	}
	nodeKubectl(t, node, "apply", "--server-side", "-f", filepath.Join(root, "config", "crd"),
		"-f", filepath.Join(strings.TrimSpace(string(gwDir)), "config", "crd", "standard", "gateway.networking.k8s.io_httproutes.yaml"))
	nodeKubectl(t, node, "wait", "--for=condition=Established", "--timeout=2m", "crd", "--all")
	startController(t, "the node", node.Kubeconfig)

	// A Go repository: dev auto, staging auto with an HTTP check and an
	// event check that want the commit's greeting.
	srv := gitserver.Start(t, "", "")
	url := srv.Create(t, "shop")
	work := t.TempDir()
	if err := os.CopyFS(work, os.DirFS(filepath.Join(root, "examples", "go"))); err != nil {
		t.Fatal(err)
	}
	writeGoGreeting(t, work, "hello from the first pod")
	gitserver.Git(t, work, "init", "-q", "-b", "main")
	gitserver.Git(t, work, "add", "-A")
	gitserver.Git(t, work, "commit", "-q", "-m", "the go example")
	gitserver.Git(t, work, "remote", "add", "origin", srv.PushURL(url))

	cfg := writeServeConfig(t, fmt.Sprintf(`- {name: shop, url: %q, branch: main, interval: 1s}`, url))
	nodeServeConfig(t, cfg, regAddr, node.Kubeconfig)
	p := startServe(t, cfg)
	c := p.client(t)

	pushed := time.Now()
	gitserver.Git(t, work, "push", "-q", "origin", "main")
	pod1, firstAnswer := waitPodAnswer(ctx, t, p, cs, "hello from the first pod")
	firstToPod := firstAnswer.Sub(pushed)
	t.Logf("first commit pushed → its pod %s answering: %s (ferry serve started just before; a cold build cache)",
		pod1.Status.PodIP, firstToPod.Round(100*time.Millisecond))
	first := stagingPassed(ctx, t, p, c, "")
	firstImage := checkPodImage(t, c, pod1)
	checkObjects(t, node, first)

	// The second commit, with other output: staging's pod serves it.
	pushed = time.Now()
	writeGoGreeting(t, work, "hello from the second pod")
	gitserver.Git(t, work, "commit", "-q", "-a", "-m", "greet from the second pod")
	gitserver.Git(t, work, "push", "-q", "origin", "main")
	pod2, secondAnswer := waitPodAnswer(ctx, t, p, cs, "hello from the second pod")
	commitToPod := secondAnswer.Sub(pushed)
	t.Logf("second commit pushed → its pod %s answering: %s", pod2.Status.PodIP, commitToPod.Round(100*time.Millisecond))
	second := stagingPassed(ctx, t, p, c, first)
	logSteps(t, p, c, strings.TrimSpace(gitserver.Git(t, work, "rev-parse", "HEAD")), pushed)
	secondImage := checkPodImage(t, c, pod2)
	if digestOf(secondImage) == digestOf(firstImage) {
		t.Fatalf("both commits run %s", secondImage)
	}
	checkObjects(t, node, second)

	// ferry rollback staging: the first release's digest answers again.
	r := ferry(t, "rollback", "staging", "--server", p.api, "--token", serveToken)
	if r.code != 0 || !strings.Contains(r.stdout, "staging now runs "+store.Short(first)) {
		t.Fatalf("ferry rollback staging: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	pod3, _ := waitPodAnswer(ctx, t, p, cs, "hello from the first pod")
	if got := checkPodImage(t, c, pod3); digestOf(got) != digestOf(firstImage) {
		t.Errorf("after the rollback staging runs %s, want %s", got, firstImage)
	}
	if e := environment(t, c, "staging"); e.Release != first {
		t.Errorf("after the rollback staging's release is %s, want %s", e.Release, first)
	}

	t.Logf("kubectl get functions,pods -n %s -o wide:\n%s", stagingNS,
		nodeKubectl(t, node, "get", "functions,pods", "-n", stagingNS, "-o", "wide"))
	if os.Getenv("FERRY_BENCH_KUBE_NODE") != "" {
		fmt.Printf("kube-node: commit_to_pod_s=%.1f first_commit_to_pod_s=%.1f node_ready_s=%.1f\n",
			commitToPod.Seconds(), firstToPod.Seconds(), node.Started.Seconds())
	}
}

// logSteps logs where the time from the push to the run's end went, step
// by step: the figure's breakdown.
func logSteps(t *testing.T, p *serveProc, c *server.Client, commit string, pushed time.Time) {
	t.Helper()
	run := runOf(t, p, c, commit)
	parts := []string{fmt.Sprintf("queued %s after the push", run.Created.Sub(pushed).Round(100*time.Millisecond))}
	for _, st := range run.Steps {
		parts = append(parts, fmt.Sprintf("%s %s", st.Name, st.Ended.Sub(st.Started).Round(100*time.Millisecond)))
	}
	t.Logf("the run of the second commit: %s", strings.Join(parts, ", "))
}

// nodeKubectl runs the node's kubectl and returns its output; a failure
// fails the test.
func nodeKubectl(t *testing.T, node *kubenode.Node, args ...string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(node.Bin, "kubectl"), append([]string{"--kubeconfig", node.Kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// nodeServeConfig changes a writeServeConfig configuration: its embedded
// registry listens at reg (where the node pulls from), staging is a kube
// environment on the node in namespace stagingNS, and there is no prod.
func nodeServeConfig(t *testing.T, cfg serveConfig, reg, kubeconfig string) {
	t.Helper()
	b, err := os.ReadFile(cfg.path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		switch {
		case strings.HasPrefix(l, "registryListen: "):
			l = "registryListen: " + reg
		case l == "- {name: staging}":
			l = fmt.Sprintf("- {name: staging, target: kube, kube: {kubeconfig: %q, namespace: %s}}", kubeconfig, stagingNS)
		case l == "- {name: prod}":
			continue
		}
		lines = append(lines, l)
	}
	if err := os.WriteFile(cfg.path, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
}

// testGreetingRE is the greeting examples/go/hello/hello_test.go wants.
var testGreetingRE = regexp.MustCompile(`"message":"[^"]*"`)

// writeGoGreeting makes the Go example in work answer greeting, run at
// least one pod (Kubernetes does not scale to zero), and have staging's
// checks want greeting: an HTTP check through the trigger /hello and an
// event check to the function.
func writeGoGreeting(t *testing.T, work, greeting string) {
	t.Helper()
	src := filepath.Join(work, "hello", "hello.go")
	code, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	s := string(code)
	i := strings.Index(s, "Reply{Message: ")
	if i < 0 {
		t.Fatal("examples/go/hello/hello.go no longer makes a Reply{Message: ...}; update this test")
	}
	j := strings.Index(s[i:], ",")
	s = s[:i] + "Reply{Message: " + strconv.Quote(greeting) + s[i+j:]
	if err := os.WriteFile(src, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	// The example's own test, which the run's test step runs, wants the
	// greeting too.
	test := filepath.Join(work, "hello", "hello_test.go")
	code, err = os.ReadFile(test)
	if err != nil {
		t.Fatal(err)
	}
	changed := testGreetingRE.ReplaceAll(code, []byte(`"message":"`+greeting+`"`))
	if string(changed) == string(code) {
		t.Fatal(`examples/go/hello/hello_test.go no longer wants {"message":"..."}; update this test`)
	}
	if err := os.WriteFile(test, changed, 0o644); err != nil {
		t.Fatal(err)
	}
	manifest, err := os.ReadFile(filepath.Join(root, "examples", "go", "ferry.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	m := strings.Replace(string(manifest), "scale: {min: 0, max: 5}", "scale: {min: 1, max: 5}", 1)
	if m == string(manifest) {
		t.Fatal("examples/go/ferry.yaml no longer says scale: {min: 0, max: 5}; update this test")
	}
	m += fmt.Sprintf(`---
apiVersion: ferry.dev/v1alpha1
kind: Pipeline
spec:
  stages:
  - {name: dev, auto: true}
  - name: staging
    auto: true
    verify:
    - {name: greets, http: {path: /hello, method: POST, body: '{"from":"verify"}', expectStatus: 200, bodyContains: %[1]q}}
    - {name: hears, event: {function: hello, data: {from: event}, expectStatus: 200, bodyContains: %[1]q}}
`, greeting)
	if err := os.WriteFile(filepath.Join(work, "ferry.yaml"), []byte(m), 0o644); err != nil {
		t.Fatal(err)
	}
}

// waitPodAnswer waits until every pod of the function hello in staging
// is Ready and answers want at its pod IP, port 8080 (the address the API
// reports for it), and returns one of them and when a pod first answered
// want.
func waitPodAnswer(ctx context.Context, t *testing.T, p *serveProc, cs kubernetes.Interface, want string) (*corev1.Pod, time.Time) {
	t.Helper()
	deadline := time.Now().Add(nodeHang)
	var first time.Time
	last := ""
	for time.Now().Before(deadline) {
		pods, err := cs.CoreV1().Pods(stagingNS).List(ctx, metav1.ListOptions{LabelSelector: kube.LabelFunction + "=hello"})
		if err != nil {
			t.Fatal(err)
		}
		var answering *corev1.Pod
		all := len(pods.Items) > 0
		last = ""
		for i := range pods.Items {
			pod := &pods.Items[i]
			got, err := podMessage(ctx, pod)
			if err != nil {
				got = err.Error()
			}
			last += fmt.Sprintf("\n  %s %s %s: %s", pod.Name, pod.Status.Phase, pod.Status.PodIP, got)
			if got == want && pod.DeletionTimestamp == nil {
				answering = pod
				if first.IsZero() {
					first = time.Now()
				}
			} else {
				all = false
			}
		}
		if answering != nil && all {
			return answering, first
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the pods of hello in %s did not all answer %q within %s; pods:%s\nruns:\n%s\nferry serve said:\n%s",
		stagingNS, want, nodeHang, last, p.runsReport(t), p.output)
	return nil, time.Time{}
}

// podMessage calls the function at its pod's IP, as a plain HTTP client
// on the node's network would, and returns its answer's message.
func podMessage(ctx context.Context, pod *corev1.Pod) (string, error) {
	if pod.Status.PodIP == "" {
		return "", fmt.Errorf("no pod IP yet")
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	url := "http://" + net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(kube.FunctionPort)) + "/"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(`{"from":"kubenode"}`))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var out struct {
		Message string          `json:"message"`
		Echo    json.RawMessage `json:"echo"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &out) != nil {
		return "", fmt.Errorf("%s: %s", resp.Status, body)
	}
	if string(out.Echo) != `{"from":"kubenode"}` {
		return "", fmt.Errorf("echoed %s, not the request's data", out.Echo)
	}
	return out.Message, nil
}

// stagingPassed waits until staging runs a release other than previous
// whose deployment's checks passed, and returns the release.
func stagingPassed(ctx context.Context, t *testing.T, p *serveProc, c *server.Client, previous string) string {
	t.Helper()
	deadline := time.Now().Add(nodeHang)
	last := ""
	for time.Now().Before(deadline) {
		page, err := c.History(ctx, "staging", 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Items) > 0 {
			d := page.Items[0]
			last = fmt.Sprintf("%+v", d)
			if d.Release != previous && d.Kind == "" && d.Status == store.DeploymentSucceeded {
				switch d.Verification {
				case store.VerificationPassed:
					// Both checks ran, through the kube target's
					// port-forward: the stage has no gateway URL.
					pr := promotionOf(t, p, c, d.Release, "staging", "succeeded")
					if pr.Reason != "verified: 2 checks passed" {
						t.Errorf("the promotion of %s into staging: %q, want both checks passed", d.Release, pr.Reason)
					}
					return d.Release
				case store.VerificationFailed, store.VerificationNone:
					t.Fatalf("staging's deployment of %s: verification %s, want passed: %+v\n%s", d.Release, d.Verification, d, p.output)
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("staging did not deploy a release after %q with its checks passed within %s; newest deployment: %s\n%s", previous, nodeHang, last, p.output)
	return ""
}

// checkPodImage checks that pod runs, by digest, the image ferry reports
// for hello in staging, and returns that image.
func checkPodImage(t *testing.T, c *server.Client, pod *corev1.Pod) string {
	t.Helper()
	image := functionImage(t, c, "staging", "hello")
	digest := digestOf(image)
	if !strings.HasPrefix(digest, "sha256:") {
		t.Fatalf("staging's hello runs %q, not an image by digest", image)
	}
	if len(pod.Status.ContainerStatuses) != 1 {
		t.Fatalf("pod %s has %d container statuses, want 1", pod.Name, len(pod.Status.ContainerStatuses))
	}
	st := pod.Status.ContainerStatuses[0]
	if !strings.HasSuffix(st.ImageID, "@"+digest) {
		t.Errorf("pod %s: imageID %q, want the release's %s", pod.Name, st.ImageID, digest)
	}
	if spec := pod.Spec.Containers[0].Image; spec != image {
		t.Errorf("pod %s: image %q, want %q", pod.Name, spec, image)
	}
	t.Logf("pod %s at %s runs %s (imageID %s)", pod.Name, pod.Status.PodIP, image, st.ImageID)
	return image
}

// digestOf is the sha256:… of an image reference by digest.
func digestOf(image string) string {
	_, d, _ := strings.Cut(image, "@")
	return d
}

// checkObjects checks the kube environment's objects for release: the
// Function carries it, and the HTTPTrigger's HTTPRoute exists (there is
// no Gateway controller here: the route is checked as an object only).
func checkObjects(t *testing.T, node *kubenode.Node, release string) {
	t.Helper()
	label := kube.ReleaseLabel(strings.TrimPrefix(release, "sha256:"))
	got := nodeKubectl(t, node, "get", "functions,httptriggers", "-n", stagingNS, "-l", "ferry.dev/release="+label, "-o", "name")
	for _, want := range []string{"function.ferry.dev/hello", "httptrigger.ferry.dev/hello"} {
		if !strings.Contains(got, want) {
			t.Errorf("no %s of release %s in %s; got:\n%s", want, release, stagingNS, got)
		}
	}
	var route struct {
		Spec struct {
			Rules []struct {
				Matches []struct {
					Path struct{ Value string }
				}
				BackendRefs []struct {
					Name string
					Port int
				}
			}
		}
	}
	deadline := time.Now().Add(nodeHang)
	for {
		out := nodeKubectl(t, node, "get", "httproutes.gateway.networking.k8s.io", "-n", stagingNS, "-o", "json", "--ignore-not-found", "hello")
		if strings.TrimSpace(out) != "" {
			if err := json.Unmarshal([]byte(out), &route); err != nil {
				t.Fatalf("HTTPRoute hello: %v\n%s", err, out)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no HTTPRoute hello in %s within %s", stagingNS, nodeHang)
		}
		time.Sleep(200 * time.Millisecond)
	}
	ok := false
	for _, r := range route.Spec.Rules {
		for _, b := range r.BackendRefs {
			for _, m := range r.Matches {
				if b.Name == "hello" && m.Path.Value == "/hello" {
					ok = true
				}
			}
		}
	}
	if !ok {
		t.Errorf("HTTPRoute hello does not route /hello to the Service hello: %+v", route.Spec)
	}
}
