//go:build linux

package sandbox

import (
	"fmt"
	"syscall"
)

// HardenSelf makes ferry's own process not dumpable: no core file with
// its secrets, and no process of the same uid may read its memory or
// /proc/<pid>/environ (ptrace access then needs CAP_SYS_PTRACE). ferry
// serve and ferry run call it first thing.
func HardenSelf() error {
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_DUMPABLE, 0, 0); errno != 0 {
		return fmt.Errorf("making ferry not dumpable (prctl PR_SET_DUMPABLE): %w", errno)
	}
	return nil
}
