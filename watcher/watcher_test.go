package watcher

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing/transport"

	"github.com/ferrycd/ferry/store"
)

// A local path, relative or absolute, and a file:// URL are watched: the
// first fetch records the head with no previous one.
func TestLocalSources(t *testing.T) {
	tw := startWatcher(t, Config{})
	repo := newGitRepo(t, filepath.Join(t.TempDir(), "origin.git"))
	head := repo.commit(nil)
	repo.push()

	cwd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(cwd, repo.bare)
	if err != nil {
		t.Fatal(err)
	}
	urls := map[string]string{
		"abs":  repo.bare,
		"rel":  rel,
		"file": "file://" + repo.bare,
	}
	for name, url := range urls {
		tw.add(t, store.Source{Name: name, URL: url})
	}
	for name := range urls {
		st := tw.waitStatus(t, name, "the first fetch", func(st store.SourceStatus) bool { return st.LastCommit != "" })
		if st.LastCommit != head || st.LastError != "" || st.Failures != 0 || st.LastFetch.IsZero() {
			t.Errorf("%s: status %+v, want LastCommit %s and no error", name, st, head)
		}
		if !st.NextFetch.After(st.LastFetch.Add(50 * time.Minute)) {
			t.Errorf("%s: NextFetch %v is not about an hour after LastFetch %v", name, st.NextFetch, st.LastFetch)
		}
		evs := tw.state.sourceEvents(name)
		if len(evs) != 1 || evs[0].Previous != "" || evs[0].Commit != head || evs[0].Forced || evs[0].Branch != "main" {
			t.Errorf("%s: events %+v, want one for %s with no previous", name, evs, head)
		}
		if heard := tw.heard(name); len(heard) != 1 || heard[0].ID != evs[0].ID {
			t.Errorf("%s: OnEvent heard %+v, want the recorded event", name, heard)
		}
		if saved, _ := tw.state.GetSourceStatus(context.Background(), name); saved != st {
			t.Errorf("%s: saved status %+v, want %+v", name, saved, st)
		}
		if _, err := os.Stat(filepath.Join(tw.dir, name+".git", "HEAD")); err != nil {
			t.Errorf("%s: no bare mirror: %v", name, err)
		}
	}
}

// A new commit is one event with the previous head; a force-push is an
// event marked forced; a fetch that finds nothing new records nothing.
func TestNewCommitsAndForcePush(t *testing.T) {
	tw := startWatcher(t, Config{})
	repo := newGitRepo(t, filepath.Join(t.TempDir(), "origin.git"))
	first := repo.commit(nil)
	repo.push()
	tw.add(t, store.Source{Name: "app", URL: repo.bare})
	tw.sync(t, "app")

	second := repo.commit(nil)
	repo.push()
	tw.sync(t, "app")
	// Sync returns after the fetch: the status shows it at once.
	if st, _ := tw.Status("app"); st.LastCommit != second {
		t.Fatalf("after Sync LastCommit is %s, want %s", st.LastCommit, second)
	}

	tw.sync(t, "app")
	tw.sync(t, "app")

	forced := repo.forcePush()
	tw.sync(t, "app")

	want := []Event{
		{Source: "app", Branch: "main", Previous: "", Commit: first},
		{Source: "app", Branch: "main", Previous: first, Commit: second},
		{Source: "app", Branch: "main", Previous: second, Commit: forced, Forced: true},
	}
	got := tw.state.sourceEvents("app")
	if len(got) != len(want) {
		t.Fatalf("events %+v, want %+v", got, want)
	}
	for i := range want {
		g := got[i]
		if g.Previous != want[i].Previous || g.Commit != want[i].Commit || g.Forced != want[i].Forced || g.Branch != "main" || g.At.IsZero() {
			t.Errorf("event %d is %+v, want %+v", i, g, want[i])
		}
	}
	if heard := tw.heard("app"); len(heard) != len(want) {
		t.Errorf("OnEvent heard %d events, want %d", len(heard), len(want))
	}

	// A new commit on top of the force-pushed one is not forced.
	third := repo.commit(nil)
	repo.push()
	tw.sync(t, "app")
	got = tw.state.sourceEvents("app")
	if last := got[len(got)-1]; last.Commit != third || last.Previous != forced || last.Forced {
		t.Errorf("after the force-push, a new commit gave %+v", last)
	}
}

