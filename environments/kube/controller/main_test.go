package controller

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/ferrycd/ferry/internal/kubetest"
)

// One API server for the package, with Gateway API's HTTPRoute CRD
// installed, and one controller on it, started in-process as
// `ferry controller` starts it. Each test works in its own namespace.
// (TestNoGateway starts a second API server without Gateway API.)
//
// No kubelet, scheduler or controller-manager runs: no pod ever starts,
// no Deployment status is written, and no garbage collector deletes
// children. The tests write Deployment and Pod status through the status
// subresource as the deployment controller and the kubelet would, and
// check ownerReferences where a cluster would collect.
var (
	cluster *kubetest.Cluster
	direct  client.Client // reads past the controller's cache
	mgr     ctrl.Manager
)

// testImage is what the test manager runs CronJobs and dispatchers as.
const testImage = "ferry.test/ferry@sha256:1111111111111111111111111111111111111111111111111111111111111111"

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	cluster, err = kubetest.StartShared()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the API server:", err)
		return 1
	}
	defer cluster.Stop()
	if err := installGatewayAPI(cluster.Config); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mgr, err = startManager(ctx, cluster.Config, Options{Image: testImage})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	direct, err = client.New(cluster.Config, client.Options{Scheme: mgr.GetScheme()})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// installGatewayAPI installs the standard channel's HTTPRoute CRD from
// the gateway-api module this build uses, so the types and the CRD are
// of one version.
func installGatewayAPI(cfg *rest.Config) error {
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/gateway-api")
	cmd.Dir = kubetest.Root()
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("finding the gateway-api module (go list -m): %w", err)
	}
	crd := filepath.Join(strings.TrimSpace(string(out)), "config", "crd", "standard", "gateway.networking.k8s.io_httproutes.yaml")
	if _, err := envtest.InstallCRDs(cfg, envtest.CRDInstallOptions{Paths: []string{crd}, ErrorIfPathMissing: true}); err != nil {
		return fmt.Errorf("installing Gateway API's HTTPRoute CRD: %w", err)
	}
	return nil
}

// startManager starts a controller in-process and waits for its cache.
func startManager(ctx context.Context, cfg *rest.Config, opts Options) (ctrl.Manager, error) {
	opts.skipNameValidation = true
	mo, err := ManagerOptions(cfg, opts)
	if err != nil {
		return nil, err
	}
	m, err := ctrl.NewManager(cfg, mo)
	if err != nil {
		return nil, err
	}
	if err := Setup(m, opts); err != nil {
		return nil, err
	}
	go func() {
		if err := m.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
		}
	}()
	if !m.GetCache().WaitForCacheSync(ctx) {
		return nil, fmt.Errorf("the controller's cache did not sync")
	}
	return m, nil
}

var nsCount atomic.Int32

// namespace makes a namespace for one test.
func namespace(t *testing.T, c client.Client) string {
	t.Helper()
	name := fmt.Sprintf("t%d-%s", nsCount.Add(1), strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")))
	if len(name) > 63 {
		name = name[:63]
	}
	name = strings.TrimRight(strings.ReplaceAll(name, "_", "-"), "-")
	if err := c.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
	return name
}

// waitTimeout only catches a hang: each wait is for a reconcile that
// takes milliseconds.
const waitTimeout = 60 * time.Second

// waitFor polls cond until it holds; last describes what was seen.
func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	last := ""
	for time.Now().Before(deadline) {
		ok, seen := cond()
		if ok {
			return
		}
		last = seen
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("waited %s for %s; last saw: %s", waitTimeout, what, last)
}

// get reads obj into o, returning the error.
func get(ns, name string, o client.Object) error {
	return direct.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, o)
}

func create(t *testing.T, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		if err := direct.Create(context.Background(), o); err != nil {
			t.Fatalf("creating %T %s: %v", o, o.GetName(), err)
		}
	}
}
