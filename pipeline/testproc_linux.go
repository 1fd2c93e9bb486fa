package pipeline

import (
	"os/exec"
	"syscall"
)

// groupProcess puts a test in a process group of its own, so that a
// timeout kills everything it started, and has the kernel kill it when
// ferry dies (as environments/embedded does for functions, for the same
// reasons). A sandboxed test gets a session of its own, which is a group
// too: it has no terminal of ferry's to reach.
func groupProcess(cmd *exec.Cmd, sandboxed bool) {
	if sandboxed {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
	} else {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	}
	cmd.Cancel = func() error { return killGroup(cmd) }
}

// killGroup kills the process group cmd leads, and what is left of it.
func killGroup(cmd *exec.Cmd) error {
	if cmd.Process == nil {
		return nil
	}
	return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}
