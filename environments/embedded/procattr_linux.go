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
//
// A sandboxed function starts in a session of its own instead (which is a
// group of its own too): it then has no controlling terminal, so it can
// neither open ferry's nor push keystrokes into it.
func functionProcAttr(sandboxed bool) *syscall.SysProcAttr {
	if sandboxed {
		return &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
	}
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
