package build

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/ferrycd/ferry/test/testreg"
)

// TestBadInput: each way a build can fail gives an error that says what
// went wrong and what to do.
func TestBadInput(t *testing.T) {
	reg := testreg.Embedded(t, "").Addr
	build := func(t *testing.T, reg, dir, fn string, opts ...Option) error {
		t.Helper()
		src, set := loadRepo(t, dir)
		_, err := newTestBuilder(t, reg, "", nil, opts...).Build(context.Background(), src, set.Function(fn), testInfo)
		if err == nil {
			t.Fatal("the build succeeded")
		}
		return err
	}
	wantAll := func(t *testing.T, err error, parts ...string) {
		t.Helper()
		for _, p := range parts {
			if !strings.Contains(err.Error(), p) {
				t.Errorf("error %q\nshould contain %q", err, p)
			}
		}
	}

	t.Run("missing handler", func(t *testing.T) {
		dir := copyTree(t, filepath.Join("..", "examples", "python"), 0o644, commitTime)
		src, set := loadRepo(t, dir)
		f := set.Function("hello")
		f.Spec.Handler = "app.handle" // no app.py; Load would refuse it, the builder must too
		_, err := newTestBuilder(t, reg, "", nil).Build(context.Background(), src, f, testInfo)
		if err == nil {
			t.Fatal("built a function without its handler")
		}
		wantAll(t, err, "function hello", `handler "app.handle" needs app.py`)
	})
	t.Run("compile error", func(t *testing.T) {
		dir := copyTree(t, filepath.Join("..", "examples", "go"), 0o644, commitTime)
		writeFiles(t, dir, map[string]string{"hello/broken.go": "package hello\n\nfunc broken() int {\n\treturn undefinedName\n}\n"})
		err := build(t, reg, dir, "hello")
		wantAll(t, err, "hello/broken.go:4:9", "undefinedName")
	})
	t.Run("assembly that includes a host file", func(t *testing.T) {
		// The assembler would quote the file in its errors, into the
		// run's log a viewer reads: a secret of ferry's, say.
		secret := filepath.Join(t.TempDir(), "secret.key")
		writeFiles(t, filepath.Dir(secret), map[string]string{"secret.key": "ferry-secret-not-for-logs\n"})
		for name, include := range map[string]string{"absolute": secret, "climbing": "../../../../../../../../" + secret} {
			t.Run(name, func(t *testing.T) {
				dir := copyTree(t, filepath.Join("..", "examples", "go"), 0o644, commitTime)
				writeFiles(t, dir, map[string]string{"hello/leak_amd64.s": "#include \"" + include + "\"\n"})
				err := build(t, reg, dir, "hello")
				wantAll(t, err, "hello/leak_amd64.s:1", "reaches outside the function's code")
				if strings.Contains(err.Error(), "ferry-secret-not-for-logs") {
					t.Errorf("the build's error quotes the host file: %v", err)
				}
			})
		}
	})
	t.Run("requirements that would run setup code", func(t *testing.T) {
		for _, line := range []string{"./evil", "-e .", "--no-binary :all:", "git+https://example.invalid/x.git", "/srv/lib/pkg.tar.gz"} {
			dir := copyTree(t, filepath.Join("..", "examples", "python"), 0o644, commitTime)
			writeFiles(t, dir, map[string]string{
				"hello/requirements.txt":    "--no-index\n" + line + "\n",
				"hello/evil/pyproject.toml": "[build-system]\nrequires = []\nbuild-backend = \"backend\"\nbackend-path = [\".\"]\n",
				"hello/evil/backend.py":     "import pathlib\npathlib.Path(__file__).with_name(\"RAN\").write_text(\"ran as ferry\")\n",
			})
			err := build(t, reg, dir, "hello")
			wantAll(t, err, "requirements.txt:2", "which ferry does not do outside the sandbox")
			if _, serr := os.Stat(filepath.Join(dir, "hello", "evil", "RAN")); serr == nil {
				t.Errorf("%q: the repository's build backend ran", line)
			}
		}
	})
	t.Run("failed dependency install", func(t *testing.T) {
		dir := copyTree(t, filepath.Join("..", "examples", "python"), 0o644, commitTime)
		writeFiles(t, dir, map[string]string{"hello/requirements.txt": "--no-index\nno-such-package-ferry==1.0\n"})
		err := build(t, reg, dir, "hello")
		wantAll(t, err, "requirements.txt", "no-such-package-ferry", "fix requirements.txt")
	})
	t.Run("unreachable registry", func(t *testing.T) {
		dead := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		err := build(t, dead, filepath.Join("..", "examples", "python"), "hello")
		wantAll(t, err, dead, "unreachable")
	})
	t.Run("hung registry", func(t *testing.T) {
		// It accepts every connection and never answers.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		var conns []net.Conn
		var mu sync.Mutex
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
			}
		}()
		t.Cleanup(func() {
			ln.Close()
			mu.Lock()
			for _, c := range conns {
				c.Close()
			}
			mu.Unlock()
		})
		hung := ln.Addr().String()
		done := make(chan error, 1)
		go func() {
			done <- build(t, hung, filepath.Join("..", "examples", "go"), "hello", WithRegistryTimeout(300*time.Millisecond), WithRetry(2, time.Millisecond, 1))
		}()
		select {
		case err := <-done:
			wantAll(t, err, "no answer from the registry "+hung+" within 300ms", "check that the registry is up and answers")
		case <-time.After(2 * time.Minute): // a Go build and two 300ms waits; only a hang takes this long
			t.Fatal("the build against a registry that never answers hung")
		}
	})
	t.Run("registry goes down", func(t *testing.T) {
		srv := testreg.Process(t, testreg.ProcessOptions{})
		srv.Stop()
		err := build(t, srv.Addr, filepath.Join("..", "examples", "nodejs"), "hello")
		wantAll(t, err, "unreachable")
	})
	t.Run("refused credentials", func(t *testing.T) {
		srv := testreg.Process(t, testreg.ProcessOptions{Htpasswd: testreg.Credentials{Username: "ferry", Password: "right"}})
		wrong := authn.NewMultiKeychain(staticKeychain{authn.FromConfig(authn.AuthConfig{Username: "ferry", Password: "wrong"})})
		err := build(t, srv.Addr, filepath.Join("..", "examples", "python"), "hello", WithKeychain(wrong))
		wantAll(t, err, "refused the credentials", "docker login")
	})
	t.Run("credentials from the Docker config file", func(t *testing.T) {
		srv := testreg.Process(t, testreg.ProcessOptions{Htpasswd: testreg.Credentials{Username: "ferry", Password: "right"}})
		cfgDir := t.TempDir()
		auth := "ferry:right"
		writeFiles(t, cfgDir, map[string]string{"config.json": fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, srv.Addr, b64(auth))})
		t.Setenv("DOCKER_CONFIG", cfgDir)
		src, set := loadRepo(t, filepath.Join("..", "examples", "python"))
		b := newTestBuilder(t, srv.Addr, "", nil, WithKeychain(authn.DefaultKeychain))
		if _, err := b.Build(context.Background(), src, set.Function("hello"), testInfo); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("unknown runtime base option", func(t *testing.T) {
		if _, err := newBuilder(reg+"/x", WithBase("ruby", Scratch)); err == nil || !strings.Contains(err.Error(), "go, python or nodejs") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("registry with a tag", func(t *testing.T) {
		if _, err := newBuilder(reg+"/x:latest", WithCacheDir(t.TempDir())); err == nil || !strings.Contains(err.Error(), "HOST[:PORT]/REPO") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("unpullable base", func(t *testing.T) {
		err := build(t, reg, filepath.Join("..", "examples", "python"), "hello", WithBase("python", reg+"/no/such:tag"))
		wantAll(t, err, "base image", "python=scratch")
	})
}

// TestRetries puts a proxy in front of a real registry that answers 503 the
// first time it sees each request (method and path): the build gets
// through by retrying.
func TestRetries(t *testing.T) {
	target, err := url.Parse("http://" + testreg.Embedded(t, "").Addr)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	var mu sync.Mutex
	seen := map[string]bool{}
	failed := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		// An upload's session id changes with each try; the try is the same.
		p, _, _ := strings.Cut(r.URL.Path, "/uploads/")
		key := r.Method + " " + p
		fail := !seen[key] && r.URL.Path != "/v2/"
		seen[key] = true
		if fail {
			failed++
		}
		mu.Unlock()
		if fail {
			http.Error(w, "try again", http.StatusServiceUnavailable)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	defer srv.Close()
	reg := strings.TrimPrefix(srv.URL, "http://")
	src, set := loadRepo(t, filepath.Join("..", "examples", "python"))
	img, err := newTestBuilder(t, reg, "", nil, WithRetry(5, time.Millisecond, 2)).Build(context.Background(), src, set.Function("hello"), testInfo)
	if err != nil {
		t.Fatalf("with retries: %v", err)
	}
	if failed == 0 {
		t.Fatal("the proxy failed nothing; the test proves nothing")
	}
	pull(t, strings.Replace(img.Ref, reg, target.Host, 1))
}

type staticKeychain struct{ auth authn.Authenticator }

func (k staticKeychain) Resolve(authn.Resource) (authn.Authenticator, error) { return k.auth, nil }

// TestPlainHTTPGuard: plain HTTP goes to loopback registries, and to
// others only when asked.
func TestPlainHTTPGuard(t *testing.T) {
	called := 0
	inner := roundTripFunc(func(*http.Request) (*http.Response, error) {
		called++
		return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
	})
	for _, tc := range []struct {
		url      string
		insecure string // the registry --insecure was given for
		ok       bool
	}{
		{"http://127.0.0.1:5000/v2/", "", true},
		{"http://localhost:5000/v2/", "", true},
		{"http://[::1]:5000/v2/", "", true},
		{"http://10.1.2.3:5000/v2/", "", false},
		{"http://registry.internal:5000/v2/", "", false},
		{"http://10.1.2.3:5000/v2/", "10.1.2.3:5000", true},
		{"http://10.9.9.9:5000/v2/", "10.1.2.3:5000", false}, // --insecure is for one registry only
		{"https://10.1.2.3:5000/v2/", "", true},
	} {
		req, _ := http.NewRequest(http.MethodGet, tc.url, nil)
		_, err := (&plainHTTPGuard{inner: inner, insecureHost: tc.insecure}).RoundTrip(req)
		if (err == nil) != tc.ok {
			t.Errorf("%s insecure for %q: err = %v", tc.url, tc.insecure, err)
		}
		if err != nil && (!strings.Contains(err.Error(), "--insecure") || retryable(err)) {
			t.Errorf("%s: %v should name --insecure and not be retried", tc.url, err)
		}
	}
	if called != 5 {
		t.Errorf("inner transport called %d times, want 5", called)
	}
}

// TestCheckPortable: an image on scratch needs the host's interpreter and
// cannot go to a target without one.
func TestCheckPortable(t *testing.T) {
	if err := CheckPortable("hello", map[string]string{AnnotationRuntime: "go"}); err != nil {
		t.Fatal(err)
	}
	err := CheckPortable("hello", map[string]string{AnnotationRuntime: "python", AnnotationHostInterpreter: "python3"})
	if err == nil || !strings.Contains(err.Error(), "--base python=python:3.12-slim") {
		t.Fatalf("err = %v", err)
	}
}

// TestLocalInfo reads the commit, its time, and a dirty tree from Git.
func TestLocalInfo(t *testing.T) {
	dir := t.TempDir()
	git := func(args ...string) {
		t.Helper()
		cmd := execGit(dir, args...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	info, err := LocalInfo(context.Background(), dir)
	if err != nil || info.Revision != "" {
		t.Fatalf("not a repository: %+v %v", info, err)
	}
	git("init", "-q", "-b", "main")
	writeFiles(t, dir, map[string]string{"a.txt": "a\n"})
	git("add", ".")
	git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "one")
	git("remote", "add", "origin", "https://user:secret@example.com/team/repo.git")
	info, err = LocalInfo(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Revision) != 40 || info.Time.Unix() != 1700000000 || info.SourceURL != "https://example.com/team/repo.git" {
		t.Fatalf("info %+v", info)
	}
	if err := os.WriteFile(filepath.Join(dir, "a.txt"), []byte("changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	info, _ = LocalInfo(context.Background(), dir)
	if !strings.HasSuffix(info.Revision, "-dirty") {
		t.Fatalf("a changed tree: %+v", info)
	}
}
