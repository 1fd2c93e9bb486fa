package manifests

import (
	"context"
	"io/fs"
	"os"
	"strings"
	"testing"
	"testing/fstest"
)

// repoFiles are the code files every test repository holds, so that
// functions of each runtime have a handler to find.
var repoFiles = map[string]string{
	"fn/main.py":            "def handle(event, context):\n    return None\n",
	"node/index.js":         "exports.handler = async () => null;\n",
	"gofn/handler.go":       "package gofn\n\nimport \"context\"\n\nfunc Handle(ctx context.Context, in any) (any, error) { return in, nil }\n",
	"gomain/main.go":        "package main\n\nfunc Handle() {}\n",
	"pypkg/app/__init__.py": "def handle(event, context):\n    return None\n",
	"README.md":             "not a folder\n",
}

// pyFunction is a valid python Function document.
const pyFunction = `apiVersion: ferry.dev/v1alpha1
kind: Function
metadata:
  name: fn
  labels: {app: photos}
spec:
  runtime: python
  source: fn
`

// repo builds an in-memory repository: the code files, ferry.yaml, and
// extra files; an extra whose content starts with "->" is a symlink.
func repo(manifest string, extra map[string]string) fstest.MapFS {
	m := fstest.MapFS{}
	for p, c := range repoFiles {
		m[p] = &fstest.MapFile{Data: []byte(c), Mode: 0o644}
	}
	if manifest != "" {
		m[ManifestFile] = &fstest.MapFile{Data: []byte(manifest), Mode: 0o644}
	}
	for p, c := range extra {
		if target, ok := strings.CutPrefix(c, "->"); ok {
			m[p] = &fstest.MapFile{Data: []byte(target), Mode: fs.ModeSymlink | 0o777}
			continue
		}
		m[p] = &fstest.MapFile{Data: []byte(c), Mode: 0o644}
	}
	return m
}

func loadFS(t testing.TB, fsys fs.FS) (*Set, []*Error) {
	t.Helper()
	set, err := Load(context.Background(), fsys)
	if err == nil {
		return set, nil
	}
	return nil, positioned(t, err)
}

// positioned returns the manifest errors in err, failing the test if err
// is another kind of error or one of them lacks its file:line:col.
func positioned(t testing.TB, err error) []*Error {
	t.Helper()
	list := Errors(err)
	if list == nil {
		t.Fatalf("Load failed with an error that is not a manifest error: %v", err)
	}
	for _, e := range list {
		if e.File == "" || e.Line < 1 || e.Column < 1 {
			t.Fatalf("error without file:line:col: %q", e.Error())
		}
	}
	return list
}

// mustLoad loads a manifest that must be valid.
func mustLoad(t testing.TB, manifest string, extra map[string]string) *Set {
	t.Helper()
	set, errs := loadFS(t, repo(manifest, extra))
	if errs != nil {
		t.Fatalf("Load: %v", ErrorList(errs))
	}
	return set
}

// copyTree copies every file and symlink of src into dst.
func copyTree(src fs.FS, dst fstest.MapFS) error {
	return fs.WalkDir(src, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			target, err := fs.ReadLink(src, p)
			if err != nil {
				return err
			}
			dst[p] = &fstest.MapFile{Data: []byte(target), Mode: fs.ModeSymlink | 0o777}
			return nil
		}
		b, err := fs.ReadFile(src, p)
		if err != nil {
			return err
		}
		dst[p] = &fstest.MapFile{Data: b, Mode: 0o644}
		return nil
	})
}

// loadDir loads a repository on disk that must be valid.
func loadDir(t testing.TB, dir string) *Set {
	t.Helper()
	set, errs := loadFS(t, os.DirFS(dir))
	if errs != nil {
		t.Fatalf("%s does not validate: %v", dir, ErrorList(errs))
	}
	return set
}
