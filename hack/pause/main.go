package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	// SIGTERM is how the runtime stops a sandbox; SIGINT for a terminal.
	// SIGCHLD is watched so that, as PID 1 of a pod that shares its PID
	// namespace, pause reaps the orphans that are reparented to it.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			return
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