// Polling alone notices a new commit.
func TestPollingNoticesCommits(t *testing.T) {
	tw := startWatcher(t, Config{})
	repo := newGitRepo(t, filepath.Join(t.TempDir(), "origin.git"))
	repo.commit(nil)
	repo.push()
	tw.add(t, store.Source{Name: "app", URL: repo.bare, Interval: 50 * time.Millisecond})
	tw.waitStatus(t, "app", "the first fetch", func(st store.SourceStatus) bool { return st.LastCommit != "" })
	head := repo.commit(nil)
	repo.push()
	tw.waitStatus(t, "app", "the new commit", func(st store.SourceStatus) bool { return st.LastCommit == head })
	if evs := tw.state.sourceEvents("app"); len(evs) != 2 || evs[1].Commit != head {
		t.Errorf("events %+v, want two, the last for %s", evs, head)
	}
}

// Over HTTP, the right credentials fetch; wrong ones show in the status,
// with a wait that grows, and fixing them fetches at once.
func TestHTTPAuth(t *testing.T) {
	gs := newGitServer(t, "alice", "s3cret")
	repo, url := gs.repo(t, "app")
	head := repo.commit(nil)
	repo.push()

	tw := startWatcher(t, Config{MaxBackoff: time.Minute})
	tw.add(t, store.Source{Name: "good", URL: url, Username: "alice", Password: "s3cret"})
	tw.sync(t, "good")
	if st, _ := tw.Status("good"); st.LastCommit != head || st.LastError != "" {
		t.Fatalf("with the right credentials: %+v", st)
	}

	tw.add(t, store.Source{Name: "bad", URL: url, Username: "alice", Password: "wrong", Interval: 50 * time.Millisecond})
	err := tw.Sync(context.Background(), "bad")
	if err == nil || !strings.Contains(err.Error(), "source bad") || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("Sync with a wrong password: %v, want an error naming the source and saying the password was refused", err)
	}
	checkBackoff(t, tw, "bad", 50*time.Millisecond)
	st, _ := tw.Status("bad")
	if !strings.HasPrefix(st.LastError, "fetching "+url+": authentication failed") || strings.Contains(st.LastError, "wrong") {
		t.Errorf("LastError %q, want it to say the credentials were refused, without them", st.LastError)
	}
	if st.LastCommit != "" || len(tw.state.sourceEvents("bad")) != 0 {
		t.Errorf("a failed fetch recorded a head: %+v", st)
	}
	saved, _ := tw.state.GetSourceStatus(context.Background(), "bad")
	if saved.Failures == 0 || saved.LastError == "" {
		t.Errorf("the failure was not saved: %+v", saved)
	}

	// Fixing the password fetches at once, though the source is backing
	// off.
	tw.add(t, store.Source{Name: "bad", URL: url, Username: "alice", Password: "s3cret", Interval: time.Hour})
	st = tw.waitStatus(t, "bad", "a fetch with the fixed password", func(st store.SourceStatus) bool { return st.LastCommit != "" })
	if st.LastCommit != head || st.Failures != 0 || st.LastError != "" {
		t.Errorf("after fixing the password: %+v", st)
	}
}

// Without credentials, the status says to give some.
func TestHTTPNoCredentials(t *testing.T) {
	gs := newGitServer(t, "alice", "s3cret")
	repo, url := gs.repo(t, "app")
	repo.commit(nil)
	repo.push()
	tw := startWatcher(t, Config{})
	tw.add(t, store.Source{Name: "anon", URL: url})
	err := tw.Sync(context.Background(), "anon")
	want := "fetching " + url + ": authentication required; give the source a username and a token (as its password) that may read the repository"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Sync: %v, want %q", err, want)
	}
	if !errors.Is(err, transport.ErrAuthenticationRequired) {
		t.Errorf("Sync's error %v does not wrap go-git's", err)
	}
	// Add fetched at once, and Sync once more when that fetch had begun.
	if st, _ := tw.Status("anon"); !strings.HasPrefix(st.LastError, want) || st.Failures < 1 {
		t.Errorf("status %+v, want LastError %q and a failure", st, want)
	}
}

