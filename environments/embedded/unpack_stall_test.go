package embedded

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ferrycd/ferry/build"
	"github.com/ferrycd/ferry/test/testreg"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// stallingReader gives the first bytes of a body, then nothing until the
// request is gone: a registry that stops in the middle of a layer.
type stallingReader struct {
	inner io.ReadCloser
	left  int
	done  <-chan struct{}
}

func (s *stallingReader) Read(p []byte) (int, error) {
	if s.left <= 0 {
		<-s.done
		return 0, io.ErrUnexpectedEOF
	}
	if len(p) > s.left {
		p = p[:s.left]
	}
	n, err := s.inner.Read(p)
	s.left -= n
	return n, err
}

func (s *stallingReader) Close() error { return s.inner.Close() }

// A deploy's pull from a registry that stops sending a layer half-way
// fails at the registry timeout, saying so, and leaves nothing half
// unpacked: the deploy is not held for good.
func TestImagesRootFailsWhenTheRegistryStops(t *testing.T) {
	reg := testreg.Embedded(t, t.TempDir())
	ref := pushImage(t, reg.Addr, "stall", gzipLayer(t, fileEntry("big", strings.Repeat("ferry ", 100000), 0o644)))
	up, err := url.Parse("http://" + reg.Addr)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(up)
	proxy.FlushInterval = -1 // what is read goes out at once, headers first
	proxy.ErrorLog = log.New(io.Discard, "", 0)
	proxy.ModifyResponse = func(resp *http.Response) error {
		if strings.Contains(resp.Request.URL.Path, "/blobs/") && resp.Request.Method == http.MethodGet {
			resp.Body = &stallingReader{inner: resp.Body, left: 100, done: resp.Request.Context().Done()}
		}
		return nil
	}
	front := httptest.NewServer(proxy)
	t.Cleanup(front.Close)
	frontRef := strings.Replace(ref, reg.Addr, strings.TrimPrefix(front.URL, "http://"), 1)

	const timeout = 300 * time.Millisecond
	s, dir := newTestImages(t, remote.WithTransport(build.RegistryTransport(timeout)))
	done := make(chan error, 1)
	go func() {
		_, _, err := s.root(t.Context(), frontRef)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("an image whose layer stopped half-way was unpacked")
		}
		if !strings.Contains(err.Error(), "stopped sending its answer for 300ms") {
			t.Fatalf("error %q does not say the registry stopped sending", err)
		}
	case <-time.After(200 * timeout):
		t.Fatalf("the pull of a layer the registry stopped sending still waits after %v (registry timeout %v)", 200*timeout, timeout)
	}
	assertNothingLeft(t, dir)
}
