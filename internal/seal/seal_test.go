package seal

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSealOpens(t *testing.T) {
	b, err := New(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	s := b.Seal("hunter2-password", "source/demo/password")
	if !IsSealed(s) || strings.Contains(s, "hunter2") {
		t.Fatalf("sealed form %q", s)
	}
	if again := b.Seal("hunter2-password", "source/demo/password"); again == s {
		t.Error("two seals of one value are equal: the nonce is not fresh")
	}
	got, err := b.Open(s, "source/demo/password")
	if err != nil || got != "hunter2-password" {
		t.Fatalf("Open = %q, %v", got, err)
	}
	// Moved to another row or field, it does not open.
	if _, err := b.Open(s, "source/other/password"); err == nil {
		t.Error("a value sealed for demo opened for other")
	}
	other, _ := New(bytes.Repeat([]byte{8}, 32))
	if _, err := other.Open(s, "source/demo/password"); err == nil || !strings.Contains(err.Error(), KeyEnv) {
		t.Errorf("another key: %v", err)
	}
	if _, err := b.Open("hunter2-password", "source/demo/password"); err == nil {
		t.Error("a clear value opened as if sealed")
	}
	if b.Seal("", "x") != "" {
		t.Error("an empty secret is not kept empty")
	}
}

func TestLoadCreatesAPrivateKeyFile(t *testing.T) {
	t.Setenv(KeyEnv, "")
	os.Unsetenv(KeyEnv)
	dir := t.TempDir()
	b, where, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, KeyFile)
	if where != path {
		t.Errorf("key from %q, want %q", where, path)
	}
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", info, err)
	}
	s := b.Seal("v", "w")
	// A second start reads the same key.
	b2, _, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := b2.Open(s, "w"); err != nil || got != "v" {
		t.Errorf("after a restart: %q %v", got, err)
	}
	// A key file others may read is refused, saying how to fix it.
	os.Chmod(path, 0o644)
	if _, _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a key readable by others: %v", err)
	}
}

func TestLoadFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(KeyEnv, base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32)))
	if _, where, err := Load(dir); err != nil || where != "$"+KeyEnv {
		t.Fatalf("Load = %q, %v", where, err)
	}
	if _, ok := os.LookupEnv(KeyEnv); ok {
		t.Error("the key stays in ferry's environment, where processes it starts inherit it")
	}
	if _, err := os.Stat(filepath.Join(dir, KeyFile)); err == nil {
		t.Error("a key file was written although the key came from the environment")
	}
	t.Setenv(KeyEnv, base64.StdEncoding.EncodeToString([]byte("short")))
	if _, _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "32") {
		t.Errorf("a short key: %v", err)
	}
	t.Setenv(KeyEnv, "not base64!")
	if _, _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "base64") {
		t.Errorf("a key that is not base64: %v", err)
	}
}
