package build

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/ferrycd/ferry/manifests"
	"github.com/ferrycd/ferry/manifests/v1alpha1"
)

// commitTime is the time the tests stamp, as a commit would.
var commitTime = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

var testInfo = Info{SourceURL: "https://example.com/team/repo", Revision: "0123456789abcdef0123456789abcdef01234567", Time: commitTime}

// requests records the registry requests a builder makes.
type requests struct {
	mu  sync.Mutex
	log []string
}

func (r *requests) wrap(inner http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		r.mu.Lock()
		r.log = append(r.log, req.Method+" "+req.URL.Path)
		r.mu.Unlock()
		return inner.RoundTrip(req)
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func (r *requests) reset() {
	r.mu.Lock()
	r.log = nil
	r.mu.Unlock()
}

// writes lists the requests that store something: blob uploads and
// manifest PUTs.
func (r *requests) writes() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, l := range r.log {
		if strings.HasPrefix(l, "POST ") || strings.HasPrefix(l, "PUT ") || strings.HasPrefix(l, "PATCH ") {
			out = append(out, l)
		}
	}
	return out
}

func (r *requests) count(prefix string) int {
	n := 0
	for _, l := range r.writes() {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

// newTestBuilder returns a builder pushing to reg/test with its own cache
// (or the given one), scratch bases, and fast retries.
func newTestBuilder(t testing.TB, reg, cacheDir string, rec *requests, opts ...Option) *builder {
	t.Helper()
	if cacheDir == "" {
		cacheDir = t.TempDir()
	}
	all := []Option{
		WithCacheDir(cacheDir),
		WithBase(v1alpha1.RuntimePython, Scratch),
		WithBase(v1alpha1.RuntimeNodeJS, Scratch),
		WithRetry(2, 10*time.Millisecond, 2),
	}
	if rec != nil {
		all = append(all, WithTransport(rec.wrap))
	}
	b, err := newBuilder(reg+"/test", append(all, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// loadRepo loads the repository in dir.
func loadRepo(t testing.TB, dir string) (fs.FS, *manifests.Set) {
	t.Helper()
	fsys := os.DirFS(dir)
	set, err := manifests.Load(context.Background(), fsys)
	if err != nil {
		t.Fatalf("load %s: %v", dir, err)
	}
	return fsys, set
}

// copyTree copies the folder src to a new temporary folder, with the given
// file mode bits and mtime, as a second checkout would have.
func copyTree(t testing.TB, src string, perm os.FileMode, mtime time.Time) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		info, _ := d.Info()
		mode := perm
		if info.Mode()&0o100 != 0 {
			mode |= 0o100
		}
		if err := os.WriteFile(target, data, mode); err != nil {
			return err
		}
		if err := os.Chmod(target, mode); err != nil { // past the umask
			return err
		}
		return os.Chtimes(target, mtime, mtime)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// pull fetches an image by reference and validates it.
func pull(t testing.TB, ref string) v1.Image {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r)
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatalf("validate %s: %v", ref, err)
	}
	return img
}

// extract unpacks an image's file system into a new folder.
func extract(t testing.TB, img v1.Image) string {
	t.Helper()
	dir := t.TempDir()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return dir
		}
		if err != nil {
			t.Fatal(err)
		}
		target := filepath.Join(dir, filepath.FromSlash(hdr.Name))
		if !strings.HasPrefix(target, dir+string(filepath.Separator)) {
			t.Fatalf("entry %q escapes", hdr.Name)
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				t.Fatal(err)
			}
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(target, data, os.FileMode(hdr.Mode)&0o777); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// serve starts cmd with PORT set, waits for /healthz, and returns the
// base URL. The process is killed at the end of the test.
func serve(t testing.TB, cmd *exec.Cmd) string {
	t.Helper()
	port := freePort(t)
	cmd.Env = append(cmd.Environ(), fmt.Sprintf("PORT=%d", port), "FUNCTION_NAME=hello")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			t.Fatalf("%s exited early:\n%s", cmd.Path, out.String())
		default:
		}
		resp, err := http.Get(url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return url
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s did not become healthy:\n%s", cmd.Path, out.String())
	return ""
}

// invoke sends a binary-mode CloudEvent with JSON data and decodes the
// JSON reply.
func invoke(t testing.TB, url, data string) map[string]any {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/", strings.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("ce-specversion", "1.0")
	req.Header.Set("ce-id", "evt-1")
	req.Header.Set("ce-source", "/test")
	req.Header.Set("ce-type", "dev.ferry.test")
	req.Header.Set("ce-time", "2026-11-01T12:00:00Z")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("invoke: %d %s", resp.StatusCode, body)
	}
	var out map[string]any
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("reply %q: %v", body, err)
	}
	return out
}

// configEnv returns the value of an environment variable in the image's
// config.
func configEnv(t testing.TB, img v1.Image, key string) string {
	t.Helper()
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range cfg.Config.Env {
		if k, v, _ := strings.Cut(kv, "="); k == key {
			return v
		}
	}
	return ""
}

func annotations(t testing.TB, img v1.Image) map[string]string {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	return m.Annotations
}

// writeFiles writes files (path → content) under dir.
func writeFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		target := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(target, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// execGit runs git in dir with the host's settings out of the way and a
// fixed commit date.
func execGit(dir string, args ...string) *exec.Cmd {
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1", "GIT_COMMITTER_DATE=@1700000000 +0000", "GIT_AUTHOR_DATE=@1700000000 +0000")
	return cmd
}

func sha256Hash(b []byte) (v1.Hash, int64, error) { return v1.SHA256(bytes.NewReader(b)) }
