package test

import (
	"archive/tar"
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferrycd/ferry/build"
)

// registryProcess is `ferry registry serve` running as a user starts it.
type registryProcess struct {
	addr    string
	cmd     *exec.Cmd
	done    chan error
	stopped bool
}

// startRegistry runs `ferry registry serve` on a free port with its data
// in dir, and waits for the line that says where it serves.
func startRegistry(t *testing.T, dir string) *registryProcess {
	t.Helper()
	cmd := exec.Command(ferryBin, "registry", "serve", "--addr", "127.0.0.1:0", "--data", dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &registryProcess{cmd: cmd, done: make(chan error, 1)}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
		r.done <- cmd.Wait()
	}()
	t.Cleanup(func() { r.stop(t) })
	select {
	case line := <-lines:
		m := regexp.MustCompile(`^registry: serving on http://(127\.0\.0\.1:\d+) \(data .+\)$`).FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("registry serve printed %q", line)
		}
		r.addr = m[1]
	case <-time.After(60 * time.Second):
		t.Fatal("registry serve did not start")
	}
	return r
}

// stop sends SIGTERM and checks the registry exits cleanly.
func (r *registryProcess) stop(t *testing.T) {
	if r.stopped {
		return
	}
	r.stopped = true
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("registry serve exited with %v after SIGTERM", err)
		}
	case <-time.After(60 * time.Second):
		_ = r.cmd.Process.Kill()
		t.Error("registry serve did not stop on SIGTERM")
	}
}

// buildJSON is what `ferry build -o json` prints.
type buildJSON struct {
	Functions []struct {
		Name, Image, Digest string
		Cached              bool
	} `json:"functions"`
	Release struct{ Ref, Digest string } `json:"release"`
}

// TestBuildCommand builds the examples with the CLI into the embedded
// registry, rebuilds from the cache, restarts the registry and pulls the
// release back by digest.
func TestBuildCommand(t *testing.T) {
	data := t.TempDir()
	reg := startRegistry(t, data)
	cache := t.TempDir()
	for _, rt := range []string{"python", "go"} {
		t.Run(rt, func(t *testing.T) {
			repo := reg.addr + "/e2e-" + rt
			args := []string{"build", "examples/" + rt, "--registry", repo, "--cache", cache, "--base", "python=scratch", "-o", "json"}
			r := ferry(t, args...)
			if r.code != 0 {
				t.Fatalf("ferry build: %+v", r)
			}
			var first buildJSON
			if err := json.Unmarshal([]byte(r.stdout), &first); err != nil {
				t.Fatalf("-o json printed %q: %v", r.stdout, err)
			}
			if len(first.Functions) != 1 {
				t.Fatalf("functions %+v", first.Functions)
			}
			f := first.Functions[0]
			if f.Name != "hello" || f.Cached || f.Image != repo+"/hello@"+f.Digest || !strings.HasPrefix(f.Digest, "sha256:") {
				t.Fatalf("function %+v", f)
			}
			if first.Release.Ref != repo+"@"+first.Release.Digest {
				t.Fatalf("release %+v", first.Release)
			}
			r = ferry(t, args...)
			var second buildJSON
			if err := json.Unmarshal([]byte(r.stdout), &second); err != nil || r.code != 0 {
				t.Fatalf("second build: %+v %v", r, err)
			}
			if !second.Functions[0].Cached || second.Functions[0].Digest != f.Digest || second.Release.Digest != first.Release.Digest {
				t.Fatalf("a rebuild of the same tree: %+v, first %+v", second, first)
			}
			// The table names the function, its image and the release.
			table := ferry(t, args[:len(args)-2]...)
			if table.code != 0 || !strings.Contains(table.stdout, "hello") || !strings.Contains(table.stdout, f.Image) || !strings.Contains(table.stdout, "release "+first.Release.Ref) {
				t.Fatalf("table: %+v", table)
			}
		})
	}

	// Images and releases survive a restart of the registry.
	r := ferry(t, "build", "examples/nodejs", "--registry", reg.addr+"/e2e-nodejs", "--cache", cache, "--base", "nodejs=scratch", "-o", "json")
	var out buildJSON
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || r.code != 0 {
		t.Fatalf("nodejs: %+v %v", r, err)
	}
	reg.stop(t)
	reg2 := startRegistry(t, data)
	ref := strings.Replace(out.Release.Ref, reg.addr, reg2.addr, 1)
	rel, err := build.PullRelease(context.Background(), ref)
	if err != nil {
		t.Fatalf("after a restart: %v", err)
	}
	imgs := rel.FunctionImages()
	if len(imgs) != 1 || !strings.HasSuffix(imgs[0].Image, "/e2e-nodejs/hello@"+out.Functions[0].Digest) {
		t.Fatalf("release images %+v", imgs)
	}
}

// TestBuildCommandErrors: a build that cannot run exits 1 with a message
// that says what to do. (That a failed function keeps the release from
// being pushed is tested in package build.)
func TestBuildCommandErrors(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no registry", []string{"build", "examples/python"}, "--registry HOST:PORT/REPO"},
		{"unreachable registry", []string{"build", "examples/python", "--registry", dead + "/x", "--base", "python=scratch", "--cache", t.TempDir()}, "unreachable"},
		{"bad base flag", []string{"build", "examples/python", "--registry", dead + "/x", "--base", "python"}, "RUNTIME=IMAGE"},
		{"invalid manifest", []string{"build", "examples/bad/unknown-field", "--registry", dead + "/x"}, "examples/bad/unknown-field/ferry.yaml:"},
		{"bad output", []string{"build", "examples/python", "--registry", dead + "/x", "-o", "yaml"}, "-o json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ferry(t, tc.args...)
			if r.code != 1 || !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want 1 and %q", r.code, r.stderr, tc.want)
			}
		})
	}
}

// TestBuildLeavesIgnoredFilesOut: a file Git ignores (a .env) never
// reaches an image, though it is in the working tree that is built.
func TestBuildLeavesIgnoredFilesOut(t *testing.T) {
	reg := startRegistry(t, t.TempDir())
	dir := t.TempDir()
	cp := exec.Command("cp", "-r", "examples/python/.", dir)
	cp.Dir = root
	if out, err := cp.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for _, args := range [][]string{{"init", "-q"}, {"add", "."}, {"-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "c"}} {
		git := exec.Command("git", append([]string{"-C", dir}, args...)...)
		git.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
		if out, err := git.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, ".gitignore"), []byte(".env\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "hello", ".env"), []byte("SECRET=hunter2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := ferry(t, "build", dir, "--registry", reg.addr+"/ignored", "--base", "python=scratch", "--cache", t.TempDir(), "-o", "json")
	var out buildJSON
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || r.code != 0 {
		t.Fatalf("%+v %v", r, err)
	}
	ref, err := name.ParseReference(out.Functions[0].Image)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	var files []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, h.Name)
	}
	joined := strings.Join(files, " ")
	if strings.Contains(joined, ".env") || !strings.Contains(joined, "ferry/function/main.py") {
		t.Fatalf("image files: %v", files)
	}
}
