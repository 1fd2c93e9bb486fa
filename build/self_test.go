package build

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// selfProgram stands in for ferry: a program that says who it is.
const selfProgram = `package main

import "fmt"

func main() { fmt.Println("self-image test program") }
`

// buildProgram compiles selfProgram with env added to go build's, and
// args after "build".
func buildProgram(t *testing.T, env []string, args ...string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(selfProgram), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module selfprogram\n\ngo 1.22\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "ferry")
	cmd := exec.Command("go", append(append([]string{"build"}, args...), "-o", out, ".")...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), append([]string{"GOFLAGS=", "GOWORK=off"}, env...)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	return out
}

// TestPushExecutable pushes a static executable twice to two registries
// and pulls it back: the same digest each time, a valid image whose one
// layer is /ferry with the executable's bytes, run as 65532, and what
// comes out of the image still runs.
func TestPushExecutable(t *testing.T) {
	exe := buildProgram(t, []string{"CGO_ENABLED=0"}, "-trimpath")
	want, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	for regName, reg := range registries(t) {
		t.Run(regName, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			repo := reg + "/ferry"
			ref, err := PushExecutable(ctx, exe, repo)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(ref, repo+"@sha256:") {
				t.Fatalf("pushed as %s, want %s@sha256:...", ref, repo)
			}
			again, err := PushExecutable(ctx, exe, repo)
			if err != nil {
				t.Fatal(err)
			}
			if again != ref {
				t.Fatalf("the same executable pushed twice gave %s and %s", ref, again)
			}

			d, err := name.NewDigest(ref)
			if err != nil {
				t.Fatal(err)
			}
			img, err := remote.Image(d, remote.WithContext(ctx))
			if err != nil {
				t.Fatal(err)
			}
			if err := validate.Image(img); err != nil {
				t.Fatalf("the image does not validate: %v", err)
			}
			cfg, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Config.Entrypoint; len(got) != 1 || got[0] != "/ferry" {
				t.Errorf("entrypoint %q, want [/ferry]", got)
			}
			if cfg.Config.User != "65532:65532" {
				t.Errorf("user %q, want 65532:65532", cfg.Config.User)
			}
			if cfg.OS != "linux" || cfg.Architecture != runtime.GOARCH {
				t.Errorf("platform %s/%s, want linux/%s", cfg.OS, cfg.Architecture, runtime.GOARCH)
			}
			if !cfg.Created.Time.Equal(time.Unix(0, 0)) {
				t.Errorf("created %v, want the epoch", cfg.Created.Time)
			}
			layers, err := img.Layers()
			if err != nil {
				t.Fatal(err)
			}
			if len(layers) != 1 {
				t.Fatalf("%d layers, want 1", len(layers))
			}
			rc, err := layers[0].Uncompressed()
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			tr := tar.NewReader(rc)
			var got []byte
			for {
				hdr, err := tr.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if hdr.Name != "ferry" {
					t.Errorf("the layer holds %s; want only ferry", hdr.Name)
					continue
				}
				if hdr.Mode != 0o755 || !hdr.ModTime.Equal(time.Unix(0, 0)) {
					t.Errorf("/ferry has mode %o and mtime %v, want 755 and the epoch", hdr.Mode, hdr.ModTime)
				}
				if got, err = io.ReadAll(tr); err != nil {
					t.Fatal(err)
				}
			}
			if sha256.Sum256(got) != sha256.Sum256(want) {
				t.Fatalf("/ferry in the image (%d bytes) is not the executable pushed (%d bytes)", len(got), len(want))
			}
			pulled := filepath.Join(t.TempDir(), "ferry")
			if err := os.WriteFile(pulled, got, 0o755); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(pulled).Output()
			if err != nil || !bytes.Contains(out, []byte("self-image test program")) {
				t.Fatalf("the executable from the image: %v, %q", err, out)
			}
		})
	}
}

// TestPushExecutableRefusesDynamic: a build with cgo (as -race makes
// one) needs the host's loader and would not start from the image.
func TestPushExecutableRefusesDynamic(t *testing.T) {
	exe := buildProgram(t, []string{"CGO_ENABLED=1"}, "-race")
	// Nothing is sent for a refused executable: the registry is never
	// started, and its address is one nothing listens on.
	reg := "127.0.0.1:1"
	_, err := PushExecutable(t.Context(), exe, reg+"/ferry")
	if !errors.Is(err, ErrDynamic) {
		t.Fatalf("pushing a dynamic executable: %v, want ErrDynamic", err)
	}
	if !strings.Contains(err.Error(), "CGO_ENABLED=0") {
		t.Errorf("the refusal does not say how to build ferry: %v", err)
	}
	_, err = PushExecutable(t.Context(), filepath.Join(filepath.Dir(exe), "go.mod"), reg+"/ferry")
	if err == nil || !strings.Contains(err.Error(), "not a Linux executable") {
		t.Errorf("pushing a file that is no executable: %v", err)
	}
}
