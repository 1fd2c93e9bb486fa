package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/ferrycd/ferry/environments/kube"
	"github.com/ferrycd/ferry/internal/kubetest"
	"github.com/ferrycd/ferry/server"
	"github.com/ferrycd/ferry/store"
	"github.com/ferrycd/ferry/test/gitserver"
	"github.com/ferrycd/ferry/test/testreg"
)

// kubeGoManifest is the Go example's function as a cluster can run it:
// scale.min 1, since nothing on Kubernetes starts a pod on the first
// request. Its test command is left out: the dev run need not prove the
// example again.
const kubeGoManifest = `apiVersion: ferry.dev/v1alpha1
kind: Function
metadata:
  name: hello
spec:
  runtime: go
  handler: Handle
  source: hello
  timeout: 10s
  memory: 64Mi
  scale: {min: 1, max: 3}
---
apiVersion: ferry.dev/v1alpha1
kind: Pipeline
spec:
  stages:
  - {name: dev, auto: true}
  - {name: staging, auto: true}
  - name: prod
    approval: {required: 1}
`

// kubeHTTPTrigger is what the second commit adds.
const kubeHTTPTrigger = `---
apiVersion: ferry.dev/v1alpha1
kind: HTTPTrigger
metadata:
  name: hello
spec:
  function: hello
  path: /hello
  methods: [GET, POST]
`

// kubeEnvironments replaces writeServeConfig's staging and prod: staging
// in cluster A, prod in cluster B. The README's two-cluster example is
// this block.
const kubeEnvironments = `- name: staging
  target: kube
  kube:
    kubeconfig: cluster-a.kubeconfig
    context: envtest
    namespace: ferry-staging
- name: prod
  target: kube
  kube:
    kubeconfig: cluster-b.kubeconfig
    context: envtest
    namespace: ferry-prod
`

// startController runs `ferry controller` (the built binary, out of the
// cluster) with kubeconfig and args until the test ends, waits until it
// says it is ready, and shows what it said when the test failed. where
// names the cluster in the test's messages.
func startController(t *testing.T, where, kubeconfig string, args ...string) {
	t.Helper()
	probe := freeAddr(t)
	cmd := exec.Command(ferryBin, append([]string{"controller", "--kubeconfig", kubeconfig,
		"--metrics-bind-address", "0", "--health-probe-bind-address", probe}, args...)...)
	out := &testreg.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(time.Minute):
			cmd.Process.Kill()
			<-done
			t.Errorf("ferry controller on %s did not stop on SIGTERM", where)
		}
		if t.Failed() {
			t.Logf("ferry controller on %s said:\n%s", where, out)
		}
	})
	for deadline := time.Now().Add(time.Minute); ; {
		if resp, err := http.Get("http://" + probe + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case err := <-done:
			t.Fatalf("ferry controller on %s exited (%v):\n%s", where, err, out)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("ferry controller on %s was not ready within a minute:\n%s", where, out)
		}
	}
}

// startKubeCluster starts a real API server and `ferry controller` (the
// built binary, out of the cluster, through the kubeconfig) on it, and
// plays the kubelet's and the deployment controller's part (see
// fakeRollouts). All of it stops when the test ends.
func startKubeCluster(t *testing.T, name string) *kubetest.Cluster {
	t.Helper()
	c := kubetest.Start(t)
	startController(t, "cluster "+name, c.Kubeconfig, "--context", "envtest")

	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		fakeRollouts(ctx, t, c)
	}()
	t.Cleanup(func() { cancel(); <-stopped })
	return c
}

