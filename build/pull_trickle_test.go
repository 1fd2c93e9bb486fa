package build

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// A registry that answers a release's manifest with its headers at once,
// then sends the body a byte at a time and never finishes, fails the pull
// within a bound of the registry timeout, instead of holding the deploy
// (or ferry's start, which pulls each environment's release) for good.
func TestPullFromATricklingRegistryEnds(t *testing.T) {
	const digest = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		w.Header().Set("Docker-Content-Digest", digest)
		w.Header().Set("Content-Length", "100000")
		w.WriteHeader(http.StatusOK)
		for {
			if _, err := w.Write([]byte(" ")); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}))
	t.Cleanup(srv.Close)
	const timeout = 300 * time.Millisecond
	ref := strings.TrimPrefix(srv.URL, "http://") + "/ferry@" + digest
	done := make(chan error, 1)
	go func() {
		_, err := PullRelease(t.Context(), ref, WithInsecure(true), WithRegistryTimeout(timeout), WithRetry(2, time.Millisecond, 1))
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("the pull from a trickling registry worked")
		}
		t.Logf("pull: %v", err)
	case <-time.After(200 * timeout):
		t.Fatalf("the pull from a registry trickling its answer still waits after %v, with a registry timeout of %v", 200*timeout, timeout)
	}
}

// An answer whose body starts and then stops fails once nothing came for
// the registry timeout, naming the registry and the stop, not only when a
// bound on the whole transfer passes.
func TestStalledBodyFailsAtTheRegistryTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		w.WriteHeader(http.StatusOK)
		w.Write([]byte("part of it"))
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	const timeout = 300 * time.Millisecond
	client := &http.Client{Transport: RegistryTransport(timeout)}
	resp, err := client.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	done := make(chan error, 1)
	go func() {
		_, err := io.ReadAll(resp.Body)
		done <- err
	}()
	select {
	case err := <-done:
		var na *NoAnswerError
		if !errors.As(err, &na) || !na.Body {
			t.Fatalf("reading a stalled body: got %v, want a NoAnswerError for the body", err)
		}
		host := strings.TrimPrefix(srv.URL, "http://")
		if want := "the registry " + host + " stopped sending its answer for 300ms"; err.Error() != want {
			t.Fatalf("error %q, want %q", err, want)
		}
	case <-time.After(100 * timeout):
		t.Fatalf("a body stalled for %v still blocks its reader, with a registry timeout of %v", 100*timeout, timeout)
	}
}

// A body that keeps coming, however slowly, is not cut while each piece
// comes within the registry timeout.
func TestSlowBodyIsNotStalled(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10")
		w.WriteHeader(http.StatusOK)
		for range 10 {
			w.Write([]byte("x"))
			w.(http.Flusher).Flush()
			time.Sleep(50 * time.Millisecond)
		}
	}))
	t.Cleanup(srv.Close)
	client := &http.Client{Transport: RegistryTransport(2 * time.Second)}
	resp, err := client.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || string(b) != "xxxxxxxxxx" {
		t.Fatalf("read %q, %v; want the whole body", b, err)
	}
}

// Pulls with the same registry timeout share their connections: each
// call with a transport of its own would leave its idle connections open
// until their timeout, hundreds of them in a storm of runs.
func TestPullsShareTheirConnections(t *testing.T) {
	// why by the handler: the pull first tries HTTPS, a handshake this
	// plain server refuses on a connection of its own; the connections
	// that carried a request are the pool's.
	var mu sync.Mutex
	served := map[string]bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		served[r.RemoteAddr] = true
		mu.Unlock()
		if r.URL.Path == "/v2/" {
			w.WriteHeader(http.StatusOK)
			return
		}
		http.Error(w, `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"no such manifest"}]}`, http.StatusNotFound)
	}))
	t.Cleanup(srv.Close)
	ref := strings.TrimPrefix(srv.URL, "http://") + "/ferry@sha256:" + strings.Repeat("0", 64)
	for range 5 {
		if _, err := PullRelease(t.Context(), ref, WithInsecure(true), WithRegistryTimeout(7*time.Second)); err == nil {
			t.Fatal("a pull of a manifest the registry does not have worked")
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if n := len(served); n != 1 {
		t.Fatalf("5 pulls one after the other used %d connections to the registry, want 1", n)
	}
}
