package manifests

import (
	"bytes"
	"context"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

// FuzzLoad feeds arbitrary bytes to the loader as ferry.yaml, in a
// repository holding one function folder per runtime. Whatever the input,
// Load must not panic or hang, every error must carry file:line:col, and
// anything it accepts must render to bytes that load back and render the
// same (the property a release's identity rests on).
func FuzzLoad(f *testing.F) {
	for _, dir := range []string{"go", "python", "nodejs"} {
		if b, err := os.ReadFile(filepath.Join("..", "examples", dir, ManifestFile)); err == nil {
			f.Add(b)
		}
	}
	bad, _ := filepath.Glob(filepath.Join("..", "examples", "bad", "*", ManifestFile))
	for _, p := range bad {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	if b, err := os.ReadFile(filepath.Join("testdata", "render", "full", ManifestFile)); err == nil {
		f.Add(b)
	}
	f.Add([]byte(pyFunction + httpDoc("h", "function: fn\npath: /h") + pipelineDoc("stages: [{name: dev}, {name: qa, from: [dev]}]")))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("{"))

	base := fuzzRepo()
	f.Fuzz(func(t *testing.T, data []byte) {
		fsys := maps.Clone(base)
		fsys[ManifestFile] = &fstest.MapFile{Data: data, Mode: 0o644}
		set, err := Load(context.Background(), fsys)
		if err != nil {
			positioned(t, err)
			return
		}
		first, err := Render(set)
		if err != nil {
			t.Fatalf("Render of a valid set failed: %v", err)
		}
		if again, _ := Render(set); !bytes.Equal(first, again) {
			t.Fatalf("two renders differ")
		}
		fsys[ManifestFile] = &fstest.MapFile{Data: first, Mode: 0o644}
		set2, err := Load(context.Background(), fsys)
		if err != nil {
			t.Fatalf("rendering does not load back: %v\ninput:\n%s\nrendering:\n%s", err, data, first)
		}
		second, err := Render(set2)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(first, second) {
			t.Fatalf("round trip changed the rendering:\n%s\n---\n%s", first, second)
		}
		if _, err := RenderJSON(set); err != nil {
			t.Fatalf("RenderJSON: %v", err)
		}
	})
}

// fuzzRepo is a repository with code for every runtime, at the folder
// names the seeds use.
func fuzzRepo() fstest.MapFS {
	m := repo("", nil)
	for _, rt := range []string{"go", "python", "nodejs"} {
		ex := filepath.Join("..", "examples", rt, "hello")
		entries, err := os.ReadDir(ex)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if b, err := os.ReadFile(filepath.Join(ex, e.Name())); err == nil && !strings.HasSuffix(e.Name(), "_test.go") {
				m["hello/"+e.Name()] = &fstest.MapFile{Data: b, Mode: 0o644}
			}
		}
	}
	m["functions/thumbnail/main.py"] = &fstest.MapFile{Data: []byte("def handle(e, c): pass\n"), Mode: 0o644}
	m["functions/report/index.js"] = &fstest.MapFile{Data: []byte("exports.handler = () => 1;\n"), Mode: 0o644}
	return m
}
