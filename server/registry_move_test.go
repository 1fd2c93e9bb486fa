package server

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

const movedDigest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestRegistryMoves(t *testing.T) {
	dir := t.TempDir()
	if _, err := recordRegistryAddress(dir, "127.0.0.1:5001", nil); err != nil {
		t.Fatal(err)
	}
	m, err := recordRegistryAddress(dir, "127.0.0.1:5002", nil)
	if err != nil {
		t.Fatal(err)
	}
	for ref, want := range map[string]string{
		"127.0.0.1:5001/ferry@" + movedDigest:          "127.0.0.1:5002/ferry@" + movedDigest,
		"127.0.0.1:5002/ferry@" + movedDigest:          "127.0.0.1:5002/ferry@" + movedDigest,
		"registry.example.com/team/app@" + movedDigest: "registry.example.com/team/app@" + movedDigest,
		"127.0.0.1:5001/ferry/hello@" + movedDigest:    "127.0.0.1:5002/ferry/hello@" + movedDigest,
		"not a reference":                              "not a reference",
	} {
		if got := m.here(ref); got != want {
			t.Errorf("here(%s) = %s, want %s", ref, got, want)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, addressesFile))
	if err != nil || string(b) != "127.0.0.1:5001\n127.0.0.1:5002\n" {
		t.Errorf("recorded addresses: %q %v", b, err)
	}
	// Back on the first port: the second is a past address now.
	m, err = recordRegistryAddress(dir, "127.0.0.1:5001", nil)
	if err != nil || m.here("127.0.0.1:5002/ferry@"+movedDigest) != "127.0.0.1:5001/ferry@"+movedDigest {
		t.Errorf("moving back: %v", err)
	}
	// An external registry moves nowhere.
	m, err = recordRegistryAddress(dir, "", nil)
	if err != nil || m.here("127.0.0.1:5001/ferry@"+movedDigest) != "127.0.0.1:5001/ferry@"+movedDigest {
		t.Errorf("no embedded registry: %v", err)
	}
}

func TestRestoreErrors(t *testing.T) {
	var r restoreErrors
	if r.get("dev", "a") != nil {
		t.Error("an error before any was set")
	}
	r.set("dev", "a", errors.New("gone"))
	if err := r.get("dev", "a"); err == nil || err.Error() != "gone" {
		t.Errorf("dev's error: %v", err)
	}
	// A later release replaced it: its error is no longer news.
	if r.get("dev", "b") != nil || r.get("staging", "a") != nil {
		t.Error("an error shown for another release or environment")
	}
}