// fakeRollouts stands in for what envtest lacks: it has no kubelet and
// no deployment controller, so nothing makes pods and no Deployment's
// status ever changes. For each Deployment ferry's controller made, this
// loop writes, through the status subresource, the status the deployment
// controller would write once every pod of the current template is
// ready; ferry's controller then sees a finished rollout. Real pods are
// the real-node test's part (internal/kubenode), not this one's.
func fakeRollouts(ctx context.Context, t *testing.T, c *kubetest.Cluster) {
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		t.Errorf("a client for the rollouts: %v", err)
		return
	}
	for {
		// A failed list (the API server stopping) is tried again next round.
		var items []appsv1.Deployment
		if deps, err := cs.AppsV1().Deployments("").List(ctx, metav1.ListOptions{LabelSelector: kube.LabelManagedBy + "=" + kube.ManagedBy}); err == nil {
			items = deps.Items
		}
		for i := range items {
			d := &items[i]
			want := int32(1)
			if d.Spec.Replicas != nil {
				want = *d.Spec.Replicas
			}
			st := d.Status
			if st.ObservedGeneration == d.Generation && st.UpdatedReplicas == want && st.AvailableReplicas == want {
				continue
			}
			now := metav1.Now()
			d.Status = appsv1.DeploymentStatus{
				ObservedGeneration: d.Generation,
				Replicas:           want,
				UpdatedReplicas:    want,
				ReadyReplicas:      want,
				AvailableReplicas:  want,
				Conditions: []appsv1.DeploymentCondition{
					{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Reason: "MinimumReplicasAvailable",
						Message: "Deployment has minimum availability.", LastUpdateTime: now, LastTransitionTime: now},
					{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: "NewReplicaSetAvailable",
						Message: fmt.Sprintf("ReplicaSet %q has successfully progressed.", d.Name), LastUpdateTime: now, LastTransitionTime: now},
				},
			}
			// A conflict is a newer Deployment: the next round takes it.
			_, _ = cs.AppsV1().Deployments(d.Namespace).UpdateStatus(ctx, d, metav1.UpdateOptions{})
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// kubeRepo is the Go example with kubeGoManifest as its ferry.yaml,
// pushed to srv.
func kubeRepo(t *testing.T, srv *gitserver.Server, name string) (url, work string) {
	t.Helper()
	url = srv.Create(t, name)
	work = t.TempDir()
	if err := os.CopyFS(work, os.DirFS(filepath.Join(root, "examples", "go"))); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "ferry.yaml"), []byte(kubeGoManifest), 0o644); err != nil {
		t.Fatal(err)
	}
	gitserver.Git(t, work, "init", "-q", "-b", "main")
	gitserver.Git(t, work, "add", "-A")
	gitserver.Git(t, work, "commit", "-q", "-m", "the go example, scale.min 1")
	gitserver.Git(t, work, "remote", "add", "origin", srv.PushURL(url))
	gitserver.Git(t, work, "push", "-q", "origin", "main")
	return url, work
}

