package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOneFerryPerDataFolder: a second ferry serve on a data folder in use
// exits non-zero naming the first one's pid, and so does a second ferry
// run in one repository; the first keeps serving.
func TestOneFerryPerDataFolder(t *testing.T) {
	t.Run("serve", func(t *testing.T) {
		cfg := writeServeConfig(t, "  []")
		first := startServe(t, cfg)
		// The same dataDir (relative to the file, so the same folder),
		// other ports: only the data folder clashes.
		data, err := os.ReadFile(cfg.path)
		if err != nil {
			t.Fatal(err)
		}
		var second []string
		for _, l := range strings.Split(string(data), "\n") {
			switch {
			case strings.HasPrefix(l, "listen: "):
				l = "listen: " + freeAddr(t)
			case strings.HasPrefix(l, "gateway: "):
				l = "gateway: " + freeAddr(t)
			case strings.HasPrefix(l, "registryListen: "):
				l = "registryListen: " + freeAddr(t)
			}
			second = append(second, l)
		}
		path := filepath.Join(filepath.Dir(cfg.path), "second.yaml")
		if err := os.WriteFile(path, []byte(strings.Join(second, "\n")), 0o600); err != nil {
			t.Fatal(err)
		}
		r := ferryAt(t, root, "serve", "--config", path)
		want := fmt.Sprintf("is in use by another ferry (pid %d); stop it, or give this one another dataDir in the configuration", first.cmd.Process.Pid)
		if r.code == 0 || !strings.Contains(r.stdout, want) {
			t.Fatalf("a second ferry serve on one data folder: %+v, want %q", r, want)
		}
		if _, err := first.client(t).Runs(t.Context(), "", 0, 0); err != nil {
			t.Fatalf("the first ferry serve stopped answering: %v", err)
		}
	})
	t.Run("run", func(t *testing.T) {
		dir := t.TempDir()
		if r := ferryAt(t, dir, "init", "--runtime", "python", "--name", "hello"); r.code != 0 {
			t.Fatalf("ferry init: %+v", r)
		}
		first := startRunIn(t, dir)
		r := ferryAt(t, dir, "run", ".", "--addr", freeAddr(t))
		want := fmt.Sprintf("data folder .ferry-data is in use by another ferry (pid %d); stop it, or give this one another --data", first.cmd.Process.Pid)
		if r.code == 0 || !strings.Contains(r.stdout, want) {
			t.Fatalf("a second ferry run in one repository: %+v, want %q", r, want)
		}
		// Started from the parent folder, ferry run still keeps its data
		// in DIR/.ferry-data, where init's .gitignore names it.
		r = ferryAt(t, filepath.Dir(dir), "run", filepath.Base(dir), "--addr", freeAddr(t))
		want = fmt.Sprintf("data folder %s is in use by another ferry (pid %d)", filepath.Join(filepath.Base(dir), ".ferry-data"), first.cmd.Process.Pid)
		if r.code == 0 || !strings.Contains(r.stdout, want) {
			t.Fatalf("ferry run DIR from DIR's parent: %+v, want %q", r, want)
		}
		if n := first.count("release "); n != 1 {
			t.Fatalf("the first ferry run made %d releases, want 1:\n%s", n, first.output)
		}
	})
}

// TestBusyPortSaysWhatMovesIt: ferry serve, ferry run and ferry registry
// serve on a port in use name the port and the key, flag or variable
// that moves it.
func TestBusyPortSaysWhatMovesIt(t *testing.T) {
	cfg := writeServeConfig(t, "  []")
	startServe(t, cfg)
	busy := strings.TrimPrefix(cfg.api, "http://")
	in := " is in use (another ferry, or another program); "

	for key, want := range map[string]string{
		"listen":         "the API: " + busy + in + "move the API with listen: in the configuration (make run: LISTEN=HOST:PORT)",
		"gateway":        "the gateway: " + busy + in + "move the gateway with gateway: in the configuration (make run: ADDR=HOST:PORT)",
		"registryListen": "the embedded registry: " + busy + in + "move it with registryListen: in the configuration (make run: REGISTRY_ADDR=HOST:PORT)",
	} {
		other := writeServeConfig(t, "  []")
		data, err := os.ReadFile(other.path)
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		for _, l := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(l, key+": ") {
				l = key + ": " + busy
			}
			lines = append(lines, l)
		}
		if err := os.WriteFile(other.path, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
			t.Fatal(err)
		}
		r := ferryAt(t, root, "serve", "--config", other.path)
		if r.code == 0 || !strings.Contains(r.stdout, want) {
			t.Errorf("ferry serve with %s on a busy port: %+v, want %q", key, r, want)
		}
	}

	dir := t.TempDir()
	if r := ferryAt(t, dir, "init", "--runtime", "python", "--name", "hello"); r.code != 0 {
		t.Fatalf("ferry init: %+v", r)
	}
	r := ferryAt(t, dir, "run", ".", "--addr", busy)
	want := "gateway: " + busy + in + "move the gateway with --addr"
	if r.code == 0 || !strings.Contains(r.stdout, want) {
		t.Errorf("ferry run on a busy port: %+v, want %q", r, want)
	}
	r = ferryAt(t, dir, "registry", "serve", "--addr", busy, "--data", t.TempDir())
	want = "registry: " + busy + in + "move it with --addr (port 0 picks a free one)"
	if r.code == 0 || !strings.Contains(r.stdout, want) {
		t.Errorf("ferry registry serve on a busy port: %+v, want %q", r, want)
	}
}
