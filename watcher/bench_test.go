//go:build unix

package watcher

import (
	"context"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/ferrycd/ferry/store"
)

// BenchmarkFetchNothingNew measures one poll that finds nothing new, the
// bulk of a watcher's work: 200 sources polled every 30 s make 6.7 of them
// a second, so at 10 % of a core each may take up to 15 ms of CPU. It
// reports the CPU time of this process (the watcher, and the HTTP
// server's Go side) and of its children (git-upload-pack for a local
// repository; git-http-backend, which a real Git host runs elsewhere).
func BenchmarkFetchNothingNew(b *testing.B) {
	b.Run("http", func(b *testing.B) {
		gs := newGitServer(b, "", "")
		repo, url := gs.repo(b, "app")
		repo.commit(nil)
		repo.push()
		benchSync(b, url)
	})
	b.Run("file", func(b *testing.B) {
		repo := newGitRepo(b, filepath.Join(b.TempDir(), "origin.git"))
		repo.commit(nil)
		repo.push()
		benchSync(b, repo.bare)
	})
}

// benchSync adds a source and syncs it b.N times.
func benchSync(b *testing.B, url string) {
	w, err := New(Config{Dir: b.TempDir(), State: newMemState()})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	if err := w.Add(ctx, store.Source{Name: "app", URL: url, Branch: "main", Interval: time.Hour}); err != nil {
		b.Fatal(err)
	}
	if err := w.Sync(ctx, "app"); err != nil {
		b.Fatal(err)
	}
	self0, children0 := cpuTimes(b)
	b.ResetTimer()
	for range b.N {
		if err := w.Sync(ctx, "app"); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	self1, children1 := cpuTimes(b)
	b.ReportMetric(float64((self1-self0).Microseconds())/float64(b.N), "self-cpu-µs/op")
	b.ReportMetric(float64((children1-children0).Microseconds())/float64(b.N), "children-cpu-µs/op")
}

// cpuTimes returns the CPU time (user and system) this process and its
// waited-for children have used.
func cpuTimes(b *testing.B) (self, children time.Duration) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru); err != nil {
		b.Fatal(err)
	}
	return self, time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
