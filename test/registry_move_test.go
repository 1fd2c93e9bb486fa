package test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ferrycd/ferry/server"
)

// TestServeRegistryMoves: a restart with the embedded registry on another
// port (registryListen) brings every environment back, releases and
// images pulled from the new address; and when a release truly cannot be
// pulled (its blobs are gone), ferry status says why for each environment
// instead of leaving blank columns.
func TestServeRegistryMoves(t *testing.T) {
	p, cfg, _ := promoteStory(t)
	alice := p.client(t)
	waitIn(t, p, "staging", "hello from python", 120*time.Second)
	first := pendingProd(t, p, alice, "")
	c := func(token string) { approve(t, clientAs(t, p, token), first.ID) }
	c(bobToken)
	c(carolToken)
	waitIn(t, p, "prod", "hello from python", 30*time.Second)
	live := liveRelease(t, alice, "prod")

	// Another port for the registry; the releases still name the old one.
	p.stop(t)
	b, err := os.ReadFile(cfg.path)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^registryListen: (\S+)$`)
	old := re.FindSubmatch(b)[1]
	moved := freeAddr(t)
	if err := os.WriteFile(cfg.path, re.ReplaceAll(b, []byte("registryListen: "+moved)), 0o600); err != nil {
		t.Fatal(err)
	}
	// why: the unpacked images are a cache of the registry; without it the
	// functions' images must be pulled from the new address too.
	data := filepath.Join(filepath.Dir(cfg.path), "data")
	clearImageCache(t, data)
	p = startServe(t, cfg)
	for _, env := range []string{"dev", "staging", "prod"} {
		waitIn(t, p, env, "hello from python", 60*time.Second)
	}
	if got := liveRelease(t, p.client(t), "prod"); got != live {
		t.Errorf("prod runs %s after the move, want %s", got, live)
	}
	r := ferry(t, "status", "--server", p.api, "--token", serveToken)
	if r.code != 0 || strings.Contains(r.stdout, "error") || strings.Count(r.stdout, "hello") < 3 {
		t.Errorf("ferry status after the registry moved from %s to %s: %d\n%s%s", old, moved, r.code, r.stdout, r.stderr)
	}
	if rec, err := os.ReadFile(filepath.Join(data, "registry-addresses")); err != nil || !strings.Contains(string(rec), string(old)) || !strings.Contains(string(rec), moved) {
		t.Errorf("the registry's addresses are not recorded: %q %v", rec, err)
	}

	// The registry's storage gone: nothing can start, and status says so.
	p.stop(t)
	if err := os.RemoveAll(filepath.Join(data, "registry")); err != nil {
		t.Fatal(err)
	}
	clearImageCache(t, data)
	p = startServe(t, cfg)
	r = ferry(t, "status", "--server", p.api, "--token", serveToken)
	for _, env := range []string{"dev", "staging", "prod"} {
		if line := lineOf(r.stdout, env+" "); !strings.Contains(line, "error") {
			t.Errorf("ferry status does not say why %s runs nothing: %q\n%s", env, line, r.stdout)
		}
	}
	if r.code != 0 {
		t.Errorf("ferry status: %d %s", r.code, r.stderr)
	}
	envs, err := p.client(t).Environments(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range envs {
		if e.Release != live && e.Name == "prod" || !strings.Contains(e.Error, "did not start again") || !strings.Contains(e.Error, "pulling the release") {
			t.Errorf("environment %s: release %s, error %q", e.Name, e.Release, e.Error)
		}
	}
}

// clearImageCache removes the unpacked images under ferry serve's data
// folder, so that the next start pulls them.
func clearImageCache(t *testing.T, data string) {
	t.Helper()
	found := 0
	filepath.WalkDir(data, func(path string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() && d.Name() == "rootfs" {
			found++
			if err := os.RemoveAll(path); err != nil {
				t.Fatal(err)
			}
			return filepath.SkipDir
		}
		return nil
	})
	if found == 0 {
		t.Fatalf("no unpacked images under %s", data)
	}
}

// lineOf returns the first line of out that starts with prefix.
func lineOf(out, prefix string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

func clientAs(t *testing.T, p *serveProc, token string) *server.Client {
	t.Helper()
	c, err := server.NewClient(p.api, token)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