// An HTTP server without authentication is fetched without credentials.
func TestHTTPAnonymous(t *testing.T) {
	gs := newGitServer(t, "", "")
	repo, url := gs.repo(t, "app")
	head := repo.commit(nil)
	repo.push()
	tw := startWatcher(t, Config{})
	tw.add(t, store.Source{Name: "app", URL: url})
	tw.sync(t, "app")
	if st, _ := tw.Status("app"); st.LastCommit != head {
		t.Errorf("status %+v, want LastCommit %s", st, head)
	}
	// Nothing new: one request for the refs, and no event.
	before := gs.requests.Load()
	tw.sync(t, "app")
	if n := gs.requests.Load() - before; n != 1 {
		t.Errorf("a fetch that found nothing new made %d requests, want 1", n)
	}
	if evs := tw.state.sourceEvents("app"); len(evs) != 1 {
		t.Errorf("events %+v, want one", evs)
	}
}

// checkBackoff waits for the source to fail a few times in a row and checks
// that each wait is about twice the one before (±10 % jitter).
func checkBackoff(t *testing.T, tw *testWatcher, name string, interval time.Duration) {
	t.Helper()
	// The NextFetch set by each failure, by the number of failures then.
	next := map[int]time.Time{}
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := tw.Status(name)
		if err != nil {
			t.Fatal(err)
		}
		if st.Failures > 0 {
			if st.LastError == "" {
				t.Fatalf("failure %d has no LastError", st.Failures)
			}
			if _, ok := next[st.Failures]; !ok {
				next[st.Failures] = st.NextFetch
			}
		}
		if st.Failures >= 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for failures: %+v", st)
		}
		time.Sleep(2 * time.Millisecond)
	}
	// The fetch after failure k starts at next[k] and fails at once; the
	// one after it waits interval·2^(k+1).
	checked := 0
	for k := 1; k < 5; k++ {
		a, okA := next[k]
		b, okB := next[k+1]
		if !okA || !okB {
			continue // failed twice between two looks
		}
		gap := b.Sub(a)
		want := interval << (k + 1)
		if gap < want*85/100 {
			t.Errorf("wait after failure %d is %v, want about %v", k+1, gap, want)
		}
		checked++
	}
	if checked < 2 {
		t.Errorf("saw too few failures one by one to check the wait: %v", next)
	}
}

// An unreachable server shows in the status, with a growing wait.
func TestUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	tw := startWatcher(t, Config{})
	tw.add(t, store.Source{Name: "gone", URL: "http://" + addr + "/git/app.git", Interval: 50 * time.Millisecond})
	checkBackoff(t, tw, "gone", 50*time.Millisecond)
	st, _ := tw.Status("gone")
	if !strings.Contains(st.LastError, "connection refused") || !strings.Contains(st.LastError, "cannot be reached") {
		t.Errorf("LastError %q, want it to say the server cannot be reached", st.LastError)
	}
}

// The wait after failures stops growing at MaxBackoff.
func TestBackoff(t *testing.T) {
	for _, c := range []struct {
		interval time.Duration
		failures int
		want     time.Duration
	}{
		{time.Second, 0, time.Second},
		{time.Second, 1, 2 * time.Second},
		{time.Second, 3, 8 * time.Second},
		{time.Second, 9, 5 * time.Minute},
		{time.Second, 1000, 5 * time.Minute},
		{time.Hour, 3, time.Hour},
	} {
		if got := backoff(c.interval, c.failures, 5*time.Minute); got != c.want {
			t.Errorf("backoff(%v, %d) = %v, want %v", c.interval, c.failures, got, c.want)
		}
	}
	for range 1000 {
		if d := jitter(time.Second); d < 900*time.Millisecond || d > 1100*time.Millisecond {
			t.Fatalf("jitter(1s) = %v, want within ±10 %%", d)
		}
	}
}

// A branch the repository does not have is an error naming it; a missing
// local repository says to check the path.
func TestMissingBranchAndRepository(t *testing.T) {
	tw := startWatcher(t, Config{})
	repo := newGitRepo(t, filepath.Join(t.TempDir(), "origin.git"))
	repo.commit(nil)
	repo.push()
	tw.add(t, store.Source{Name: "nobranch", URL: repo.bare, Branch: "release"})
	err := tw.Sync(context.Background(), "nobranch")
	if err == nil || !strings.Contains(err.Error(), "branch release not found") {
		t.Errorf("Sync of a missing branch: %v, want it to name the branch", err)
	}
	tw.add(t, store.Source{Name: "norepo", URL: filepath.Join(t.TempDir(), "nothing")})
	err = tw.Sync(context.Background(), "norepo")
	if err == nil || !strings.Contains(err.Error(), "source norepo") {
		t.Errorf("Sync of a missing repository: %v", err)
	}
	if st, _ := tw.Status("norepo"); st.Failures < 1 || st.LastError == "" {
		t.Errorf("status %+v, want a failure", st)
	}
}

