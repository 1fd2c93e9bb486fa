package test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// smallDisk is a size-limited tmpfs mounted for one test: a data folder
// that can be filled to the last byte and given space back, the way a
// real disk fills under ferry.
type smallDisk struct {
	Dir  string // the mount point
	fill string // the file that takes the space
}

// newSmallDisk mounts a tmpfs of size (mount's notation: "64m") on a new
// folder and unmounts it when the test ends. Mounting needs root, which
// CI has; elsewhere the test is skipped with the reason.
func newSmallDisk(t *testing.T, size string) *smallDisk {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("a full-disk test mounts a size-limited tmpfs, which needs root")
	}
	dir := filepath.Join(t.TempDir(), "disk")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0755", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs on %s: %v: %s", dir, err, out)
	}
	t.Cleanup(func() {
		// why lazy: a process the test started may still hold a file open
		// for a moment after it was killed.
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return &smallDisk{Dir: dir, fill: filepath.Join(dir, ".filler")}
}

// Fill takes every free byte of the disk: the next write anyone makes
// there fails with ENOSPC.
func (d *smallDisk) Fill(t *testing.T) {
	t.Helper()
	f, err := os.OpenFile(d.fill, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for size := len(buf); size > 0; {
		if _, err := f.Write(buf[:size]); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling %s: %v", d.Dir, err)
			}
			// why smaller writes: the last free bytes are fewer than a
			// whole buffer.
			size /= 2
		}
	}
	if free := d.Free(t); free > 0 {
		t.Fatalf("%s still has %d bytes free after filling", d.Dir, free)
	}
}

// Release gives the space taken by Fill back.
func (d *smallDisk) Release(t *testing.T) {
	t.Helper()
	if err := os.Remove(d.fill); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
}

// Free is what is left on the disk, in bytes.
func (d *smallDisk) Free(t *testing.T) uint64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(d.Dir, &st); err != nil {
		t.Fatal(err)
	}
	return st.Bavail * uint64(st.Bsize)
}

// TestSmallDisk checks the helper itself: a full disk refuses a write,
// and the write succeeds once the space is back.
func TestSmallDisk(t *testing.T) {
	d := newSmallDisk(t, "4m")
	d.Fill(t)
	err := os.WriteFile(filepath.Join(d.Dir, "x"), []byte(strings.Repeat("x", 8192)), 0o644)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("writing to the full disk: got %v, want ENOSPC", err)
	}
	d.Release(t)
	if err := os.WriteFile(filepath.Join(d.Dir, "x"), []byte("x"), 0o644); err != nil {
		t.Fatalf("writing after the space came back: %v", err)
	}
}
