package manifests

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferrycd/ferry/manifests/v1alpha1"
)

func TestInitEachRuntime(t *testing.T) {
	for _, rt := range v1alpha1.Runtimes {
		t.Run(rt, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "repo")
			res, err := Init(context.Background(), dir, rt, "greeter")
			if err != nil {
				t.Fatal(err)
			}
			if res.Manifest != ManifestFile || len(res.Files) < 2 {
				t.Fatalf("Init wrote %+v", res)
			}
			for _, f := range res.Files {
				if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
					t.Errorf("reported %s but: %v", f, err)
				}
			}
			set := loadDir(t, dir)
			if len(set.Functions) != 1 || set.Functions[0].Name != "greeter" || set.Functions[0].Spec.Runtime != rt || set.Functions[0].Spec.Test == nil {
				t.Fatalf("functions: %+v", set.Functions)
			}
			if len(set.HTTPTriggers) != 1 || set.HTTPTriggers[0].Spec.Path != "/greeter" {
				t.Fatalf("triggers: %+v", set.HTTPTriggers)
			}
		})
	}
}

func TestInitAddsToARepository(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	if _, err := Init(ctx, dir, "python", "one"); err != nil {
		t.Fatal(err)
	}
	if _, err := Init(ctx, dir, "go", "two"); err != nil {
		t.Fatal(err)
	}
	if _, err := Init(ctx, dir, "go", "three"); err != nil {
		t.Fatal(err)
	}
	set := loadDir(t, dir)
	if len(set.Functions) != 3 || len(set.HTTPTriggers) != 3 {
		t.Fatalf("got %d functions and %d triggers, want 3 and 3", len(set.Functions), len(set.HTTPTriggers))
	}
	gomod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil || !strings.Contains(string(gomod), "module example.com/two") {
		t.Fatalf("go.mod should be written once, by the first Go function: %q %v", gomod, err)
	}
}

func TestInitIntoFerryFolder(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, ManifestDir), 0o755); err != nil {
		t.Fatal(err)
	}
	res, err := Init(context.Background(), dir, "nodejs", "web")
	if err != nil {
		t.Fatal(err)
	}
	if res.Manifest != ".ferry/web.yaml" {
		t.Fatalf("manifest written to %s, want .ferry/web.yaml", res.Manifest)
	}
	loadDir(t, dir)
}

// TestInitChangesNothingOnFailure: a refused Init leaves every file as it
// was, whether it failed before writing (a clash) or after (the result
// would not validate).
func TestInitChangesNothingOnFailure(t *testing.T) {
	ctx := context.Background()
	t.Run("folder exists", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.Mkdir(filepath.Join(dir, "web"), 0o755); err != nil {
			t.Fatal(err)
		}
		_, err := Init(ctx, dir, "python", "web")
		if err == nil || !strings.Contains(err.Error(), "already exists; choose another name") {
			t.Fatalf("Init = %v", err)
		}
		if _, err := os.Stat(filepath.Join(dir, ManifestFile)); !os.IsNotExist(err) {
			t.Fatalf("ferry.yaml was written: %v", err)
		}
	})
	t.Run("result would not validate", func(t *testing.T) {
		dir := t.TempDir()
		if _, err := Init(ctx, dir, "python", "first"); err != nil {
			t.Fatal(err)
		}
		// A second trigger on /web makes Init's own trigger clash.
		manifest := filepath.Join(dir, ManifestFile)
		before, err := os.ReadFile(manifest)
		if err != nil {
			t.Fatal(err)
		}
		// No trailing newline: undo must put back these exact bytes.
		before = append(before, strings.TrimSuffix("---\n"+httpDoc("taken", "function: first\npath: /web"), "\n")...)
		if err := os.WriteFile(manifest, before, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err = Init(ctx, dir, "nodejs", "web")
		if err == nil || !strings.Contains(err.Error(), "nothing was written") || !strings.Contains(err.Error(), "is already routed") {
			t.Fatalf("Init = %v", err)
		}
		after, _ := os.ReadFile(manifest)
		if string(after) != string(before) {
			t.Fatalf("ferry.yaml changed:\n%s", after)
		}
		if _, err := os.Stat(filepath.Join(dir, "web")); !os.IsNotExist(err) {
			t.Fatalf("web/ was left behind: %v", err)
		}
	})
	t.Run("bad input", func(t *testing.T) {
		dir := t.TempDir()
		if _, err := Init(ctx, dir, "ruby", "web"); err == nil || !strings.Contains(err.Error(), "use go, python or nodejs") {
			t.Fatalf("ruby: %v", err)
		}
		if _, err := Init(ctx, dir, "go", "Web_App"); err == nil || !strings.Contains(err.Error(), `such as "web-app"`) {
			t.Fatalf("Web_App: %v", err)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Fatalf("files were written: %v", entries)
		}
	})
}

func TestInitDefaultName(t *testing.T) {
	for folder, want := range map[string]string{"shop": "shop", "Shop": "shop", "my_repo": "hello", "-x": "hello"} {
		dir := filepath.Join(t.TempDir(), folder)
		res, err := Init(context.Background(), dir, "python", "")
		if err != nil {
			t.Fatalf("%s: %v", folder, err)
		}
		if res.Name != want || loadDir(t, dir).Functions[0].Name != want {
			t.Errorf("folder %s: function named %q, want %q", folder, res.Name, want)
		}
	}
}

// TestInitWritesGitignore: a new repository gets a .gitignore of ferry
// run's data folder; one the repository has is left as it is.
func TestInitWritesGitignore(t *testing.T) {
	dir := t.TempDir()
	res, err := Init(context.Background(), dir, "python", "one")
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, ".gitignore"))
	if err != nil || !strings.Contains("\n"+string(got), "\n.ferry-data/\n") {
		t.Fatalf(".gitignore: %q %v", got, err)
	}
	if !strings.Contains(strings.Join(res.Files, " "), ".gitignore") {
		t.Fatalf("Init did not report the .gitignore: %v", res.Files)
	}

	own := t.TempDir()
	if err := os.WriteFile(filepath.Join(own, ".gitignore"), []byte("node_modules/\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Init(context.Background(), own, "nodejs", "two"); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(own, ".gitignore")); string(got) != "node_modules/\n" {
		t.Fatalf("the repository's .gitignore was changed: %q", got)
	}
}
