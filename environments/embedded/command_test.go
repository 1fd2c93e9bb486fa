package embedded

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferrycd/ferry/build/invoker"
	"github.com/ferrycd/ferry/internal/sandbox"
)

// writeFiles writes files (image paths without the leading slash) under
// root, each with mode.
func writeFiles(t *testing.T, root string, files map[string][]byte, mode os.FileMode) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, content, mode); err != nil {
			t.Fatal(err)
		}
	}
}

func configWith(entrypoint []string, env ...string) *v1.ConfigFile {
	return &v1.ConfigFile{Config: v1.Config{Entrypoint: entrypoint, Env: env}}
}

func TestCommandInterpreted(t *testing.T) {
	t.Parallel()
	for _, rt := range []string{"python", "nodejs"} {
		t.Run(rt, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			files, err := invoker.Files(rt)
			if err != nil {
				t.Fatal(err)
			}
			writeFiles(t, root, files, 0o644)
			entry, err := invoker.Entrypoint(rt)
			if err != nil {
				t.Fatal(err)
			}
			cfg := configWith(entry, "PATH=/usr/local/bin:/image/only", "FERRY_HANDLER=main.handle", "PYTHONUNBUFFERED=1")

			argv, env, err := command(root, cfg)
			if err != nil {
				t.Fatal(err)
			}
			realRoot, _ := filepath.EvalSymlinks(root)
			if len(argv) != 2 || !filepath.IsAbs(argv[0]) || filepath.Base(argv[0]) != entry[0] {
				t.Errorf("argv = %q, want [host %s, script]", argv, entry[0])
			}
			if want := filepath.Join(realRoot, entry[1]); argv[1] != want {
				t.Errorf("script = %q, want %q", argv[1], want)
			}
			want := []string{"FERRY_HANDLER=main.handle", "PYTHONUNBUFFERED=1", "PATH=" + sandbox.SystemPath}
			if !slices.Equal(env, want) {
				t.Errorf("env = %q, want %q (the image's, with the sandbox's fixed PATH)", env, want)
			}
		})
	}
}

func TestCommandGoBinary(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	writeFiles(t, root, map[string][]byte{"ferry/bin/function": []byte("#!/bin/sh\n")}, 0o755)
	argv, _, err := command(root, configWith([]string{"/ferry/bin/function"}))
	if err != nil {
		t.Fatal(err)
	}
	realRoot, _ := filepath.EvalSymlinks(root)
	if want := []string{filepath.Join(realRoot, "ferry/bin/function")}; !slices.Equal(argv, want) {
		t.Errorf("argv = %q, want %q", argv, want)
	}

	// Cmd after Entrypoint, as Docker runs it: the same program.
	cfg := &v1.ConfigFile{Config: v1.Config{Cmd: []string{"/ferry/bin/function"}}}
	if argv2, _, err := command(root, cfg); err != nil || !slices.Equal(argv2, argv) {
		t.Errorf("Cmd only: argv = %q, %v; want %q", argv2, err, argv)
	}
}

func TestCommandMissingInterpreter(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	writeFiles(t, root, map[string][]byte{"ferry/x": []byte("")}, 0o644)
	_, _, err := command(root, configWith([]string{"no-such-interpreter-xyz", "/ferry/x"}))
	want := "function image needs no-such-interpreter-xyz on this machine (the image was built on scratch): install it, or build with a base image and deploy to a target that runs images"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v, want it to say %q", err, want)
	}
}

func TestCommandRefused(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	writeFiles(t, root, map[string][]byte{
		"ferry/bin/noexec":           []byte("#!/bin/sh\n"),
		"ferry/invoker/x.py":         []byte(""),
		"ferry/function/placeholder": []byte(""),
	}, 0o644)
	if err := os.Symlink("/bin/sh", filepath.Join(root, "ferry/bin/function")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../../../../../../../etc/passwd", filepath.Join(root, "ferry/invoker/up.py")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("x.py", filepath.Join(root, "ferry/invoker/inside.py")); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name  string
		entry []string
		want  string
	}{
		{"absolute link out of the root", []string{"/ferry/bin/function"}, "outside the image"},
		{"relative link out of the root", []string{"python3", "/ferry/invoker/up.py"}, "outside the image"},
		{"dot-dot stays in the root", []string{"/../../../bin/sh"}, "function image has no /../../../bin/sh"},
		{"not executable", []string{"/ferry/bin/noexec"}, "is not executable"},
		{"a folder", []string{"/ferry/function"}, "is not a regular file"},
		{"relative program", []string{"ferry/bin/function"}, "cannot run on this machine"},
		{"interpreter with relative script", []string{"python3", "ferry/invoker/x.py"}, "cannot run on this machine"},
		{"shell form", []string{"/bin/sh", "-c", "run"}, "cannot run on this machine"},
		{"empty", nil, "cannot run on this machine"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			argv, _, err := command(root, configWith(tc.entry))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("command(%q) = %q, %v; want an error saying %q", tc.entry, argv, err, tc.want)
			}
		})
	}

	// A link that stays inside the root is fine, and what runs is its target.
	argv, _, err := command(root, configWith([]string{"python3", "/ferry/invoker/inside.py"}))
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(argv[1]) != "x.py" {
		t.Errorf("script = %q, want the link's target x.py", argv[1])
	}
}