// Remove stops polling, deletes the mirror and forgets the source.
func TestRemove(t *testing.T) {
	gs := newGitServer(t, "", "")
	repo, url := gs.repo(t, "app")
	repo.commit(nil)
	repo.push()
	tw := startWatcher(t, Config{})
	tw.add(t, store.Source{Name: "app", URL: url, Interval: 20 * time.Millisecond})
	tw.waitStatus(t, "app", "a few fetches", func(st store.SourceStatus) bool {
		return st.LastCommit != "" && gs.requests.Load() >= 3
	})
	if err := tw.Remove(context.Background(), "app"); err != nil {
		t.Fatal(err)
	}
	after := gs.requests.Load()
	if _, err := os.Stat(filepath.Join(tw.dir, "app.git")); !os.IsNotExist(err) {
		t.Errorf("the mirror is still there: %v", err)
	}
	if _, err := tw.Status("app"); !isNotFound(err) {
		t.Errorf("Status after Remove: %v, want not found", err)
	}
	if err := tw.Sync(context.Background(), "app"); !isNotFound(err) {
		t.Errorf("Sync after Remove: %v, want not found", err)
	}
	if err := tw.Remove(context.Background(), "app"); !isNotFound(err) {
		t.Errorf("Remove again: %v, want not found", err)
	}
	// Ten intervals pass without a request.
	time.Sleep(200 * time.Millisecond)
	if n := gs.requests.Load(); n != after {
		t.Errorf("%d requests after Remove", n-after)
	}
	// Added again, it starts a new mirror.
	tw.add(t, store.Source{Name: "app", URL: url})
	tw.sync(t, "app")
}

// Many Syncs at once share fetches, and each returns after a fetch that
// started after it was called.
func TestSyncCoalesces(t *testing.T) {
	gs := newGitServer(t, "", "")
	repo, url := gs.repo(t, "app")
	repo.commit(nil)
	repo.push()
	tw := startWatcher(t, Config{})
	tw.add(t, store.Source{Name: "app", URL: url})
	tw.sync(t, "app")
	before := gs.requests.Load()
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Go(func() { errs <- tw.Sync(context.Background(), "app") })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n := gs.requests.Load() - before; n < 1 || n > 20 {
		t.Errorf("20 Syncs made %d fetches", n)
	}
	t.Logf("20 concurrent Syncs made %d fetches", gs.requests.Load()-before)

	// Nudge asks without waiting.
	head := repo.commit(nil)
	repo.push()
	if err := tw.Nudge("app"); err != nil {
		t.Fatal(err)
	}
	tw.waitStatus(t, "app", "the nudged fetch", func(st store.SourceStatus) bool { return st.LastCommit == head })
	if err := tw.Nudge("nope"); !isNotFound(err) {
		t.Errorf("Nudge of an unknown source: %v", err)
	}
}

