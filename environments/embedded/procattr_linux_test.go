package embedded

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferrycd/ferry/internal/sandbox"
)

// TestHelperSupervisor is not a test: run by TestFunctionDiesWithFerry in
// a process of its own (FERRY_TEST_SUPERVISOR set to "plain" or
// "sandboxed"), it starts a function and prints its PID (inside the
// sandbox: the function's own, not bubblewrap's), then waits to be killed.
func TestHelperSupervisor(t *testing.T) {
	mode := os.Getenv("FERRY_TEST_SUPERVISOR")
	if mode == "" {
		t.Skip("a helper process of TestFunctionDiesWithFerry")
	}
	root, argv, env := scriptRoot(t, "exec python3 server.py\n")
	spec := testSpec(t, root, argv, env)
	if mode == "sandboxed" {
		sb, err := sandbox.Find(context.Background(), sandbox.ModeBwrap, sandbox.NetworkNone)
		if err != nil {
			t.Fatal(err)
		}
		realRoot, err := filepath.EvalSymlinks(root)
		if err != nil {
			t.Fatal(err)
		}
		spec.Sandbox, spec.Root, spec.Argv, spec.Dir = sb, realRoot, []string{"/ferry/bin/function"}, "/ferry/function"
	}
	p, err := startProcess(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	pid := p.State().PID
	if mode == "sandboxed" {
		for _, pr := range groupProcesses(pid) {
			if pr.pid != pid && pr.ppid != pid {
				pid = pr.pid
			}
		}
		if pid == p.State().PID {
			t.Fatal("no function process inside the sandbox")
		}
	}
	fmt.Printf("pid %d\n", pid)
	time.Sleep(time.Minute)
}

// TestFunctionDiesWithFerry: a ferry killed with SIGKILL has no chance to
// stop its functions; the kernel must.
func TestFunctionDiesWithFerry(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"plain", "sandboxed"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			functionDiesWithFerry(t, mode)
		})
	}
}

func functionDiesWithFerry(t *testing.T, mode string) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperSupervisor$", "-test.v")
	cmd.Env = append(os.Environ(), "FERRY_TEST_SUPERVISOR="+mode)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	pid := 0
	sc := bufio.NewScanner(out)
	var seen []string
	for pid == 0 && sc.Scan() {
		seen = append(seen, sc.Text())
		if n, ok := strings.CutPrefix(sc.Text(), "pid "); ok {
			pid, _ = strconv.Atoi(n)
		}
	}
	if pid == 0 {
		t.Fatalf("the helper started no function:\n%s", strings.Join(seen, "\n"))
	}
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("the function (pid %d) is not running: %v", pid, err)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	waitFor(t, 30*time.Second, "the function outlived its supervisor's SIGKILL", func() bool {
		return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
	})
}
