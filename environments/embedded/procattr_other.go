//go:build !linux

package embedded

import "syscall"

// functionProcAttr puts a function in a process group of its own. Outside
// Linux there is no parent-death signal: a function outlives a ferry that
// was killed.
func functionProcAttr(sandboxed bool) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
