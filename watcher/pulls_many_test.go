package watcher

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"

	"github.com/ferrycd/ferry/store"
)

// A repository with 5000 request refs (GitHub keeps closed ones): the
// first listing tells nothing and fetches none of them; the next new
// request is the one told and the one fetched.
func TestPullsFiveThousandRefs(t *testing.T) {
	if testing.Short() {
		t.Skip("5000 refs")
	}
	const many = 5000
	gs := newGitServer(t, "", "")
	repo, url := gs.repo(t, "app")
	repo.commit(nil)
	repo.push()
	args := []string{"push", "-q", "--force", "origin"}
	for n := 1; n <= many; n++ {
		args = append(args, fmt.Sprintf("HEAD:refs/pull/%d/head", n))
	}
	runGit(t, repo.work, args...)

	heard := &pullsHeard{}
	tw := startWatcher(t, Config{OnPull: heard.add})
	tw.SetPulls("app", true)
	tw.add(t, store.Source{Name: "app", URL: url})
	tw.sync(t, "app")
	tw.sync(t, "app")
	heard.expect(t, fmt.Sprintf("%d requests open before polling began", many))
	if n := pullRefs(t, tw.dir, "app"); n != 0 {
		t.Fatalf("the first listing put %d request refs in the mirror; want none", n)
	}
	c := repo.commit(nil)
	repo.pushRef("HEAD", fmt.Sprintf("refs/pull/%d/head", many+1))
	tw.sync(t, "app")
	heard.expect(t, "one request opened after", fmt.Sprintf("app #%d opened %s", many+1, c))
	if n := pullRefs(t, tw.dir, "app"); n != 1 {
		t.Errorf("%d request refs in the mirror; want the one told", n)
	}
}

// pullRefs counts the mirror's refs under refs/pull/.
func pullRefs(t *testing.T, dir, source string) int {
	t.Helper()
	r, err := git.PlainOpen(filepath.Join(dir, source+".git"))
	if err != nil {
		t.Fatal(err)
	}
	refs, err := r.References()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	refs.ForEach(func(ref *plumbing.Reference) error {
		if strings.HasPrefix(ref.Name().String(), "refs/pull/") {
			n++
		}
		return nil
	})
	return n
}
