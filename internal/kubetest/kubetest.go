package kubetest

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Cluster is one running API server.
type Cluster struct {
	// Config reaches the API server as its administrator.
	Config *rest.Config
	// Kubeconfig is a kubeconfig file for the same user, for ferry's
	// configuration and kubectl; its context is "envtest".
	Kubeconfig string
	// Bin is the folder of the Kubernetes binaries (kubectl among them).
	Bin string
	env *envtest.Environment
}

var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

// Root is the module's root folder, found from this file.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// BinDir is the folder holding kube-apiserver, etcd, kubectl and the
// node's binaries, built by hack/kube.sh the first time (about 15
// minutes on two cores) and reused after.
func BinDir(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		cmd := exec.Command(filepath.Join(Root(), "hack", "kube.sh"))
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		binDir, binErr = strings.TrimSpace(string(out)), err
	})
	if binErr != nil {
		t.Fatalf("building the Kubernetes binaries (hack/kube.sh): %v", binErr)
	}
	return binDir
}

// Start starts an API server with ferry's CRDs (config/crd) installed,
// and stops it when the test ends. About 4 s.
func Start(t testing.TB) *Cluster {
	t.Helper()
	c, err := start(BinDir(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop() })
	return c
}

// StartShared starts an API server for a whole package (TestMain), where
// no testing.TB exists yet; the caller stops it.
func StartShared() (*Cluster, error) {
	cmd := exec.Command(filepath.Join(Root(), "hack", "kube.sh"))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, err
	}
	return start(strings.TrimSpace(string(out)))
}

func start(bin string) (*Cluster, error) {
	env := &envtest.Environment{
		BinaryAssetsDirectory: bin,
		CRDDirectoryPaths:     []string{filepath.Join(Root(), "config", "crd")},
		ErrorIfCRDPathMissing: true,
	}
	// why: envtest's default range is a /24, 253 ClusterIPs, fewer than
	// the Services of the controller's benchmark (500 Functions).
	env.ControlPlane.GetAPIServer().Configure().Set("service-cluster-ip-range", "10.96.0.0/16")
	cfg, err := env.Start()
	if err != nil {
		return nil, err
	}
	c := &Cluster{Config: cfg, Bin: bin, env: env}
	user, err := env.AddUser(envtest.User{Name: "ferry-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		_ = env.Stop()
		return nil, err
	}
	kc, err := user.KubeConfig()
	if err != nil {
		_ = env.Stop()
		return nil, err
	}
	dir, err := os.MkdirTemp("", "kubetest-")
	if err != nil {
		_ = env.Stop()
		return nil, err
	}
	c.Kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(c.Kubeconfig, kc, 0o600); err != nil {
		_ = env.Stop()
		return nil, err
	}
	return c, nil
}

// Stop stops the API server and removes its kubeconfig.
func (c *Cluster) Stop() error {
	os.RemoveAll(filepath.Dir(c.Kubeconfig))
	return c.env.Stop()
}
