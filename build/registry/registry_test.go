package registry_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"github.com/sirupsen/logrus"

	"github.com/ferrycd/ferry/build/registry"
)

// start runs a registry on a free loopback port with its data in dir,
// and stops it when the test ends (or earlier, through the returned
// stop, which waits for Serve to return).
func start(t *testing.T, dir string, log *syncBuffer) (addr string, stop func()) {
	t.Helper()
	cfg := registry.Config{Addr: "127.0.0.1:0", Dir: dir}
	if log != nil {
		cfg.Log = log
	}
	r, err := registry.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- r.Serve() }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := r.Shutdown(ctx); err != nil {
				t.Errorf("Shutdown: %v", err)
			}
			if err := <-served; err != nil {
				t.Errorf("Serve: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return r.Addr(), stop
}

// push writes a random image to addr/repo by digest, and returns the
// reference it can be pulled by.
func push(t *testing.T, addr, repo string) name.Digest {
	t.Helper()
	ref, err := pushRandom(t.Context(), addr, repo)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// pushRandom is push for goroutines other than the test's.
func pushRandom(ctx context.Context, addr, repo string) (name.Digest, error) {
	img, err := random.Image(2048, 3)
	if err != nil {
		return name.Digest{}, err
	}
	dig, err := img.Digest()
	if err != nil {
		return name.Digest{}, err
	}
	ref, err := name.NewDigest(fmt.Sprintf("%s/%s@%s", addr, repo, dig))
	if err != nil {
		return name.Digest{}, err
	}
	if err := remote.Write(ref, img, remote.WithContext(ctx)); err != nil {
		return name.Digest{}, fmt.Errorf("push %s: %w", ref, err)
	}
	return ref, nil
}

// pull fetches ref, checks the image whole, and that its digest is the
// one it was asked for.
func pull(t *testing.T, ref name.Digest) v1.Image {
	t.Helper()
	img, err := remote.Image(ref, remote.WithContext(t.Context()))
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatalf("pulled %s is not a valid image: %v", ref, err)
	}
	got, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if got.String() != ref.DigestStr() {
		t.Fatalf("pulled %s, got digest %s", ref, got)
	}
	return img
}

func TestPushPullAndRestart(t *testing.T) {
	dir := t.TempDir()
	addr, stop := start(t, dir, nil)
	ref := push(t, addr, "ferry/hello")
	pull(t, ref)
	stop()

	// A new registry on the same folder serves what the first stored.
	addr2, _ := start(t, dir, nil)
	ref2, err := name.NewDigest(strings.Replace(ref.String(), addr, addr2, 1))
	if err != nil {
		t.Fatal(err)
	}
	pull(t, ref2)
	if _, err := os.Stat(filepath.Join(dir, "docker", "registry", "v2", "blobs")); err != nil {
		t.Errorf("blobs are not under Config.Dir: %v", err)
	}
}

func TestConcurrentPushes(t *testing.T) {
	addr, _ := start(t, t.TempDir(), nil)
	const n = 4
	refs := make([]name.Digest, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			// Two repositories, so pushes race both on one repository's
			// links and on the shared blob store.
			refs[i], errs[i] = pushRandom(t.Context(), addr, fmt.Sprintf("ferry/concurrent-%d", i%2))
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for _, ref := range refs {
		pull(t, ref)
	}
}

func TestRefusesNetworkAddress(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0", "192.0.2.1:5000", "registry.example:5000"} {
		t.Run(addr, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			_, err := registry.New(t.Context(), registry.Config{Addr: addr, Dir: dir})
			if err == nil {
				t.Fatalf("New accepted %s without Public", addr)
			}
			for _, want := range []string{"not a loopback address", "no authentication", "Public"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a refused registry created its data folder (stat: %v)", err)
			}
		})
	}
}

