package build

import (
	"net/http"
	"net/http/httptest"
	"strings"
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
