package watcher

import (
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ferrycd/ferry/store"
)

// OnFetch hears every fetch of a source with its outcome: a fetch that
// worked with no error, one of a server that is gone with its error.
func TestOnFetchHearsEachFetch(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := "http://" + ln.Addr().String() + "/git/app.git"
	ln.Close()

	var mu sync.Mutex
	heard := map[string][]error{}
	tw := startWatcher(t, Config{OnFetch: func(source string, took time.Duration, err error) {
		if took <= 0 {
			t.Errorf("fetch of %s took %v", source, took)
		}
		mu.Lock()
		heard[source] = append(heard[source], err)
		mu.Unlock()
	}})
	repo := newGitRepo(t, filepath.Join(t.TempDir(), "origin.git"))
	repo.commit(nil)
	repo.push()
	tw.add(t, store.Source{Name: "ok", URL: repo.bare})
	tw.add(t, store.Source{Name: "gone", URL: gone})
	tw.waitStatus(t, "ok", "the first fetch", func(st store.SourceStatus) bool { return st.LastCommit != "" })
	tw.waitStatus(t, "gone", "a failed fetch", func(st store.SourceStatus) bool { return st.Failures > 0 })

	mu.Lock()
	defer mu.Unlock()
	if got := heard["ok"]; len(got) != 1 || got[0] != nil {
		t.Errorf("OnFetch heard %v for ok, want one success", got)
	}
	if got := heard["gone"]; len(got) != 1 || got[0] == nil {
		t.Errorf("OnFetch heard %v for gone, want one failure", got)
	}
}
