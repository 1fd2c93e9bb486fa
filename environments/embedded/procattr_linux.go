package embedded

import "syscall"

// functionProcAttr puts a function in a process group of its own, so one
// signal reaches everything it started, and has the kernel kill it when
// ferry dies: a ferry stopped by SIGKILL (or the OOM killer) leaves no
// function serving a port behind. What the function itself spawned is
// not covered by that; Stop kills the whole group.
//
// why Pdeathsig is sound here: it fires when the thread that started the
// child exits, and the Go runtime keeps its threads for the process's
// life unless a goroutine exits while locked to one, which ferry never
// does.
func functionProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