// A restarted watcher carries on from the recorded head: nothing new is no
// event, and a commit pushed meanwhile is one event with the previous head.
func TestRestart(t *testing.T) {
	state := newMemState()
	dir := t.TempDir()
	repo := newGitRepo(t, filepath.Join(t.TempDir(), "origin.git"))
	first := repo.commit(nil)
	repo.push()

	ctx, cancel := context.WithCancel(context.Background())
	w1, err := New(Config{Dir: dir, State: state, Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w1.Run(ctx) }()
	if err := w1.Add(context.Background(), store.Source{Name: "app", URL: repo.bare, Branch: "main", Interval: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if err := w1.Sync(context.Background(), "app"); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := w1.Sync(context.Background(), "app"); err == nil {
		t.Error("Sync after Run ended succeeded")
	}

	tw := startWatcher(t, Config{Dir: dir, State: state})
	tw.add(t, store.Source{Name: "app", URL: repo.bare})
	if st, _ := tw.Status("app"); st.LastCommit != first {
		t.Errorf("the restarted watcher starts from %q, want %s", st.LastCommit, first)
	}
	tw.sync(t, "app")
	if evs := state.sourceEvents("app"); len(evs) != 1 {
		t.Fatalf("events after a restart with nothing new: %+v", evs)
	}
	second := repo.commit(nil)
	repo.push()
	tw.sync(t, "app")
	evs := state.sourceEvents("app")
	if len(evs) != 2 || evs[1].Previous != first || evs[1].Commit != second || evs[1].Forced {
		t.Errorf("events %+v, want a second from %s to %s", evs, first, second)
	}

	// With its mirror lost, a source fetches it all again; a head that
	// descends from the recorded one is no force-push.
	third := repo.commit(nil)
	repo.push()
	fresh := startWatcher(t, Config{State: state})
	fresh.add(t, store.Source{Name: "app", URL: repo.bare})
	fresh.sync(t, "app")
	evs = state.sourceEvents("app")
	if len(evs) != 3 || evs[2].Previous != second || evs[2].Commit != third || evs[2].Forced {
		t.Errorf("events %+v, want a third from %s to %s, not forced", evs, second, third)
	}
}

// A source that was backing off before a restart keeps waiting; one that
// was not fetches at once.
func TestAddKeepsBackoff(t *testing.T) {
	state := newMemState()
	now := time.Now()
	state.statuses["failing"] = store.SourceStatus{Source: "failing", Failures: 3, LastError: "boom", NextFetch: now.Add(time.Hour)}
	state.statuses["fine"] = store.SourceStatus{Source: "fine", LastCommit: strings.Repeat("a", 40), NextFetch: now.Add(time.Hour)}
	w, err := New(Config{Dir: t.TempDir(), State: state})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"failing", "fine"} {
		if err := w.Add(context.Background(), store.Source{Name: name, URL: "https://git.example.com/x.git", Branch: "main", Interval: time.Second}); err != nil {
			t.Fatal(err)
		}
		if st, _ := w.Status(name); st != state.statuses[name] {
			t.Errorf("%s: status %+v, want the stored %+v", name, st, state.statuses[name])
		}
	}
	ww := w.(*watcher)
	// Three failures at 1s: the next try 8s later at most.
	if next := ww.sources["failing"].next; next.Before(now.Add(7*time.Second)) || next.After(time.Now().Add(8*time.Second)) {
		t.Errorf("the failing source's next fetch is in %v, want about 8s", time.Until(next))
	}
	if next := ww.sources["fine"].next; next.After(time.Now()) {
		t.Errorf("the fine source's next fetch is in %v, want now", time.Until(next))
	}
}

// A head the store failed to record is recorded by a later fetch.
func TestRecordFailureIsRetried(t *testing.T) {
	state := newMemState()
	state.failRecord = errors.New("disk full")
	tw := startWatcher(t, Config{State: state})
	repo := newGitRepo(t, filepath.Join(t.TempDir(), "origin.git"))
	head := repo.commit(nil)
	repo.push()
	tw.add(t, store.Source{Name: "app", URL: repo.bare})
	if err := tw.Sync(context.Background(), "app"); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Sync: %v, want the store's error", err)
	}
	if st, _ := tw.Status("app"); st.LastCommit != "" || st.Failures < 1 {
		t.Errorf("status %+v, want no head and a failure", st)
	}
	state.mu.Lock()
	state.failRecord = nil
	state.mu.Unlock()
	tw.sync(t, "app")
	if evs := state.sourceEvents("app"); len(evs) != 1 || evs[0].Commit != head {
		t.Errorf("events %+v, want one for %s", evs, head)
	}
}

// A source that changes branch starts there as new; one that changes URL
// gets its mirror's remote updated.
func TestChangeBranchAndURL(t *testing.T) {
	tw := startWatcher(t, Config{})
	repo := newGitRepo(t, filepath.Join(t.TempDir(), "origin.git"))
	mainHead := repo.commit(nil)
	repo.push()
	runGit(t, repo.work, "checkout", "-q", "-b", "release")
	relHead := repo.commit(nil)
	runGit(t, repo.work, "push", "-q", "origin", "release")

	tw.add(t, store.Source{Name: "app", URL: repo.bare})
	tw.sync(t, "app")
	tw.add(t, store.Source{Name: "app", URL: repo.bare, Branch: "release"})
	tw.sync(t, "app")
	evs := tw.state.sourceEvents("app")
	if len(evs) != 2 || evs[1].Branch != "release" || evs[1].Commit != relHead || evs[1].Previous != "" {
		t.Fatalf("events %+v, want the second for release at %s with no previous (main was at %s)", evs, relHead, mainHead)
	}

	moved := filepath.Join(t.TempDir(), "moved.git")
	if err := os.Rename(repo.bare, moved); err != nil {
		t.Fatal(err)
	}
	tw.add(t, store.Source{Name: "app", URL: "file://" + moved, Branch: "release"})
	tw.sync(t, "app")
	cfg := runGit(t, filepath.Join(tw.dir, "app.git"), "config", "--get", "remote.origin.url")
	if cfg != "file://"+moved {
		t.Errorf("the mirror's remote is %s, want file://%s", cfg, moved)
	}
	if got := runGit(t, filepath.Join(tw.dir, "app.git"), "config", "--get", "remote.origin.fetch"); got != "+refs/heads/release:refs/heads/release" {
		t.Errorf("the mirror's refspec is %s", got)
	}
	if evs := tw.state.sourceEvents("app"); len(evs) != 2 {
		t.Errorf("the same head at a new URL made an event: %+v", evs)
	}
}

// Add refuses sources it cannot watch, saying what to change.
func TestAddValidates(t *testing.T) {
	w, err := New(Config{Dir: t.TempDir(), State: newMemState()})
	if err != nil {
		t.Fatal(err)
	}
	ok := store.Source{Name: "app", URL: "https://git.example.com/app.git", Branch: "main", Interval: time.Minute}
	for _, c := range []struct {
		name string
		edit func(*store.Source)
		want string
	}{
		{"bad name", func(s *store.Source) { s.Name = "App/../x" }, "use lower-case letters"},
		{"no interval", func(s *store.Source) { s.Interval = 0 }, "interval must be positive"},
		{"no branch", func(s *store.Source) { s.Branch = "" }, "give the branch"},
		{"ref branch", func(s *store.Source) { s.Branch = "refs/heads/main" }, "without refs/heads/"},
		{"bad branch", func(s *store.Source) { s.Branch = "a..b" }, "not a valid Git branch name"},
		// The URL and credentials are gitauth's to check (its tests
		// have every case); Add says which source they are of.
		{"password in url", func(s *store.Source) { s.URL = "https://bob:pw@host/x.git" }, "source app: url"},
	} {
		src := ok
		c.edit(&src)
		err := w.Add(context.Background(), src)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Add: %v, want %q", c.name, err, c.want)
		}
		if c.name == "password in url" && strings.Contains(err.Error(), "pw") {
			t.Errorf("the error shows the password: %v", err)
		}
		if _, err := w.Status(src.Name); err == nil {
			t.Errorf("%s: the refused source is watched", c.name)
		}
	}
	if err := w.Add(context.Background(), ok); err != nil {
		t.Errorf("a valid source: %v", err)
	}
}

// IsAncestor answers from the mirror: an older commit of the branch is an
// ancestor of a newer one and not the other way round, a commit is its
// own ancestor, and one the mirror lacks is an error.
func TestIsAncestor(t *testing.T) {
	tw := startWatcher(t, Config{})
	repo := newGitRepo(t, filepath.Join(t.TempDir(), "origin.git"))
	first := repo.commit(nil)
	second := repo.commit(nil)
	repo.push()
	tw.add(t, store.Source{Name: "app", URL: repo.bare})
	tw.sync(t, "app")
	ctx := t.Context()
	for _, c := range []struct {
		ancestor, descendant string
		want                 bool
	}{{first, second, true}, {second, first, false}, {second, second, true}} {
		got, err := tw.IsAncestor(ctx, "app", c.ancestor, c.descendant)
		if err != nil || got != c.want {
			t.Errorf("IsAncestor(%.7s, %.7s) = %v, %v; want %v", c.ancestor, c.descendant, got, err, c.want)
		}
	}
	if _, err := tw.IsAncestor(ctx, "app", strings.Repeat("1", 40), second); err == nil {
		t.Errorf("IsAncestor of a commit the mirror lacks: no error")
	}
}
