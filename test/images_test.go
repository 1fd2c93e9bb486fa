package test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/ferrycd/ferry/server"
	"github.com/ferrycd/ferry/store"
	"github.com/ferrycd/ferry/test/gitserver"
	"github.com/ferrycd/ferry/test/testreg"
)

// TestServeRollbackAdmitsOnlyBuiltOrAllowedImages: a deployer pins dev's
// function to an image ferry never built, pushed to a second registry.
// Under a repository allowedImages does not cover (reg/teamevil when
// reg/team is allowed) it is refused with what to do, and dev's status
// and history do not change. An image with a layer climbing out of its
// root, under reg/team, answers 422 with the unpacker's reason and dev
// keeps its release. Once reg/teamevil is in allowedImages the same pin
// goes, and dev answers from the image; `ferry rollback dev` then goes
// back to the release before, as always.
func TestServeRollbackAdmitsOnlyBuiltOrAllowedImages(t *testing.T) {
	reg := testreg.Embedded(t, t.TempDir())
	srv := gitserver.Start(t, "", "")
	url, work := pythonRepo(t, srv, "shop", nil)
	cfg := writeServeConfig(t, fmt.Sprintf(`- {name: shop, url: %q, branch: main, interval: 1s}`, url))
	base, err := os.ReadFile(cfg.path)
	if err != nil {
		t.Fatal(err)
	}
	configure := func(allowed ...string) {
		t.Helper()
		b := append(bytes.Clone(base), "allowedImages:\n"...)
		for _, a := range allowed {
			b = append(b, fmt.Sprintf("- %s\n", a)...)
		}
		if err := os.WriteFile(cfg.path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	team, teamevil := reg.Addr+"/team", reg.Addr+"/teamevil"
	configure(team)
	p := startServe(t, cfg)
	c := p.client(t)
	ctx := t.Context()
	cli := func(args ...string) result {
		return ferry(t, append(args, "--server", p.api, "--token", serveToken)...)
	}

	waitGreeting(t, p, "hello from python", 120*time.Second)
	first := liveRelease(t, c, "dev")
	commitGreeting(t, work, "", "hello again")
	waitGreeting(t, p, "hello again", 60*time.Second)
	second := liveRelease(t, c, "dev")
	built := functionImage(t, c, "dev", "hello")
	t.Logf("dev runs release %s, hello on %s", second, built)

	// An image ferry never built: its own, with another greeting.
	img := testreg.Pull(t, built)
	outside := testreg.Push(t, teamevil+"/hello", testreg.AppendLayer(t, img, testreg.LayerEntry{Name: "ferry/function/main.py",
		Body: "def handle(event, context):\n    return {\"message\": \"hello from outside\"}\n"}))

	historyBefore := history(t, c, "dev")
	r := cli("rollback", "dev", "--function", "hello", "--to", outside)
	if r.code == 0 || !strings.Contains(r.stderr, "403") ||
		!strings.Contains(r.stderr, "image "+outside+" was never built by ferry for source shop and is not under allowedImages") ||
		!strings.Contains(r.stderr, "add its repository to allowedImages") {
		t.Fatalf("pinning an image ferry never built: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("refused: %s", strings.TrimSpace(r.stderr))
	// A tag is refused even under allowedImages: it can move.
	testreg.Push(t, team+"/hello", img)
	r = cli("rollback", "dev", "--function", "hello", "--to", team+"/hello:latest")
	if r.code == 0 || !strings.Contains(r.stderr, "not an image by digest") {
		t.Errorf("pinning a tag: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// Nor is a release pulled from a repository that is neither ferry's
	// nor allowed.
	_, err = c.Rollback(ctx, "dev", server.RollbackRequest{Release: teamevil + "/releases@sha256:" + strings.Repeat("d", 64)})
	if se := statusError(err); se == nil || se.Code != 403 || !strings.Contains(se.Message, "not in ferry's release repository") {
		t.Errorf("a release from %s: %v", teamevil, err)
	}
	if historyAfter := history(t, c, "dev"); historyAfter != historyBefore {
		t.Errorf("a refused pin changed dev's history:\nbefore:\n%s\nafter:\n%s", historyBefore, historyAfter)
	}
	if e := environment(t, c, "dev"); e.Release != second || e.Held {
		t.Errorf("a refused pin changed dev: %+v", e)
	}
	waitGreeting(t, p, "hello again", 60*time.Second)

	// Under allowedImages, but hostile: the unpacker refuses it, the API
	// answers 422 with why, and dev keeps its release.
	for _, h := range []struct {
		repo  string
		entry testreg.LayerEntry
		why   string
	}{
		{"climb", testreg.LayerEntry{Name: "../../etc/ferry-escape", Body: "pwned\n"}, "climbs out of the image's root"},
		{"link", testreg.LayerEntry{Name: "ferry/function/escape", Link: "../../../../../../etc"}, "climbs out of the image's root"},
	} {
		hostile := testreg.Push(t, team+"/"+h.repo, testreg.AppendLayer(t, img, h.entry))
		_, err := c.Rollback(ctx, "dev", server.RollbackRequest{Function: "hello", Image: hostile})
		se := statusError(err)
		if se == nil || se.Code != 422 || !strings.Contains(se.Message, h.why) || !strings.Contains(se.Message, h.entry.Name) {
			t.Fatalf("pinning %s (%s): %v; want 422 saying %q", hostile, h.entry.Name, err, h.why)
		}
		t.Logf("422: %s", se.Message)
		if e := environment(t, c, "dev"); e.Release != second || e.Held {
			t.Errorf("after a refused image dev is %+v, want it on %s and not held", e, second)
		}
		waitGreeting(t, p, "hello again", 60*time.Second)
	}
	// An index is not one image to run.
	multi := testreg.PushIndex(t, team+"/multi", mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: img}))
	_, err = c.Rollback(ctx, "dev", server.RollbackRequest{Function: "hello", Image: multi})
	if se := statusError(err); se == nil || se.Code != 422 || !strings.Contains(se.Message, "not an image manifest") {
		t.Errorf("pinning the index %s: %v; want 422 saying it is not an image", multi, err)
	}
	if e := environment(t, c, "dev"); e.Release != second {
		t.Errorf("after a refused index dev runs %s, want %s", e.Release, second)
	}
	r = cli("rollback", "dev", "--function", "hello", "--to", testreg.Push(t, team+"/climb", testreg.AppendLayer(t, img, testreg.LayerEntry{Name: "../../etc/ferry-escape", Body: "pwned\n"})))
	if r.code == 0 || !strings.Contains(r.stderr, "422") || !strings.Contains(r.stderr, "climbs out") {
		t.Errorf("ferry rollback to a hostile image: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat("/etc/ferry-escape"); err == nil {
		t.Errorf("/etc/ferry-escape exists")
	}
	filepath.WalkDir(filepath.Dir(cfg.path), func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == "ferry-escape" {
			t.Errorf("the hostile layer wrote %s", path)
		}
		return nil
	})

	// The same image, once its repository is allowed.
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := <-p.done; err != nil {
		t.Fatalf("ferry serve on SIGTERM: %v\n%s", err, p.output)
	}
	configure(team, teamevil)
	p = startServe(t, cfg)
	c = p.client(t)
	waitGreeting(t, p, "hello again", 60*time.Second)
	r = cli("rollback", "dev", "--function", "hello", "--to", outside)
	if r.code != 0 {
		t.Fatalf("pinning %s under allowedImages: %d\n%s%s", outside, r.code, r.stdout, r.stderr)
	}
	waitGreeting(t, p, "hello from outside", 60*time.Second)
	if got := functionImage(t, c, "dev", "hello"); got != outside {
		t.Errorf("dev's hello runs %s, want %s", got, outside)
	}

	// ferry rollback dev: the release before the one the pin changed.
	r = cli("rollback", "dev")
	if r.code != 0 || !strings.Contains(r.stdout, "dev now runs "+store.Short(first)) {
		t.Fatalf("ferry rollback dev: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	waitGreeting(t, p, "hello from python", 60*time.Second)
}

// history is env's deployments, one line each: what a refused rollback
// must leave as it was (the verification of a deploy may end meanwhile,
// so it is left out).
func history(t *testing.T, c *server.Client, env string) string {
	t.Helper()
	page, err := c.History(t.Context(), env, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, d := range page.Items {
		fmt.Fprintf(&b, "%d %s %s %s %s %s\n", d.ID, d.Kind, d.Release, d.Previous, d.Actor, d.Status)
	}
	return b.String()
}

func statusError(err error) *server.StatusError {
	var se *server.StatusError
	if errors.As(err, &se) {
		return se
	}
	return nil
}

// environment is env as the API shows it.
func environment(t *testing.T, c *server.Client, env string) server.EnvironmentView {
	t.Helper()
	envs, err := c.Environments(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range envs {
		if e.Name == env {
			return e
		}
	}
	t.Fatalf("no environment %s in %+v", env, envs)
	return server.EnvironmentView{}
}

// functionImage is the image function runs in env.
func functionImage(t *testing.T, c *server.Client, env, function string) string {
	t.Helper()
	for _, f := range environment(t, c, env).Functions {
		if f.Name == function {
			return f.Image
		}
	}
	t.Fatalf("environment %s runs no function %s", env, function)
	return ""
}
