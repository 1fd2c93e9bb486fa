package manifests

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"text/template"

	"k8s.io/apimachinery/pkg/api/validate/content"

	"github.com/ferrycd/ferry/manifests/v1alpha1"
)

//go:embed scaffold
var scaffoldFS embed.FS

// scaffoldTests is the test command each runtime's scaffold declares; each
// needs nothing but the runtime itself.
var scaffoldTests = map[string]string{
	v1alpha1.RuntimeGo:     "go, test, ./...",
	v1alpha1.RuntimePython: "python3, -m, unittest, -v",
	v1alpha1.RuntimeNodeJS: "node, --test",
}

// dataDirIgnore is the .gitignore Init writes where there is none.
const dataDirIgnore = "# ferry run's data folder: its registry, caches and logs\n.ferry-data/\n"

// InitResult says what Init wrote.
type InitResult struct {
	// Name is the function's name.
	Name string
	// Manifest is the manifest file written or appended to.
	Manifest string
	// Files are the new files, relative to the repository root.
	Files []string
}

// Init adds a new function to the repository in dir (creating dir if need
// be): its code in dir/<name>/, and a Function with an HTTPTrigger on
// /<name> in ferry.yaml, appended if the file exists, and a .gitignore of
// ferry run's data folder where there is none. An empty name means
// the folder's own name when that is a valid name, as most scaffolding
// tools do, else "hello". It never overwrites a file. If the repository
// does not validate afterwards, Init puts back everything as it was and
// returns the validation errors.
func Init(ctx context.Context, dir, runtime, name string) (*InitResult, error) {
	if name == "" {
		name = defaultFunctionName(dir)
	}
	if !slices.Contains(v1alpha1.Runtimes, runtime) {
		return nil, fmt.Errorf("runtime %q is not supported (use %s)", runtime, orList(v1alpha1.Runtimes))
	}
	if len(content.IsDNS1123Label(name)) > 0 {
		return nil, fmt.Errorf("%q is not a valid function name; %s", name, nameRule(name))
	}
	data := map[string]string{
		"Name":    name,
		"Runtime": runtime,
		"Handler": DefaultHandler[runtime],
		"Source":  name,
		"Test":    scaffoldTests[runtime],
		"Package": suggestIdent(name),
		"Module":  "example.com/" + name,
	}
	files := map[string][]byte{}
	tmpls, err := fs.ReadDir(scaffoldFS, "scaffold/"+runtime)
	if err != nil {
		return nil, err
	}
	for _, t := range tmpls {
		out := strings.TrimSuffix(t.Name(), ".tmpl")
		b, err := execTemplate(path.Join("scaffold", runtime, t.Name()), data)
		if err != nil {
			return nil, err
		}
		if out == "go.mod" {
			// A repository has one module at its root; write it only if
			// there is none yet.
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				continue
			}
			files[out] = b
			continue
		}
		files[path.Join(name, out)] = b
	}
	// why: ferry run keeps its data in .ferry-data/ by default; a commit
	// of it would carry the registry and the caches.
	if _, err := os.Stat(filepath.Join(dir, ".gitignore")); errors.Is(err, fs.ErrNotExist) {
		files[".gitignore"] = []byte(dataDirIgnore)
	}
	docs, err := execTemplate("scaffold/manifest.yaml.tmpl", data)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
		return nil, fmt.Errorf("%s already exists; choose another name with --name", filepath.Join(dir, name))
	}
	manifest, old, err := manifestTarget(dir, name)
	if err != nil {
		return nil, err
	}
	if old != nil {
		// Build the new content in its own slice: old is what undo puts back.
		sep := "---\n"
		if len(old) > 0 && !bytes.HasSuffix(old, []byte("\n")) {
			sep = "\n---\n"
		}
		docs = slices.Concat(old, []byte(sep), docs)
	}
	w := &writer{root: dir}
	if err := w.apply(files, manifest, docs, old); err != nil {
		w.undo()
		return nil, err
	}
	if _, err := Load(ctx, os.DirFS(dir)); err != nil {
		w.undo()
		return nil, fmt.Errorf("the new function would leave the repository invalid, so nothing was written:\n%w", err)
	}
	return &InitResult{Name: name, Manifest: manifest, Files: slices.Sorted(maps.Keys(files))}, nil
}

// defaultFunctionName names a function after its folder if that makes a
// valid name.
func defaultFunctionName(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "hello"
	}
	if base := strings.ToLower(filepath.Base(abs)); len(content.IsDNS1123Label(base)) == 0 {
		return base
	}
	return "hello"
}

func execTemplate(name string, data any) ([]byte, error) {
	t, err := template.ParseFS(scaffoldFS, name)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// manifestTarget picks where the new objects go: ferry.yaml (or ferry.yml)
// if it exists or if there is no .ferry/ folder, else .ferry/<name>.yaml. It returns the
// file's current content, or nil if it does not exist yet.
func manifestTarget(dir, name string) (string, []byte, error) {
	for _, f := range rootManifests {
		old, err := os.ReadFile(filepath.Join(dir, f))
		switch {
		case err == nil:
			return f, old, nil
		case !errors.Is(err, fs.ErrNotExist):
			return "", nil, err
		}
	}
	if info, err := os.Stat(filepath.Join(dir, ManifestDir)); err == nil && info.IsDir() {
		p := path.Join(ManifestDir, name+".yaml")
		if _, err := os.Stat(filepath.Join(dir, p)); err == nil {
			return "", nil, fmt.Errorf("%s already exists; choose another name with --name", filepath.Join(dir, p))
		}
		return p, nil, nil
	}
	return ManifestFile, nil, nil
}

// writer writes files and remembers how to undo it.
type writer struct {
	root    string
	created []string // files and folders made, in order
	// rewritten is the manifest Init appended to, and saved what it held.
	rewritten string
	saved     []byte
}

// apply creates files, then writes docs to manifest: a new file if old is
// nil, else a rewrite of the file that held old.
func (w *writer) apply(files map[string][]byte, manifest string, docs, old []byte) error {
	if err := w.mkdirAll(w.root); err != nil {
		return err
	}
	for _, p := range slices.Sorted(maps.Keys(files)) {
		if err := w.create(p, files[p]); err != nil {
			return err
		}
	}
	if old == nil {
		return w.create(manifest, docs)
	}
	w.rewritten, w.saved = filepath.Join(w.root, filepath.FromSlash(manifest)), old
	return os.WriteFile(w.rewritten, docs, 0o644)
}

func (w *writer) mkdirAll(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := w.mkdirAll(filepath.Dir(dir)); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	w.created = append(w.created, dir)
	return nil
}

func (w *writer) create(rel string, data []byte) error {
	full := filepath.Join(w.root, filepath.FromSlash(rel))
	if err := w.mkdirAll(filepath.Dir(full)); err != nil {
		return err
	}
	f, err := os.OpenFile(full, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("%w; init never overwrites a file", err)
	}
	w.created = append(w.created, full)
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (w *writer) undo() {
	if w.rewritten != "" {
		_ = os.WriteFile(w.rewritten, w.saved, 0o644)
	}
	for i := len(w.created) - 1; i >= 0; i-- {
		_ = os.Remove(w.created[i])
	}
}
