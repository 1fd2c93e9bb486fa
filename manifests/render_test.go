package manifests

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"testing/fstest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// goldenRepos are the repositories whose renderings are kept as golden
// files.
var goldenRepos = map[string]string{
	"full":   filepath.Join("testdata", "render", "full"),
	"go":     filepath.Join("..", "examples", "go"),
	"python": filepath.Join("..", "examples", "python"),
	"nodejs": filepath.Join("..", "examples", "nodejs"),
}

func TestRenderGolden(t *testing.T) {
	for name, dir := range goldenRepos {
		t.Run(name, func(t *testing.T) {
			set := loadDir(t, dir)
			for ext, render := range map[string]func(*Set) ([]byte, error){"yaml": Render, "json": RenderJSON} {
				got, err := render(set)
				if err != nil {
					t.Fatal(err)
				}
				golden := filepath.Join("testdata", "golden", name+"."+ext)
				if *update {
					if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(golden, got, 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (run go test -run TestRenderGolden -update to write it)", err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s differs from %s:\n%s", ext, golden, got)
				}
			}
			js, _ := RenderJSON(set)
			var list struct{ Items []map[string]any }
			if err := json.Unmarshal(js, &list); err != nil || len(list.Items) != len(set.Objects()) {
				t.Errorf("JSON rendering holds %d items (%v), want %d", len(list.Items), err, len(set.Objects()))
			}
		})
	}
}

// TestRenderCanonical: manifests that mean the same render to the same
// bytes, however they are written.
func TestRenderCanonical(t *testing.T) {
	tidy := pyFunction + httpDoc("h", "function: fn\npath: /h\nmethods: [GET, POST]") +
		obj("CronTrigger", "c", "function: fn\nschedule: \"@daily\"\ndata: {a: 1, b: [x, y]}")
	untidy := "" +
		"---\nkind: CronTrigger\napiVersion: ferry.dev/v1alpha1\nmetadata: {name: c}\nspec: {data: {b: [x, y], a: 1}, schedule: \"@daily\", function: fn, timeZone: UTC}\n" +
		"---\nspec: {methods: [post, get, GET], path: /h/, function: fn}\nmetadata: {name: h}\nkind: HTTPTrigger\napiVersion: ferry.dev/v1alpha1\n" +
		"---\napiVersion: ferry.dev/v1alpha1\nkind: Function\nmetadata:\n  labels: {app: photos}\n  name: fn\nspec:\n  source: ./fn/\n  runtime: python\n  handler: main.handle\n  timeout: 30000ms\n  memory: 134217728\n  scale: {max: 10, min: 0}\n" +
		"---\napiVersion: ferry.dev/v1alpha1\nkind: Pipeline\nmetadata: {name: default}\nspec:\n  stages: [{name: dev, auto: true}, {name: staging, auto: true, from: [dev]}, {name: prod, approval: {required: 1}}]\n  previews: {enabled: false, ttl: 72h}\n"
	a, err := Render(mustLoad(t, tidy, nil))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Render(mustLoad(t, untidy, nil))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatalf("same meaning, different bytes:\n--- tidy\n%s\n--- untidy\n%s", a, b)
	}
}

// TestRenderStable renders every golden repository many times, from fresh
// loads, and checks the bytes never change: map order must not leak.
func TestRenderStable(t *testing.T) {
	for name, dir := range goldenRepos {
		var first []byte
		for i := 0; i < 20; i++ {
			got, err := Render(loadDir(t, dir))
			if err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				first = got
			} else if !bytes.Equal(first, got) {
				t.Fatalf("%s: render %d differs from the first", name, i)
			}
		}
	}
}

// TestRenderRoundTrip: a rendering loads back into a set that renders to
// the same bytes, so a release's manifest can be deployed from the
// registry alone.
func TestRenderRoundTrip(t *testing.T) {
	for name, dir := range goldenRepos {
		t.Run(name, func(t *testing.T) {
			first, err := Render(loadDir(t, dir))
			if err != nil {
				t.Fatal(err)
			}
			again := reRender(t, dir, first)
			if !bytes.Equal(first, again) {
				t.Fatalf("round trip changed the rendering:\n%s\n---\n%s", first, again)
			}
		})
	}
}

// reRender loads rendered as the manifest of the repository in dir (for
// its code files) and renders it again.
func reRender(t testing.TB, dir string, rendered []byte) []byte {
	t.Helper()
	fsys := fstest.MapFS{}
	if err := copyTree(os.DirFS(dir), fsys); err != nil {
		t.Fatal(err)
	}
	fsys[ManifestFile] = &fstest.MapFile{Data: rendered, Mode: 0o644}
	set, errs := loadFS(t, fsys)
	if errs != nil {
		t.Fatalf("rendering does not load back: %v\n%s", ErrorList(errs), rendered)
	}
	out, err := Render(set)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRenderLeavesSetAlone: Render defaults a copy, not the caller's set.
func TestRenderLeavesSetAlone(t *testing.T) {
	s := newSet()
	fn := mustLoad(t, pyFunction, nil).Functions[0].DeepCopy()
	fn.Spec.Timeout, fn.Spec.Memory, fn.Spec.Scale = nil, nil, nil
	s.add(fn, nil)
	before := fn.DeepCopy()
	if _, err := Render(s); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(before, fn) {
		t.Fatalf("Render changed its input: %+v", fn.Spec)
	}
	if s.Pipeline != nil {
		t.Fatal("Render added a Pipeline to its input")
	}
}

func ExampleRender() {
	repo := fstest.MapFS{
		"ferry.yaml": {Data: []byte(`
apiVersion: ferry.dev/v1alpha1
kind: HTTPTrigger
metadata: {name: hello}
spec: {function: hello, path: /hello/, methods: [post]}
---
apiVersion: ferry.dev/v1alpha1
kind: Function
metadata: {name: hello}
spec: {runtime: python, source: ./hello}
---
apiVersion: ferry.dev/v1alpha1
kind: Pipeline
spec:
  stages: [{name: dev, auto: true}]
  previews: {enabled: false}
`)},
		"hello/main.py": {Data: []byte("def handle(event, context):\n    return event\n")},
	}
	set, err := Load(context.Background(), repo)
	if err != nil {
		fmt.Println(err)
		return
	}
	out, _ := Render(set)
	fmt.Print(string(out))
	// Output:
	// apiVersion: ferry.dev/v1alpha1
	// kind: Function
	// metadata:
	//   name: hello
	// spec:
	//   handler: main.handle
	//   memory: 128Mi
	//   runtime: python
	//   scale:
	//     concurrency: 100
	//     max: 10
	//     min: 0
	//   source: hello
	//   timeout: 30s
	// ---
	// apiVersion: ferry.dev/v1alpha1
	// kind: HTTPTrigger
	// metadata:
	//   name: hello
	// spec:
	//   function: hello
	//   methods:
	//     - POST
	//   path: /hello
	// ---
	// apiVersion: ferry.dev/v1alpha1
	// kind: Pipeline
	// metadata:
	//   name: default
	// spec:
	//   previews:
	//     enabled: false
	//     ttl: 72h0m0s
	//   stages:
	//     - auto: true
	//       name: dev
}