// kubeServeConfig is writeServeConfig with staging on cluster a and prod
// on cluster b (kubeEnvironments), their kubeconfigs beside the file.
func kubeServeConfig(t *testing.T, source string, a, b *kubetest.Cluster) serveConfig {
	t.Helper()
	cfg := writeServeConfig(t, source)
	dir := filepath.Dir(cfg.path)
	for file, c := range map[string]*kubetest.Cluster{"cluster-a.kubeconfig": a, "cluster-b.kubeconfig": b} {
		kc, err := os.ReadFile(c.Kubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, file), kc, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	body, err := os.ReadFile(cfg.path)
	if err != nil {
		t.Fatal(err)
	}
	const plain = "- {name: staging}\n- {name: prod}\n"
	if !strings.Contains(string(body), plain) {
		t.Fatalf("writeServeConfig's environments changed; kubeServeConfig looks for:\n%s", plain)
	}
	body = []byte(strings.Replace(string(body), plain, kubeEnvironments, 1))
	if err := os.WriteFile(cfg.path, body, 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// kubeWait polls f until it says done, failing with its last word
// after within (10x what it should take: only a hang gets there).
func kubeWait(t *testing.T, within time.Duration, f func() (string, bool)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		last, done := f()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", within, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// kubeObject is what the test reads of one object on a cluster: its
// image, labels and release annotation, or "" for each when it is not
// there.
type kubeObject struct {
	found                 bool
	image                 string
	managedBy, env, label string
	annotation            string
}

// readKube reads KIND/NAME in namespace through kubectl.
func readKube(t *testing.T, c *kubetest.Cluster, ns, kind, name string) kubeObject {
	t.Helper()
	imagePath := "{.spec.image}"
	if kind == "deployment" {
		imagePath = "{.spec.template.spec.containers[0].image}"
	}
	out, err := kubectl(t, c, "", "get", kind, name, "-n", ns, "--ignore-not-found", "-o", "jsonpath="+imagePath+
		`|{.metadata.labels.app\.kubernetes\.io/managed-by}|{.metadata.labels.ferry\.dev/environment}|{.metadata.labels.ferry\.dev/release}|{.metadata.annotations.ferry\.dev/release-digest}`)
	if err != nil {
		t.Fatalf("kubectl get %s %s -n %s: %v", kind, name, ns, err)
	}
	out = strings.TrimSpace(out)
	if out == "" {
		return kubeObject{}
	}
	f := strings.Split(out, "|")
	if len(f) != 5 {
		t.Fatalf("kubectl get %s %s -n %s printed %q", kind, name, ns, out)
	}
	return kubeObject{found: true, image: f[0], managedBy: f[1], env: f[2], label: f[3], annotation: f[4]}
}

// pinnedDigest is the sha256 hex of an image reference by digest.
var pinnedDigest = regexp.MustCompile(`@sha256:([0-9a-f]{64})$`)

// checkRelease asserts that env's Function hello and the controller's
// Deployment on c run image (of release), carrying ferry's labels and
// annotation; it waits for the Deployment, which the controller updates
// after ferry's apply.
func checkRelease(t *testing.T, c *kubetest.Cluster, ns, env, release, image string) {
	t.Helper()
	fn := readKube(t, c, ns, "function", "hello")
	want := kubeObject{found: true, image: image, managedBy: kube.ManagedBy, env: env, label: kube.ReleaseLabel(release), annotation: release}
	if fn != want {
		t.Errorf("%s's Function hello:\n got %+v\nwant %+v", env, fn, want)
	}
	kubeWait(t, 30*time.Second, func() (string, bool) {
		d := readKube(t, c, ns, "deployment", "hello")
		return fmt.Sprintf("%s's Deployment hello runs %q, want %q (its labels: %+v)", env, d.image, image, d), d.image == image && d.env == env && d.label == kube.ReleaseLabel(release)
	})
	// The controller's Service and HorizontalPodAutoscaler, of the same
	// release (applied after the Deployment, in the same reconcile).
	rl := kube.ReleaseLabel(release)
	wantKinds := "Service=" + rl + " HorizontalPodAutoscaler=" + rl
	kubeWait(t, 30*time.Second, func() (string, bool) {
		out := mustKubectl(t, c, "", "get", "service/hello", "horizontalpodautoscaler/hello", "-n", ns, "-o",
			`jsonpath={range .items[*]}{.kind}={.metadata.labels.ferry\.dev/release}{"\n"}{end}`)
		got := strings.Join(strings.Fields(out), " ")
		return fmt.Sprintf("%s's Service and HPA hello: %q, want %q", env, got, wantKinds), got == wantKinds
	})
}

// statusOf is `ferry status ENV -o json`.
func statusOf(t *testing.T, p *serveProc, env string) server.EnvironmentView {
	t.Helper()
	r := ferry(t, "status", env, "-o", "json", "--server", p.api, "--token", serveToken)
	if r.code != 0 {
		t.Fatalf("ferry status %s: exit %d\n%s%s", env, r.code, r.stdout, r.stderr)
	}
	var views []server.EnvironmentView
	if err := json.Unmarshal([]byte(r.stdout), &views); err != nil || len(views) != 1 || views[0].Name != env {
		t.Fatalf("ferry status %s -o json: %v; want that one environment:\n%s", env, err, r.stdout)
	}
	return views[0]
}

// releaseManifest is `ferry releases ID -o json`'s manifest.
func releaseManifest(t *testing.T, p *serveProc, id string) string {
	t.Helper()
	r := ferry(t, "releases", id, "-o", "json", "--server", p.api, "--token", serveToken)
	var v server.ReleaseView
	if err := json.Unmarshal([]byte(r.stdout), &v); r.code != 0 || err != nil {
		t.Fatalf("ferry releases %s -o json: exit %d, %v\n%s%s", id, r.code, err, r.stdout, r.stderr)
	}
	return v.Manifest
}

// TestKubePromotesAcrossClusters is issue 15's promotion across
// clusters on real API servers: dev on the embedded target, staging on
// cluster A, prod on cluster B behind one approval, each cluster with
// ferry's controller running as a process. A release reaches B with the
// digests it had on A; a second release adds an HTTPTrigger; `ferry
// rollback prod` puts the first digests back on B and prunes the
// trigger.
func TestKubePromotesAcrossClusters(t *testing.T) {
	t.Parallel()
	a, b := startKubeCluster(t, "A"), startKubeCluster(t, "B")
	srv := gitserver.Start(t, "", "")
	url, work := kubeRepo(t, srv, "shop")
	p := startServe(t, kubeServeConfig(t, fmt.Sprintf(`- {name: shop, url: %q, branch: main, interval: 1s}`, url), a, b))
	c := p.client(t)
	cli := func(args ...string) result {
		return ferry(t, append(args, "--server", p.api, "--token", serveToken)...)
	}

	// Commit → dev → staging, by themselves (the first commit routes no
	// path: dev is asked through the API, not its gateway).
	first := liveReleaseOf(t, p, c, "staging", "", 300*time.Second)
	if dev := liveReleaseOf(t, p, c, "dev", "", 60*time.Second); dev != first {
		t.Errorf("dev runs %s, staging %s: want the same release", dev, first)
	}
	stagingFn := readKube(t, a, "ferry-staging", "function", "hello")
	if !pinnedDigest.MatchString(stagingFn.image) {
		t.Fatalf("cluster A's Function hello runs %q, not an image by digest", stagingFn.image)
	}
	firstImage := stagingFn.image
	if m := releaseManifest(t, p, first); !strings.Contains(m, firstImage) {
		t.Errorf("release %s's manifest does not name the image cluster A runs, %s:\n%s", first, firstImage, m)
	}
	checkRelease(t, a, "ferry-staging", "staging", first, firstImage)
	if out := mustKubectl(t, b, "", "get", "functions", "-A", "-o", "name"); strings.TrimSpace(out) != "" {
		t.Errorf("cluster B holds Functions before any approval: %s", out)
	}

	// One approval lets it into prod: cluster B gets the same digests.
	pending := pendingProd(t, p, c, "")
	if pending.Release != first {
		t.Fatalf("the promotion into prod is of %s, want %s", pending.Release, first)
	}
	if r := cli("approve", fmt.Sprint(pending.ID), "--comment", "staging looks right"); r.code != 0 {
		t.Fatalf("ferry approve %d: exit %d\n%s%s", pending.ID, r.code, r.stdout, r.stderr)
	}
	if got := liveReleaseOf(t, p, c, "prod", "", 120*time.Second); got != first {
		t.Fatalf("prod runs %s, want %s", got, first)
	}
	checkRelease(t, b, "ferry-prod", "prod", first, firstImage)
	st := statusOf(t, p, "prod")
	if st.Release != first || st.Target != "kube" || len(st.Functions) != 1 || st.Functions[0].Image != firstImage || st.Functions[0].State != "running" {
		t.Errorf("ferry status prod: %+v; want release %s, target kube, hello running %s", st, first, firstImage)
	}

	// A second commit with changed code and an HTTPTrigger.
	hello := filepath.Join(work, "hello", "hello.go")
	src, err := os.ReadFile(hello)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(hello, []byte(strings.Replace(string(src), `"hello from go"`, `"hello again from go"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(work, "ferry.yaml"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(kubeHTTPTrigger)
	f.Close()
	gitserver.Git(t, work, "commit", "-q", "-a", "-m", "greet again; route /hello")
	gitserver.Git(t, work, "push", "-q", "origin", "main")

	waitIn(t, p, "dev", "hello again from go", 300*time.Second)
	second := liveReleaseOf(t, p, c, "staging", first, 300*time.Second)
	pending = pendingProd(t, p, c, first)
	if r := cli("approve", fmt.Sprint(pending.ID)); r.code != 0 {
		t.Fatalf("ferry approve %d: exit %d\n%s%s", pending.ID, r.code, r.stdout, r.stderr)
	}
	if got := liveReleaseOf(t, p, c, "prod", first, 120*time.Second); got != second {
		t.Fatalf("prod runs %s, want %s", got, second)
	}
	secondImage := readKube(t, a, "ferry-staging", "function", "hello").image
	if secondImage == firstImage || !pinnedDigest.MatchString(secondImage) {
		t.Fatalf("the second release's image on cluster A is %q (the first's: %s)", secondImage, firstImage)
	}
	checkRelease(t, b, "ferry-prod", "prod", second, secondImage)
	if tr := readKube(t, b, "ferry-prod", "httptrigger", "hello"); !tr.found || tr.env != "prod" || tr.annotation != second {
		t.Errorf("cluster B's HTTPTrigger hello after the second release: %+v", tr)
	}

	// ferry rollback prod: the first release's digests are back on B,
	// and the trigger only the second release had is pruned.
	r := cli("rollback", "prod")
	if r.code != 0 || !strings.Contains(r.stdout, "prod now runs "+store.Short(first)) {
		t.Fatalf("ferry rollback prod: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if got := liveReleaseOf(t, p, c, "prod", second, 120*time.Second); got != first {
		t.Fatalf("prod runs %s after the rollback, want %s", got, first)
	}
	checkRelease(t, b, "ferry-prod", "prod", first, firstImage)
	kubeWait(t, 30*time.Second, func() (string, bool) {
		tr := readKube(t, b, "ferry-prod", "httptrigger", "hello")
		return fmt.Sprintf("cluster B still holds the second release's HTTPTrigger hello: %+v", tr), !tr.found
	})
	if tr := readKube(t, a, "ferry-staging", "httptrigger", "hello"); !tr.found || tr.annotation != second {
		t.Errorf("the rollback of prod touched staging's HTTPTrigger on cluster A: %+v", tr)
	}

	// ferry status reads prod from cluster B: its release, hello running
	// on the first image.
	kubeWait(t, 30*time.Second, func() (string, bool) {
		st := statusOf(t, p, "prod")
		ok := st.Release == first && len(st.Functions) == 1 && st.Functions[0].Image == firstImage && st.Functions[0].State == "running"
		return fmt.Sprintf("ferry status prod: %+v; want %s, hello running %s", st, first, firstImage), ok
	})
	table := cli("status", "prod")
	if table.code != 0 || !strings.Contains(table.stdout, store.Short(first)) || !strings.Contains(table.stdout, "running") {
		t.Errorf("ferry status prod: exit %d\n%s%s", table.code, table.stdout, table.stderr)
	}

	// kubectl on cluster B: RUNTIME, the running digest's 12 hex, READY.
	lines := strings.Split(strings.TrimSpace(mustKubectl(t, b, "", "get", "functions", "-n", "ferry-prod")), "\n")
	want := []string{"hello", "go", pinnedDigest.FindStringSubmatch(firstImage)[1][:12], "True"}
	if len(lines) != 2 || strings.Join(strings.Fields(lines[0]), " ") != "NAME RUNTIME DIGEST READY AGE" {
		t.Fatalf("kubectl get functions -n ferry-prod:\n%s", strings.Join(lines, "\n"))
	}
	if row := strings.Fields(lines[1]); len(row) != 5 || strings.Join(row[:4], " ") != strings.Join(want, " ") {
		t.Errorf("kubectl get functions -n ferry-prod: row %q, want %q and an age", row, want)
	}

	// ferry serve stopping stops its own (embedded) functions only: the
	// clusters keep running what they run.
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("ferry serve did not stop on SIGTERM:\n%s", p.output)
	}
	if fn := readKube(t, b, "ferry-prod", "function", "hello"); fn.image != firstImage {
		t.Errorf("after ferry serve stopped, cluster B's Function hello is %+v; want it left running %s", fn, firstImage)
	}
	if fn := readKube(t, a, "ferry-staging", "function", "hello"); fn.image != secondImage {
		t.Errorf("after ferry serve stopped, cluster A's Function hello is %+v; want it left running %s", fn, secondImage)
	}
}

// liveReleaseOf waits until env runs a settled release other than not,
// and returns it.
func liveReleaseOf(t *testing.T, p *serveProc, c *server.Client, env, not string, within time.Duration) string {
	t.Helper()
	var got string
	deadline := time.Now().Add(within)
	for {
		envs, err := c.Environments(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range envs {
			if e.Name == env && e.Release != "" && e.Release != not && e.Error == "" {
				got = e.Release
			}
		}
		if got != "" {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("environment %s runs no release but %q after %s: %+v\n%s", env, not, within, envs, p.runsReport(t))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestKubeRefusesScratchPython: a Python function built on scratch runs
// only with the host's interpreter, so a Kubernetes environment refuses
// its release, saying how to build it, and the cluster is left as it was.
func TestKubeRefusesScratchPython(t *testing.T) {
	t.Parallel()
	a := kubetest.Start(t)
	srv := gitserver.Start(t, "", "")
	url, _ := pythonRepo(t, srv, "scratch", func(dir string) {
		p := filepath.Join(dir, "ferry.yaml")
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		// scale.min 1, so that the image is the one reason to refuse it.
		fixed := strings.Replace(string(b), "scale: {min: 0, max: 5}", "scale: {min: 1, max: 5}", 1)
		if fixed == string(b) {
			t.Fatal("the Python example's scale changed; this test sets min to 1")
		}
		fixed += "---\napiVersion: ferry.dev/v1alpha1\nkind: Pipeline\nspec:\n  stages:\n  - {name: dev, auto: true}\n  - {name: staging, auto: true}\n  - {name: prod, approval: {required: 1}}\n"
		if err := os.WriteFile(p, []byte(fixed), 0o644); err != nil {
			t.Fatal(err)
		}
	})
	p := startServe(t, kubeServeConfig(t, fmt.Sprintf(`- {name: scratch, url: %q, branch: main, interval: 1s}`, url), a, a))
	c := p.client(t)

	waitIn(t, p, "dev", "hello from python", 300*time.Second)
	var failed server.PromotionView
	kubeWait(t, 300*time.Second, func() (string, bool) {
		list, err := c.Promotions(t.Context(), "staging", 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, pr := range list.Items {
			if pr.Status == "failed" {
				failed = pr
				return "", true
			}
		}
		return fmt.Sprintf("no failed promotion into staging: %+v\n%s", list.Items, p.output), false
	})
	for _, want := range []string{
		"cannot run this release, nothing was changed",
		"function hello: its image was built on scratch and needs the host's python",
		"build it with a base image (ferry build --base python=",
	} {
		if !strings.Contains(failed.Reason, want) {
			t.Errorf("the refused promotion's reason does not say %q:\n%s", want, failed.Reason)
		}
	}
	if out := mustKubectl(t, a, "", "get", "functions,httptriggers", "-A", "-o", "name"); strings.TrimSpace(out) != "" {
		t.Errorf("the refused release left objects on the cluster:\n%s", out)
	}
	if st := statusOf(t, p, "staging"); st.Release != "" {
		t.Errorf("staging runs %s after its only release was refused", st.Release)
	}
}