func TestLoopbackAddresses(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:0", "localhost:0"} {
		t.Run(addr, func(t *testing.T) {
			r, err := registry.New(t.Context(), registry.Config{Addr: addr, Dir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasSuffix(r.Addr(), ":0") {
				t.Errorf("Addr() = %s, want the real port", r.Addr())
			}
			// Shutdown before Serve releases the port.
			if err := r.Shutdown(t.Context()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestBadConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg  registry.Config
		want string
	}{
		{registry.Config{Addr: "127.0.0.1:0"}, "Dir is empty"},
		{registry.Config{Addr: "127.0.0.1", Dir: "x"}, "give host:port"},
	} {
		_, err := registry.New(t.Context(), tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want an error that says %q", tc.cfg, err, tc.want)
		}
	}
}

// TestQuiet checks that a push and a pull, which include the client's
// probes for blobs that are not there yet, write nothing to Config.Log
// and nothing to logrus's standard output.
func TestQuiet(t *testing.T) {
	var std syncBuffer
	logger := logrus.StandardLogger()
	old := logger.Out
	logger.SetOutput(&std)
	t.Cleanup(func() { logger.SetOutput(old) })

	var log syncBuffer
	addr, stop := start(t, t.TempDir(), &log)
	pull(t, push(t, addr, "ferry/quiet"))
	// A missing manifest is the client's problem, not the operator's.
	missing, err := name.NewDigest(addr + "/ferry/quiet@sha256:" + strings.Repeat("0", 64))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Head(missing, remote.WithContext(t.Context())); err == nil {
		t.Fatalf("HEAD %s succeeded", missing)
	}
	stop()
	if s := log.String(); s != "" {
		t.Errorf("Config.Log got:\n%s", s)
	}
	if s := std.String(); s != "" {
		t.Errorf("logrus's standard output got:\n%s", s)
	}

	// Entries of other logrus users still reach the standard output.
	logrus.Warn("someone else's warning")
	if s := std.String(); !strings.Contains(s, "someone else's warning") {
		t.Errorf("logrus's standard output lost another user's entry; got %q", s)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestErrorsReachLog breaks the storage under a running registry, and
// checks that the errors it then meets reach Config.Log, and only it.
func TestErrorsReachLog(t *testing.T) {
	var std syncBuffer
	logger := logrus.StandardLogger()
	old := logger.Out
	logger.SetOutput(&std)
	t.Cleanup(func() { logger.SetOutput(old) })

	var log syncBuffer
	dir := t.TempDir()
	addr, stop := start(t, dir, &log)
	// A file where the storage driver wants its root folder.
	if err := os.WriteFile(filepath.Join(dir, "docker"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(addr + "/ferry/broken:latest")
	if err != nil {
		t.Fatal(err)
	}
	// No retries: the storage stays broken.
	once := []remote.Option{remote.WithContext(t.Context()), remote.WithRetryBackoff(remote.Backoff{Steps: 1}), remote.WithRetryStatusCodes()}
	if err := remote.Write(ref, img, once...); err == nil {
		t.Fatal("push succeeded onto broken storage")
	}
	stop()
	if s := log.String(); !strings.Contains(s, "level=error") {
		t.Errorf("Config.Log has no error; got:\n%s", s)
	}
	if s := std.String(); s != "" {
		t.Errorf("logrus's standard output got:\n%s", s)
	}
}

// TestPurgerLinesDropped: the upload purger's lines, which name no
// registry, do not reach the standard logger's output; another user's
// info line still does.
func TestPurgerLinesDropped(t *testing.T) {
	var log syncBuffer
	_, stop := start(t, t.TempDir(), &log) // installs the routing formatter
	stop()
	var std syncBuffer
	logger := logrus.StandardLogger()
	old := logger.Out
	logger.SetOutput(&std)
	t.Cleanup(func() { logger.SetOutput(old) })
	logrus.Infof("PurgeUploads starting: olderThan=%s, actuallyDelete=%t", "then", true)
	logrus.Infof("Purge uploads finished.  Num deleted=%d, num errors=%d", 0, 1)
	if s := std.String(); s != "" {
		t.Fatalf("the purger's lines reached the output:\n%s", s)
	}
	logrus.Info("someone else's line")
	if s := std.String(); !strings.Contains(s, "someone else's line") {
		t.Fatalf("another user's line was dropped: %q", s)
	}
}
