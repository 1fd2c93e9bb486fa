package watcher

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"

	"github.com/ferrycd/ferry/internal/gitauth/sshtest"
	"github.com/ferrycd/ferry/store"
	"github.com/ferrycd/ferry/test/gitserver"
)

// pullsHeard collects what OnPull hears.
type pullsHeard struct {
	mu  sync.Mutex
	evs []store.PullEvent
}

func (p *pullsHeard) add(ev store.PullEvent) {
	p.mu.Lock()
	p.evs = append(p.evs, ev)
	p.mu.Unlock()
}

// take returns what was heard since the last take, as "#N action commit".
func (p *pullsHeard) take() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, ev := range p.evs {
		if ev.FromWebhook {
			out = append(out, "from a webhook!")
		}
		out = append(out, fmt.Sprintf("%s #%d %s %s", ev.Source, ev.Number, ev.Action, ev.Commit))
	}
	p.evs = nil
	return out
}

func (p *pullsHeard) expect(t *testing.T, when string, want ...string) {
	t.Helper()
	got := p.take()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("%s: OnPull heard\n  %s\nwant\n  %s", when, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// watchPulls starts a watcher polling source "app" at url with its pull
// requests on, and syncs it once; what OnPull hears goes to heard.
func watchPulls(t *testing.T, url string) (tw *testWatcher, heard *pullsHeard) {
	t.Helper()
	heard = &pullsHeard{}
	tw = startWatcher(t, Config{OnPull: heard.add})
	tw.SetPulls("app", true)
	tw.add(t, store.Source{Name: "app", URL: url})
	tw.sync(t, "app")
	return tw, heard
}

// pushRef pushes the work tree's HEAD to ref of the bare repository, as a
// host does when a request's branch is pushed; an empty head deletes ref.
func (r *gitRepo) pushRef(head, ref string) {
	r.t.Helper()
	runGit(r.t, r.work, "push", "-q", "--force", "origin", head+":"+ref)
}

// mirrorHas reports whether the source's mirror has ref.
func mirrorHas(t *testing.T, dir, source, ref string) bool {
	t.Helper()
	repo, err := git.PlainOpen(filepath.Join(dir, source+".git"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = repo.Reference(plumbing.ReferenceName(ref), false)
	return err == nil
}

// Requests opened, pushed to and closed are told, in order of number,
// with their commits from the mirror; the branch's fetch and the
// requests' leave each other's refs alone; the commits are readable.
func TestPullsOpenedUpdatedClosed(t *testing.T) {
	gs := newGitServer(t, "", "")
	repo, url := gs.repo(t, "app")
	base := repo.commit(nil)
	repo.push()
	repo.pushRef(base, "refs/pull/1/head")

	tw, heard := watchPulls(t, url)
	heard.expect(t, "the first listing, with #1 open")

	c2 := repo.commit(map[string]string{"pr.txt": "two"})
	repo.pushRef("HEAD", "refs/pull/2/head")
	tw.sync(t, "app")
	heard.expect(t, "#2 opened", "app #2 opened "+c2)

	// A request's commit reads like the branch's.
	ctx := context.Background()
	tree, err := tw.Tree(ctx, "app", c2)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := fs.ReadFile(tree, "pr.txt"); err != nil || string(b) != "two" {
		t.Errorf("pr.txt of #2: %q, %v", b, err)
	}
	if anc, err := tw.IsAncestor(ctx, "app", base, c2); err != nil || !anc {
		t.Errorf("IsAncestor(base, #2) = %v, %v; want true", anc, err)
	}
	if name, _, err := tw.CommitAuthor(ctx, "app", c2); err != nil || name != "Ferry Test" {
		t.Errorf("CommitAuthor of #2 = %q, %v", name, err)
	}
	if _, err := tw.CommitTime(ctx, "app", c2); err != nil {
		t.Errorf("CommitTime of #2: %v", err)
	}

	// #1, taken at the first listing, is told when it moves; #2 too.
	c3 := repo.commit(map[string]string{"pr.txt": "three"})
	repo.pushRef("HEAD", "refs/pull/2/head")
	repo.pushRef(c2, "refs/pull/1/head")
	tw.sync(t, "app")
	heard.expect(t, "#1 and #2 pushed to", "app #1 updated "+c2, "app #2 updated "+c3)

	// The branch moves: its fetch keeps the requests' refs, and the
	// requests' fetch left the branch where it was.
	runGit(t, repo.work, "push", "-q", "origin", base+":refs/heads/side")
	repo.pushRef("HEAD", "refs/heads/main")
	tw.sync(t, "app")
	heard.expect(t, "the branch moved")
	if st, _ := tw.Status("app"); st.LastCommit != c3 {
		t.Errorf("branch head %s, want %s", st.LastCommit, c3)
	}
	for _, ref := range []string{"refs/pull/1/head", "refs/pull/2/head"} {
		if !mirrorHas(t, tw.dir, "app", ref) {
			t.Errorf("the mirror lost %s", ref)
		}
	}
	if mirrorHas(t, tw.dir, "app", "refs/heads/side") {
		t.Error("the mirror fetched another branch")
	}

	repo.pushRef("", "refs/pull/2/head")
	tw.sync(t, "app")
	heard.expect(t, "#2 closed", "app #2 closed ")
	if mirrorHas(t, tw.dir, "app", "refs/pull/2/head") {
		t.Error("the mirror kept the ref of a closed request")
	}
	if _, err := tw.Tree(ctx, "app", c3); err != nil {
		t.Errorf("the commit of a closed request is no longer readable: %v", err)
	}
	tw.sync(t, "app")
	heard.expect(t, "nothing changed")
}

// The first listing tells nothing of the requests it finds, however many;
// a request opened after it is told.
func TestPullsFirstListingTellsNothing(t *testing.T) {
	gs := newGitServer(t, "", "")
	repo, url := gs.repo(t, "app")
	repo.commit(nil)
	repo.push()
	for n := 1; n <= 30; n++ {
		repo.commit(nil)
		repo.pushRef("HEAD", fmt.Sprintf("refs/pull/%d/head", n))
	}
	tw, heard := watchPulls(t, url)
	tw.sync(t, "app")
	heard.expect(t, "30 requests open before polling began")
	if mirrorHas(t, tw.dir, "app", "refs/pull/1/head") {
		t.Error("the first listing fetched requests it tells nothing of")
	}
	c := repo.commit(nil)
	repo.pushRef("HEAD", "refs/pull/31/head")
	tw.sync(t, "app")
	heard.expect(t, "#31 opened after", "app #31 opened "+c)
}

// GitLab's merge requests are refs/merge-requests/N/head; other refs
// under a request (GitHub's trial merge refs/pull/N/merge) are not heads.
func TestPullsGitLabNames(t *testing.T) {
	// A local path, to list through git-upload-pack as well as over HTTP.
	repo := newGitRepo(t, filepath.Join(t.TempDir(), "app.git"))
	url := repo.bare
	repo.commit(nil)
	repo.push()
	tw, heard := watchPulls(t, url)

	c := repo.commit(nil)
	repo.pushRef("HEAD", "refs/merge-requests/5/head")
	repo.pushRef("HEAD", "refs/pull/7/merge")
	repo.pushRef("HEAD", "refs/merge-requests/08/head")
	tw.sync(t, "app")
	heard.expect(t, "merge request !5 opened", "app #5 opened "+c)
	if !mirrorHas(t, tw.dir, "app", "refs/merge-requests/5/head") {
		t.Error("the mirror has no refs/merge-requests/5/head")
	}
	repo.pushRef("", "refs/merge-requests/5/head")
	tw.sync(t, "app")
	heard.expect(t, "merge request !5 closed", "app #5 closed ")
}

// Polling is off unless turned on: nothing is told or fetched. Turned off,
// what was seen is forgotten, and turned on again the first listing is
// taken anew.
func TestPullsOff(t *testing.T) {
	gs := newGitServer(t, "", "")
	repo, url := gs.repo(t, "app")
	repo.commit(nil)
	repo.push()
	heard := &pullsHeard{}
	tw := startWatcher(t, Config{OnPull: heard.add})
	tw.add(t, store.Source{Name: "app", URL: url})
	tw.sync(t, "app")
	repo.commit(nil)
	repo.pushRef("HEAD", "refs/pull/1/head")
	tw.sync(t, "app")
	heard.expect(t, "polling never turned on")
	if mirrorHas(t, tw.dir, "app", "refs/pull/1/head") {
		t.Error("a request was fetched with polling off")
	}

	tw.SetPulls("app", true)
	tw.sync(t, "app")
	c2 := repo.commit(nil)
	repo.pushRef("HEAD", "refs/pull/2/head")
	tw.sync(t, "app")
	heard.expect(t, "on", "app #2 opened "+c2)

	tw.SetPulls("app", false)
	tw.sync(t, "app")
	repo.commit(nil)
	repo.pushRef("HEAD", "refs/pull/3/head")
	repo.pushRef("", "refs/pull/2/head")
	tw.sync(t, "app")
	heard.expect(t, "turned off")
	tw.SetPulls("app", true)
	tw.sync(t, "app")
	heard.expect(t, "turned on again: a new first listing")
	c4 := repo.commit(nil)
	repo.pushRef("HEAD", "refs/pull/3/head")
	tw.sync(t, "app")
	heard.expect(t, "#3, of the new first listing, pushed to", "app #3 updated "+c4)
}

// What was seen outlives a restart: requests known before are not opened
// again, and what changed while ferry was down is told.
func TestPullsRestart(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "ferry.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	gs := newGitServer(t, "", "")
	repo, url := gs.repo(t, "app")
	base := repo.commit(nil)
	repo.push()
	repo.pushRef(base, "refs/pull/1/head")
	src := store.Source{Name: "app", URL: url, Branch: "main", Interval: time.Hour}
	if err := db.AddSource(ctx, src); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()

	run := func(steps func(w Watcher)) []string {
		heard := &pullsHeard{}
		w, err := New(Config{Dir: dir, State: db, OnPull: heard.add, Log: t.Logf})
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- w.Run(rctx) }()
		defer func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}()
		w.SetPulls("app", true)
		if err := w.Add(ctx, src); err != nil {
			t.Fatal(err)
		}
		steps(w)
		return heard.take()
	}
	sync := func(w Watcher) {
		sctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if err := w.Sync(sctx, "app"); err != nil {
			t.Fatal(err)
		}
	}

	c2 := repo.commit(nil)
	got := run(func(w Watcher) {
		sync(w)
		repo.pushRef("HEAD", "refs/pull/2/head")
		sync(w)
	})
	if want := "app #2 opened " + c2; strings.Join(got, "\n") != want {
		t.Fatalf("before the restart: %q, want %q", got, want)
	}

	// While ferry is down: #1 closes, #2 moves, #3 opens.
	c3 := repo.commit(nil)
	repo.pushRef("", "refs/pull/1/head")
	repo.pushRef("HEAD", "refs/pull/2/head")
	repo.pushRef("HEAD", "refs/pull/3/head")
	got = run(sync)
	want := []string{"app #1 closed ", "app #2 updated " + c3, "app #3 opened " + c3}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("after the restart: %q, want %q", got, want)
	}
	got = run(sync)
	if len(got) != 0 {
		t.Fatalf("a second restart told %q again", got)
	}
}

// FetchPull fetches one request now and records it, so the next poll does
// not tell it; a request the remote has not is open false.
func TestFetchPull(t *testing.T) {
	gs := newGitServer(t, "", "")
	repo, url := gs.repo(t, "app")
	repo.commit(nil)
	repo.push()
	tw, heard := watchPulls(t, url)

	ctx := context.Background()
	c4 := repo.commit(map[string]string{"four.txt": "4"})
	repo.pushRef("HEAD", "refs/pull/4/head")
	commit, open, err := tw.FetchPull(ctx, "app", 4)
	if err != nil || !open || commit != c4 {
		t.Fatalf("FetchPull(4) = %q, %v, %v; want %s, open", commit, open, err, c4)
	}
	if tree, err := tw.Tree(ctx, "app", commit); err != nil {
		t.Errorf("Tree of the fetched request: %v", err)
	} else if _, err := fs.Stat(tree, "four.txt"); err != nil {
		t.Errorf("the fetched request's tree: %v", err)
	}
	tw.sync(t, "app")
	heard.expect(t, "a poll after FetchPull")

	if commit, open, err := tw.FetchPull(ctx, "app", 99); err != nil || open || commit != "" {
		t.Errorf("FetchPull(99) = %q, %v, %v; want not open", commit, open, err)
	}
	repo.pushRef("", "refs/pull/4/head")
	if _, open, err := tw.FetchPull(ctx, "app", 4); err != nil || open {
		t.Errorf("FetchPull of the closed #4: open %v, %v", open, err)
	}
	tw.sync(t, "app")
	heard.expect(t, "a poll after FetchPull found #4 closed")

	if _, _, err := tw.FetchPull(ctx, "nope", 1); !isNotFound(err) {
		t.Errorf("FetchPull of a source not watched: %v, want not found", err)
	}
}

// A Git server that answers the branch's fetch and then stalls: the
// listing of requests, and FetchPull, end at the source's timeout saying
// so, and the branch's status is not spoilt.
func TestPullsListingMeetsTheTimeout(t *testing.T) {
	const timeout = 400 * time.Millisecond
	root := t.TempDir()
	repo := newGitRepo(t, filepath.Join(root, "app.git"))
	head := repo.commit(nil)
	repo.push()
	h, err := gitserver.Handler(root, "", "")
	if err != nil {
		t.Fatal(err)
	}
	var adverts atomic.Int64
	var stallAll atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Each poll asks for the advertisement twice, the branch's fetch
		// then the listing: the second hangs until the client leaves, and
		// every one once stallAll is set.
		if strings.HasSuffix(r.URL.Path, "/info/refs") && (adverts.Add(1)%2 == 0 || stallAll.Load()) {
			w.Header().Set("Content-Type", "application/x-git-upload-pack-advertisement")
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			<-r.Context().Done()
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)

	var logMu sync.Mutex
	var logged []string
	tw := startWatcher(t, Config{Log: func(format string, args ...any) {
		logMu.Lock()
		logged = append(logged, fmt.Sprintf(format, args...))
		logMu.Unlock()
		t.Logf(format, args...)
	}})
	tw.SetPulls("app", true)
	tw.add(t, store.Source{Name: "app", URL: srv.URL + "/app.git", Timeout: timeout})
	// Bounded only to catch a hang, far beyond the timeout.
	ctx, cancel := context.WithTimeout(context.Background(), 50*timeout)
	defer cancel()
	if err := tw.Sync(ctx, "app"); err != nil {
		t.Fatalf("Sync: %v (the branch's fetch should succeed)", err)
	}
	if st, _ := tw.Status("app"); st.LastCommit != head || st.LastError != "" {
		t.Errorf("the branch's status %+v, want head %s and no error", st, head)
	}
	logMu.Lock()
	all := strings.Join(logged, "\n")
	logMu.Unlock()
	if !strings.Contains(all, "pull requests: no answer within 400ms from ") {
		t.Errorf("the log does not say the listing had no answer within 400ms:\n%s", all)
	}

	stallAll.Store(true)
	_, _, err = tw.FetchPull(ctx, "app", 1)
	if ctx.Err() != nil {
		t.Fatalf("FetchPull was still waiting at %v, with a timeout of %v", 50*timeout, timeout)
	}
	if err == nil || !strings.Contains(err.Error(), "no answer within 400ms from ") {
		t.Fatalf("FetchPull: %v, want it to fail saying there was no answer within 400ms", err)
	}
}

// Over SSH, a server that stalls after its banner holds FetchPull's
// listing no longer than the source's timeout either.
func TestFetchPullOverStalledSSH(t *testing.T) {
	key, _ := sshtest.NewKey(t, "")
	const timeout = 400 * time.Millisecond
	addr := stallConn(t, func(c net.Conn, done <-chan struct{}) {
		io.WriteString(c, "SSH-2.0-OpenSSH_9.6\r\n")
		<-done
	})
	tw := startWatcher(t, Config{})
	tw.SetPulls("hostile", true)
	tw.add(t, store.Source{Name: "hostile", URL: "ssh://git@" + addr + "/srv/demo.git", SSHKey: key, Timeout: timeout})
	// Bounded only to catch a hang, far beyond the timeout (FetchPull may
	// first wait for the branch's fetch, which meets the same timeout).
	ctx, cancel := context.WithTimeout(context.Background(), 50*timeout)
	defer cancel()
	_, _, err := tw.FetchPull(ctx, "hostile", 1)
	if ctx.Err() != nil {
		t.Fatalf("FetchPull was still waiting at %v, with a timeout of %v: %v", 50*timeout, timeout, err)
	}
	if err == nil || !strings.Contains(err.Error(), "no answer within 400ms from ") {
		t.Fatalf("FetchPull: %v, want it to fail saying there was no answer within 400ms", err)
	}
}
