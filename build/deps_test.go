package build

import (
	"archive/zip"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferrycd/ferry/test/testreg"
)

// writeWheel writes a pure-Python wheel of the package greet, as pip
// expects one: the module, METADATA, WHEEL and a RECORD of hashes.
func writeWheel(t testing.TB, path string) {
	t.Helper()
	writeWheelWith(t, path, "def greet(name):\n    return 'hello, ' + name\n")
}

// writeWheelWith writes the wheel with the given greet/__init__.py.
func writeWheelWith(t testing.TB, path, module string) {
	t.Helper()
	files := []struct{ name, body string }{
		{"greet/__init__.py", module},
		{"greet-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: greet\nVersion: 1.0\n"},
		{"greet-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: ferry-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"},
	}
	var record strings.Builder
	for _, f := range files {
		sum := sha256.Sum256([]byte(f.body))
		fmt.Fprintf(&record, "%s,sha256=%s,%d\n", f.name, base64.RawURLEncoding.EncodeToString(sum[:]), len(f.body))
	}
	record.WriteString("greet-1.0.dist-info/RECORD,,\n")
	files = append(files, struct{ name, body string }{"greet-1.0.dist-info/RECORD", record.String()})
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(out)
	for _, f := range files {
		w, err := zw.Create(f.name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(f.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestDependencies installs each runtime's dependencies at build time,
// into their own layer, and runs the function that imports them.
func TestDependencies(t *testing.T) {
	reg := testreg.Embedded(t, "").Addr
	for _, rt := range []string{"python", "nodejs"} {
		t.Run(rt, func(t *testing.T) {
			fixture := map[string]string{"python": "python-deps", "nodejs": "node-deps"}[rt]
			dir := copyTree(t, filepath.Join("testdata", fixture), 0o644, commitTime)
			if rt == "python" {
				writeWheel(t, filepath.Join(dir, "fn", "wheels", "greet-1.0-py3-none-any.whl"))
			}
			src, set := loadRepo(t, dir)
			cacheDir := t.TempDir()
			b := newTestBuilder(t, reg, cacheDir, nil)
			img, err := b.Build(context.Background(), src, set.Function("greeter"), testInfo)
			if err != nil {
				t.Fatal(err)
			}
			pulled := pull(t, img.Ref)
			layers, err := pulled.Layers()
			if err != nil {
				t.Fatal(err)
			}
			if len(layers) != 3 {
				t.Fatalf("%d layers, want dependencies, invoker, code", len(layers))
			}
			root := extract(t, pulled)
			installed := map[string]string{"python": "ferry/deps/greet/__init__.py", "nodejs": "ferry/node_modules/greet/index.js"}[rt]
			if _, err := os.Stat(filepath.Join(root, installed)); err != nil {
				t.Fatalf("dependency not installed: %v", err)
			}
			if rt == "python" {
				matches, _ := filepath.Glob(filepath.Join(root, "ferry/deps/*.dist-info/direct_url.json"))
				if len(matches) != 0 {
					t.Errorf("pip's record of the build machine's paths is in the image: %v", matches)
				}
			}
			cfg, _ := pulled.ConfigFile()
			ep := cfg.Config.Entrypoint
			cmd := exec.Command(ep[0], filepath.Join(root, ep[1]))
			cmd.Env = append(os.Environ(), "FERRY_HANDLER="+configEnv(t, pulled, "FERRY_HANDLER"))
			got := invoke(t, serve(t, cmd), `{"name":"ferry"}`)
			if want := map[string]any{"message": "hello, ferry"}; !reflect.DeepEqual(got, want) {
				t.Fatalf("reply %v, want %v", got, want)
			}

			// A code edit in a later commit reuses the dependency layer:
			// nothing is installed and only the code layer and the config
			// are uploaded.
			writeFiles(t, dir, map[string]string{"fn/extra.txt": "more\n"})
			later := Info{SourceURL: testInfo.SourceURL, Revision: strings.Repeat("c", 40), Time: commitTime.Add(24 * time.Hour)}
			rec := &requests{}
			depsDigest := func(img *Image) v1.Hash {
				t.Helper()
				ls, err := pull(t, img.Ref).Layers()
				if err != nil {
					t.Fatal(err)
				}
				d, _ := ls[0].Digest()
				return d
			}
			build := func(info Info) *Image {
				t.Helper()
				src, set := loadRepo(t, dir)
				img, err := newTestBuilder(t, reg, cacheDir, rec).Build(context.Background(), src, set.Function("greeter"), info)
				if err != nil {
					t.Fatal(err)
				}
				return img
			}
			img2 := build(later)
			if depsDigest(img2) != depsDigest(img) {
				t.Errorf("the dependency layer changed with the code")
			}
			if n := rec.count("POST "); n != 2 {
				t.Errorf("a code edit started %d uploads, want 2 (code and config): %v", n, rec.writes())
			}

			// A change to a local dependency is a change of the
			// dependencies, though the lock file is the same.
			switch rt {
			case "python":
				writeWheelWith(t, filepath.Join(dir, "fn", "wheels", "greet-1.0-py3-none-any.whl"), "def greet(name):\n    return 'hi, ' + name\n")
			case "nodejs":
				writeFiles(t, dir, map[string]string{"fn/vendor/greet/index.js": "module.exports = (name) => 'hi, ' + name;\n"})
			}
			img3 := build(later)
			if depsDigest(img3) == depsDigest(img2) {
				t.Fatal("a changed local dependency kept the old dependency layer")
			}
			root = extract(t, pull(t, img3.Ref))
			data, err := os.ReadFile(filepath.Join(root, installed))
			if err != nil || !strings.Contains(string(data), "hi, ") {
				t.Fatalf("the image has the old dependency: %q %v", data, err)
			}
		})
	}
}

// TestNodeNeedsLock: dependencies without a lock file cannot be installed
// reproducibly, and the error says what to do.
func TestNodeNeedsLock(t *testing.T) {
	reg := testreg.Embedded(t, "").Addr
	dir := copyTree(t, filepath.Join("testdata", "node-deps"), 0o644, commitTime)
	if err := os.Remove(filepath.Join(dir, "fn", "package-lock.json")); err != nil {
		t.Fatal(err)
	}
	src, set := loadRepo(t, dir)
	_, err := newTestBuilder(t, reg, "", nil).Build(context.Background(), src, set.Function("greeter"), testInfo)
	if err == nil || !strings.Contains(err.Error(), "package-lock.json") {
		t.Fatalf("err = %v", err)
	}
}

// TestInstallerEnvKeepsNoSecret: pip and npm get where programs, caches
// and proxies are, never the rest of ferry's environment.
func TestInstallerEnvKeepsNoSecret(t *testing.T) {
	got := installerEnv([]string{"PATH=/usr/bin", "HOME=/h", "ADMIN_TOKEN=t0ken", "FERRY_SECRET_KEY=k3y",
		"PIP_INDEX_URL=https://pypi.example/simple", "npm_config_registry=https://npm.example", "LC_ALL=C", "HTTPS_PROXY=http://p:3128", "GITHUB_TOKEN=gh"})
	want := []string{"PATH=/usr/bin", "HOME=/h", "PIP_INDEX_URL=https://pypi.example/simple", "npm_config_registry=https://npm.example", "LC_ALL=C", "HTTPS_PROXY=http://p:3128"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("installerEnv kept %q, want %q", got, want)
	}
}
