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

	"github.com/ferrycd/ferry/test/testreg"
)

// writeWheel writes a pure-Python wheel of the package greet, as pip
// expects one: the module, METADATA, WHEEL and a RECORD of hashes.
func writeWheel(t testing.TB, path string) {
	t.Helper()
	files := []struct{ name, body string }{
		{"greet/__init__.py", "def greet(name):\n    return 'hello, ' + name\n"},
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

			// A code edit reuses the dependency layer without installing.
			writeFiles(t, dir, map[string]string{"fn/extra.txt": "more\n"})
			src, set = loadRepo(t, dir)
			b2 := newTestBuilder(t, reg, cacheDir, nil)
			img2, err := b2.Build(context.Background(), src, set.Function("greeter"), testInfo)
			if err != nil {
				t.Fatal(err)
			}
			layers2, err := pull(t, img2.Ref).Layers()
			if err != nil {
				t.Fatal(err)
			}
			d1, _ := layers[0].Digest()
			d2, _ := layers2[0].Digest()
			if d1 != d2 {
				t.Errorf("the dependency layer changed with the code: %s then %s", d1, d2)
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
