package watcher

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferrycd/ferry/internal/gitauth"
	"github.com/ferrycd/ferry/store"
)

// A fetch that fails because ferry's own disk is full (writing the
// mirror's pack) says so and sends the operator to the data folder's
// disk, not to the repository's path or URL, for a local source and a
// remote one alike.
func TestFetchOnAFullDiskNamesFerrysDisk(t *testing.T) {
	for _, u := range []string{"/srv/repo", "https://git.example.com/team/repo.git"} {
		rem, err := gitauth.Check(u, gitauth.Credentials{}, gitauth.Use{Holder: "the source"})
		if err != nil {
			t.Fatal(err)
		}
		full := &fs.PathError{Op: "write", Path: "/data/mirrors/demo.git/objects/pack/tmp_pack_1", Err: syscall.ENOSPC}
		for _, cause := range []error{full, fmt.Errorf("fetching: %w", full), fmt.Errorf("fetching: %v", full)} {
			msg := explainFetch(context.Background(), cause, rem, "main", time.Minute).Error()
			want := "fetching " + u + ": " + cause.Error() + "; free space on the disk of ferry's data folder (the mirrors are there); the source is fetched again by itself"
			if msg != want {
				t.Errorf("%s:\n got %q\nwant %q", u, msg, want)
			}
			for _, wrong := range []string{"check that the path", "check the URL", "server"} {
				if strings.Contains(msg, wrong) {
					t.Errorf("%s, %v: %q says %q", u, cause, msg, wrong)
				}
			}
			if n := strings.Count(msg, "no space left on device"); n != 1 {
				t.Errorf("%s, %v: %q says the cause %d times", u, cause, msg, n)
			}
		}
	}
}

// A store that refuses the source's status at every poll (a full disk)
// is said once, with what happens meanwhile, and its end once; not once
// per poll.
func TestStatusSaveFailureIsSaidOnce(t *testing.T) {
	repo := newGitRepo(t, filepath.Join(t.TempDir(), "repo.git"))
	repo.commit(nil)
	repo.push()
	state := newMemState()
	state.failPut = errors.New("database or disk is full (13)")
	var mu sync.Mutex
	var lines []string
	tw := startWatcher(t, Config{State: state, Log: func(format string, args ...any) {
		mu.Lock()
		lines = append(lines, fmt.Sprintf(format, args...))
		mu.Unlock()
	}})
	tw.add(t, store.Source{Name: "demo", URL: repo.bare})
	for range 3 {
		tw.sync(t, "demo")
	}
	state.mu.Lock()
	state.failPut = nil
	state.mu.Unlock()
	for range 2 {
		tw.sync(t, "demo")
	}
	mu.Lock()
	defer mu.Unlock()
	var failed, again int
	for _, l := range lines {
		if strings.Contains(l, "saving its status: database or disk is full (13); it is kept in memory") {
			failed++
		}
		if strings.Contains(l, "its status is saved again") {
			again++
		}
	}
	if failed != 1 || again != 1 {
		t.Fatalf("the failure was said %d times and its end %d times, want once each; log:\n%s", failed, again, strings.Join(lines, "\n"))
	}
}
