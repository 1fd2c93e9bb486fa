package filelock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestLock: one holder at a time; a waiter gets the lock when it is
// released, or gives up when its context ends.
func TestLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "entry")
	unlock, err := Lock(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := Lock(ctx, path); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a held lock was taken again: %v", err)
	}
	var inside, most int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u, err := Lock(context.Background(), path)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			inside++
			most = max(most, inside)
			mu.Unlock()
			time.Sleep(10 * time.Millisecond)
			mu.Lock()
			inside--
			mu.Unlock()
			u()
		}()
	}
	time.Sleep(50 * time.Millisecond)
	unlock()
	wg.Wait()
	if most != 1 {
		t.Fatalf("%d holders at once", most)
	}
}

// TestTryLock: a second TryLock (another open file, as another process
// has) fails at once naming the holder's pid; once released, it is free.
func TestTryLock(t *testing.T) {
	dir := t.TempDir()
	unlock, err := LockDataDir(dir, "--data")
	if err != nil {
		t.Fatal(err)
	}
	_, err = TryLock(filepath.Join(dir, "ferry.lock"))
	var held *HeldError
	if !errors.As(err, &held) || held.PID != os.Getpid() {
		t.Fatalf("a held lock: %v, want a HeldError with pid %d", err, os.Getpid())
	}
	_, err = LockDataDir(dir, "--data")
	want := fmt.Sprintf("data folder %s is in use by another ferry (pid %d); stop it, or give this one another --data", dir, os.Getpid())
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}
	unlock()
	again, err := TryLock(filepath.Join(dir, "ferry.lock"))
	if err != nil {
		t.Fatalf("a released lock: %v", err)
	}
	again()
}
