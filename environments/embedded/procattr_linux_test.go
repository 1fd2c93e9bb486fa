package embedded

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestHelperSupervisor is not a test: run by TestFunctionDiesWithFerry in
// a process of its own (FERRY_TEST_SUPERVISOR set), it starts a function
// and prints its PID, then waits to be killed.
func TestHelperSupervisor(t *testing.T) {
	if os.Getenv("FERRY_TEST_SUPERVISOR") == "" {
		t.Skip("a helper process of TestFunctionDiesWithFerry")
	}
	root, argv, env := scriptRoot(t, "exec python3 server.py\n")
	p, err := startProcess(context.Background(), testSpec(t, root, argv, env))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("pid %d\n", p.State().PID)
	time.Sleep(time.Minute)
}

// TestFunctionDiesWithFerry: a ferry killed with SIGKILL has no chance to
// stop its functions; the kernel must.
func TestFunctionDiesWithFerry(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperSupervisor$", "-test.v")
	cmd.Env = append(os.Environ(), "FERRY_TEST_SUPERVISOR=1")
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
	waitFor(t, 5*time.Second, "the function outlived its supervisor's SIGKILL", func() bool {
		return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
	})
}
