package filelock

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// poll is how often a waiter tries again: short next to the builds and
// unpacks it waits for, long next to a system call.
const poll = 20 * time.Millisecond

// Lock takes an exclusive lock on the file at path (made if missing),
// waiting for its holder to release it or ctx to end. An flock holds
// across processes and is released by the kernel when its holder dies, so
// a crash never leaves an entry locked; it is tried without blocking so a
// cancelled ctx is noticed.
func Lock(ctx context.Context, path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(poll):
		}
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// HeldError is a lock another process holds.
type HeldError struct {
	Path string
	// PID is the holder's process id as it wrote it into the file; 0
	// when it wrote none.
	PID int
}

func (e *HeldError) Error() string {
	if e.PID == 0 {
		return fmt.Sprintf("%s is locked by another process", e.Path)
	}
	return fmt.Sprintf("%s is locked by process %d", e.Path, e.PID)
}

// TryLock takes an exclusive lock on the file at path (made if missing)
// and writes this process's id into it, or returns a *HeldError naming
// the holder's at once. It is for one long-lived owner of a folder, where
// waiting would hide a second one.
func TryLock(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if errors.Is(err, syscall.EWOULDBLOCK) {
		defer f.Close()
		held := &HeldError{Path: path}
		// The holder writes its id right after it locks; a read in
		// between finds none, and the error says so.
		if data, rerr := io.ReadAll(f); rerr == nil {
			held.PID, _ = strconv.Atoi(strings.TrimSpace(string(data)))
		}
		return nil, held
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() {
		_ = f.Truncate(0)
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// LockDataDir keeps a data folder to one ferry: it takes dir/ferry.lock,
// or says which process holds it and how to give this one another folder
// (move: a flag or a configuration key).
func LockDataDir(dir, move string) (unlock func(), err error) {
	unlock, err = TryLock(filepath.Join(dir, "ferry.lock"))
	var held *HeldError
	if errors.As(err, &held) {
		who := "another ferry"
		if held.PID != 0 {
			who = fmt.Sprintf("another ferry (pid %d)", held.PID)
		}
		return nil, fmt.Errorf("data folder %s is in use by %s; stop it, or give this one another %s", dir, who, move)
	}
	return unlock, err
}
