//go:build !linux

package pipeline

import (
	"os/exec"
	"syscall"
)

// groupProcess puts a test in a process group of its own, so that a
// timeout kills everything it started. Outside Linux there is no
// parent-death signal: a test outlives a ferry that was killed.
func groupProcess(cmd *exec.Cmd, _ bool) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return killGroup(cmd) }
}

// killGroup kills the process group cmd leads, and what is left of it.
func killGroup(cmd *exec.Cmd) error {
	if cmd.Process == nil {
		return nil
	}
	return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}
