package server

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferrycd/ferry/store"
)

// TestAPIRefusesLocalPathsOutsideLocalRoots tries, as an admin would, to
// make ferry read folders of its machine outside localRoots: every way is
// refused with what to set, and nothing reaches the store.
func TestAPIRefusesLocalPathsOutsideLocalRoots(t *testing.T) {
	f := newAPIFixture(t)
	ctx := context.Background()
	admin := f.client(t, adminSecret)
	inside := gitRepo(t)
	root := filepath.Dir(inside)

	// A real repository outside the root, so a refusal is not just "no
	// such repository".
	outside, err := os.MkdirTemp("", "ferry-outside-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(outside) })
	outsideRepo := gitRepoIn(t, outside)
	link := filepath.Join(t.TempDir(), "innocent")
	if err := os.Symlink(outsideRepo, link); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct{ url, says string }{
		{"/etc", "not under localRoots"},
		{outsideRepo, "not under localRoots"},
		{root + "/../" + strings.TrimPrefix(outsideRepo, filepath.Dir(root)+"/"), "not under localRoots"},
		{link, "not under localRoots"},
		{"file://" + outsideRepo, "not under localRoots"},
		{"file:///etc/passwd", "not under localRoots"},
		{"file://other-host" + inside, "names a host"},
		{"relative/repo", "relative path"},
		{"git://example.com/repo.git", "git:// is not accepted"},
		{"http://example.com/repo.git", "plain http to another machine"},
		{"ftp://example.com/repo.git", "is not accepted"},
	} {
		_, err := admin.AddSource(ctx, SourceRequest{Name: "probe", URL: c.url})
		if err == nil {
			t.Errorf("%s was accepted", c.url)
			continue
		}
		wantStatus(t, err, 400)
		if !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: the refusal %q does not say %q", c.url, err, c.says)
		}
	}
	if srcs, err := f.store.ListSources(ctx); err != nil || len(srcs) != 0 {
		t.Fatalf("refused sources reached the store: %+v %v", srcs, err)
	}

	// Under the root it is accepted, stored absolute with links resolved.
	inLink := filepath.Join(root, "link-to-inside")
	if err := os.Symlink(inside, inLink); err != nil {
		t.Fatal(err)
	}
	for name, u := range map[string]string{"path": inLink, "url": "file://" + inside} {
		if _, err := admin.AddSource(ctx, SourceRequest{Name: name, URL: u}); err != nil {
			t.Fatalf("%s under a local root: %v", u, err)
		}
		got, err := f.store.GetSource(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if want, _ := filepath.EvalSymlinks(inside); got.URL != want {
			t.Errorf("%s stored as %q, want %q", u, got.URL, want)
		}
	}
}

func TestCheckAPISourceWithoutLocalRoots(t *testing.T) {
	_, err := checkAPISource(store.Source{Name: "demo", URL: gitRepo(t)}, nil)
	if err == nil || !strings.Contains(err.Error(), "localRoots of ferry serve's configuration (none is)") {
		t.Errorf("a local path with no localRoots: %v", err)
	}
	for _, u := range []string{"https://example.com/r.git", "http://127.0.0.1:1/r.git"} {
		if _, err := checkAPISource(store.Source{Name: "demo", URL: u}, nil); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
	// SSH is accepted as a scheme; what it still lacks is the key.
	for _, u := range []string{"ssh://git@example.com/r.git", "git@example.com:r.git"} {
		if _, err := checkAPISource(store.Source{Name: "demo", URL: u}, nil); err == nil || !strings.Contains(err.Error(), "needs an SSH key") {
			t.Errorf("%s: %v", u, err)
		}
	}
}

// gitRepoIn makes a repository with one commit in a new folder of dir.
func gitRepoIn(t *testing.T, dir string) string {
	t.Helper()
	repo := gitRepo(t)
	dst := filepath.Join(dir, "repo")
	if err := os.Rename(repo, dst); err != nil {
		t.Fatal(err)
	}
	return dst
}
