package kubenode

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Node is a running single-node cluster.
type Node struct {
	// Dir holds the node's state, logs (Dir/logs) and kubeconfigs.
	Dir string
	// Kubeconfig is the administrator's kubeconfig file; Config is the
	// same as a client configuration.
	Kubeconfig string
	Config     *rest.Config
	// Bin is the folder of the Kubernetes binaries (kubectl among them).
	Bin string
	// Pause is the node's sandbox image, by digest: a pod of it runs and
	// does nothing, and every node has it.
	Pause string
	// Started is how long the node took from nothing to Ready.
	Started time.Duration
}

// Root is the module's root folder, found from this file.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Start starts a node whose pods pull from the loopback registries
// (host:port; the first also gets the node's pause image), waits until
// it is Ready, and stops it when the test ends. Skipped unless root: the
// kubelet manages cgroups, mounts and network namespaces.
func Start(t testing.TB, registries ...string) *Node {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("kubenode: a kubelet needs root")
	}
	if len(registries) == 0 {
		t.Fatal("kubenode.Start: give the registry the node's pods pull from")
	}
	Exclusive(t)
	// Not t.TempDir: containerd's socket path must stay under the 108
	// bytes of a unix socket address, and Stop must run before the folder
	// is removed.
	dir, err := os.MkdirTemp("", "kubenode-")
	if err != nil {
		t.Fatal(err)
	}
	n := &Node{Dir: dir}
	t.Cleanup(func() {
		if err := n.Stop(); err != nil {
			t.Error(err)
			return
		}
		os.RemoveAll(dir)
	})
	begin := time.Now()
	cmd := exec.Command(filepath.Join(Root(), "hack", "node.sh"), append([]string{"start", dir}, registries...)...)
	// The node is this process's: should it die without cleanup (go
	// test's -timeout), the next start stops the node.
	cmd.Env = append(os.Environ(), "FERRY_NODE_OWNER="+strconv.Itoa(os.Getpid()))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("hack/node.sh start: %v\n%s\n(the daemons' logs: %s)", err, stderr.Bytes(), logTails(dir))
	}
	n.Started = time.Since(begin)
	n.Kubeconfig = strings.TrimSpace(string(out))
	n.Bin, err = binDir()
	if err != nil {
		t.Fatal(err)
	}
	pause, err := os.ReadFile(filepath.Join(dir, "pause-image"))
	if err != nil {
		t.Fatal(err)
	}
	n.Pause = strings.TrimSpace(string(pause))
	n.Config, err = clientcmd.BuildConfigFromFlags("", n.Kubeconfig)
	if err != nil {
		t.Fatalf("reading the node's kubeconfig: %v", err)
	}
	return n
}

// Stop stops the node (again: it may be called more than once) and
// checks that nothing of it is left: no process of its binaries, no
// mount under Dir.
func (n *Node) Stop() error {
	cmd := exec.Command(filepath.Join(Root(), "hack", "node.sh"), "stop", n.Dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("hack/node.sh stop %s: %v\n%s", n.Dir, err, out)
	}
	bin, err := binDir()
	if err != nil {
		return err
	}
	var left []string
	for _, pid := range Processes(bin, n.Dir) {
		left = append(left, "process "+strconv.Itoa(pid))
	}
	for _, m := range Mounts(n.Dir) {
		left = append(left, "mount "+m)
	}
	if len(left) > 0 {
		return fmt.Errorf("the node of %s left after stop: %s", n.Dir, strings.Join(left, ", "))
	}
	return nil
}

// held maps each test that holds the host to its lock file.
var held sync.Map

// Exclusive gives the test the host's node for its whole run: another
// test (in this process or another package's) that starts a node waits
// until this one ends. Start takes it; a test that compares the host
// before and after its node takes it first, so that no other test's
// node changes the host in between. hack/node.sh's own lock only covers
// one node's life, and a test may start two in turn.
func Exclusive(t testing.TB) {
	t.Helper()
	if _, ok := held.Load(t); ok {
		return
	}
	bin, err := binDir()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(bin, "host.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	// why: blocking; go test's -timeout bounds a wait that never ends.
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		t.Fatal(err)
	}
	held.Store(t, f)
	t.Cleanup(func() {
		held.Delete(t)
		f.Close()
	})
}

// binDir asks hack/kube.sh where the binaries are (it builds them the
// first time).
func binDir() (string, error) {
	cmd := exec.Command(filepath.Join(Root(), "hack", "kube.sh"))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("hack/kube.sh: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// Processes lists the processes of a node: those running a binary of
// bin, runc or a file under dir whose command line names dir (envtest
// API servers of other tests run the same binaries, never naming dir).
func Processes(bin, dir string) []int {
	runc, _ := exec.LookPath("runc")
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err != nil {
			continue
		}
		if !strings.HasPrefix(exe, bin+"/") && !strings.HasPrefix(exe, dir+"/") && (runc == "" || exe != runc) {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(cmdline, []byte(dir+"/")) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// Mounts lists the mount points under dir.
func Mounts(dir string) []string {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			out = append(out, f[4])
		}
	}
	return out
}

// MemoryMiB is the resident memory of the node's processes, in MiB.
func (n *Node) MemoryMiB() int {
	var kib int
	for _, pid := range Processes(n.Bin, n.Dir) {
		data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				k, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
				kib += k
			}
		}
	}
	return kib / 1024
}

// logTails is the end of each daemon's log, for a start that failed.
func logTails(dir string) string {
	var b strings.Builder
	logs, _ := filepath.Glob(filepath.Join(dir, "logs", "*.log"))
	for _, l := range logs {
		data, _ := os.ReadFile(l)
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(lines) > 15 {
			lines = lines[len(lines)-15:]
		}
		fmt.Fprintf(&b, "\n== %s\n%s", filepath.Base(l), strings.Join(lines, "\n"))
	}
	return b.String()
}
