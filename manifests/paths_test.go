package manifests

import (
	"errors"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/ferrycd/ferry/internal/saysonce"
)

// TestResolveNamesThePathOnce: a missing element is named once, not by
// Resolve and again by the file system's error.
func TestResolveNamesThePathOnce(t *testing.T) {
	fsys := fstest.MapFS{"a/b": {Data: []byte("x")}}
	_, err := Resolve(fsys, "a/c/d", true, nil)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("resolving a missing path: %v, want fs.ErrNotExist", err)
	}
	saysonce.Check(t, "Resolve's error", err.Error())
	if n := strings.Count(err.Error(), "a/c"); n != 1 {
		t.Errorf("%q names a/c %d times", err, n)
	}
}
