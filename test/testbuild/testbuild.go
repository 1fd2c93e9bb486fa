package testbuild

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ferrycd/ferry/build"
	"github.com/ferrycd/ferry/build/registry"
)

// RunWithBuilder is a TestMain's body for packages that build the examples:
// it starts an embedded registry and a builder that pushes to it (python
// and nodejs on scratch, as ferry run does) in a temporary folder, calls
// run with the folder, the repository (ADDR/test) and the builder, and
// cleans up after. It returns run's exit code, or 1 when the set-up
// fails.
func RunWithBuilder(prefix string, run func(dir, repo string, b build.Builder) int) int {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	reg, err := registry.New(ctx, registry.Config{Addr: "127.0.0.1:0", Dir: filepath.Join(dir, "registry")})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	go reg.Serve()
	defer reg.Shutdown(ctx)
	repo := reg.Addr() + "/test"
	b, err := build.New(repo, build.WithCacheDir(filepath.Join(dir, "build-cache")),
		build.WithBase("python", build.Scratch), build.WithBase("nodejs", build.Scratch))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return run(dir, repo, b)
}
