package embedded

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ferrycd/ferry/build"
	"github.com/ferrycd/ferry/build/registry"
	"github.com/ferrycd/ferry/internal/filelock"
	"github.com/ferrycd/ferry/internal/listen"
	"github.com/ferrycd/ferry/internal/sandbox"
)

// DevConfig is the local development loop of `ferry run`.
type DevConfig struct {
	// Dir is the repository.
	Dir string
	// Addr is where the gateway listens (host:port).
	Addr string
	// DataDir holds the registry, the build cache, unpacked images and logs.
	DataDir string
	// Options configure the builder (bases and the like).
	Options []build.Option
	// Out is where the loop says what it does.
	Out io.Writer
	// Changes reports the saves in Dir (a watcher.Folder, which skips
	// the data folder, .git and what Git ignores).
	Changes Changes
	// NATSURL and KafkaBrokers are where NATSTriggers and KafkaTriggers
	// connect; a trigger with none set fails the apply and says so.
	NATSURL      string
	KafkaBrokers []string
	// Sandbox runs the functions; nil as HostConfig's.
	Sandbox *sandbox.Sandbox
}

// Changes is what RunDev watches the repository with.
type Changes interface {
	// Next waits for the next saved change and returns the files it
	// touched, relative to the repository.
	Next(ctx context.Context) ([]string, error)
}

// devEnvironment is the environment `ferry run` deploys to.
const devEnvironment = "local"

// RunDev builds the repository in cfg.Dir into a registry under the data
// folder, applies it to the environment "local" behind a gateway on
// cfg.Addr, then watches the files and builds and applies again on every
// change, until ctx ends. A build or apply that fails is reported and the
// last good release keeps serving.
func RunDev(ctx context.Context, cfg DevConfig) error {
	if cfg.Changes == nil {
		return fmt.Errorf("ferry run: no watcher of %s given (DevConfig.Changes)", cfg.Dir)
	}
	// why: as ferry serve's, the data folder is ferry's alone; with no
	// sandbox here, it is all that keeps other users out of its caches.
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("creating the data folder %s: %w", cfg.DataDir, err)
	}
	if err := os.Chmod(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("the data folder %s: %w", cfg.DataDir, err)
	}
	unlock, err := filelock.LockDataDir(cfg.DataDir, "--data")
	if err != nil {
		return err
	}
	defer unlock()
	reg, err := registry.New(ctx, registry.Config{Addr: "127.0.0.1:0", Dir: filepath.Join(cfg.DataDir, "registry")})
	if err != nil {
		return err
	}
	go reg.Serve()
	defer reg.Shutdown(context.WithoutCancel(ctx))

	builder, err := build.New(reg.Addr()+"/local", append([]build.Option{build.WithCacheDir(filepath.Join(cfg.DataDir, "build-cache")), build.WithSandbox(cfg.Sandbox)}, cfg.Options...)...)
	if err != nil {
		return err
	}
	ln, err := listen.TCP(cfg.Addr, "move the gateway with --addr")
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	gwURL := "http://" + ln.Addr().String()
	target, gw, err := NewLocal(LocalConfig{Environment: devEnvironment, DataDir: cfg.DataDir, GatewayURL: gwURL,
		NATSURL: cfg.NATSURL, KafkaBrokers: cfg.KafkaBrokers, Sandbox: cfg.Sandbox})
	if err != nil {
		ln.Close()
		return err
	}
	srv := &http.Server{Handler: gw, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Shutdown(context.WithoutCancel(ctx))
	defer target.Delete(context.WithoutCancel(ctx))
	fmt.Fprintf(cfg.Out, "gateway on %s\n", gwURL)

	var live *build.Release
	deploy := func() {
		rel, err := devBuild(ctx, builder, cfg.Dir)
		built := err == nil
		if built {
			err = target.Apply(ctx, rel)
		}
		if err != nil {
			if ctx.Err() == nil {
				fmt.Fprintf(cfg.Out, "%v\n", err)
				// why: a failed apply says so itself.
				if live != nil && !built {
					fmt.Fprintln(cfg.Out, "the last good release keeps serving")
				}
			}
			return
		}
		printChanges(cfg.Out, live, rel, target)
		live = rel
	}
	deploy()
	said := ""
	for {
		files, err := cfg.Changes.Next(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			// why: a look that fails fails again a quarter second later;
			// once is enough to say it.
			if err.Error() != said {
				fmt.Fprintf(cfg.Out, "%v\n", err)
				said = err.Error()
			}
			continue
		}
		said = ""
		fmt.Fprintf(cfg.Out, "building: %s changed\n", fileList(files))
		deploy()
	}
}

// fileList names the files of a change, the first few of many.
func fileList(files []string) string {
	const most = 3
	if len(files) <= most {
		return strings.Join(files, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(files[:most], ", "), len(files)-most)
}

// devBuild loads and builds the repository as `ferry build` would.
func devBuild(ctx context.Context, b build.Builder, dir string) (*build.Release, error) {
	// A manifests.ErrorList prints one problem per line, as ferry
	// validate does.
	set, src, err := build.LoadLocal(ctx, dir)
	if err != nil {
		return nil, err
	}
	info, err := build.LocalInfo(ctx, dir)
	if err != nil {
		return nil, err
	}
	res, err := b.Release(ctx, src, set, info)
	if err != nil {
		return nil, err
	}
	return res.Release, nil
}

// printChanges says which functions a release changed, and their URLs.
func printChanges(out io.Writer, old, rel *build.Release, t *Target) {
	for _, f := range rel.Set.Functions {
		what := "started"
		if old != nil {
			if prev := old.Set.Function(f.Name); prev != nil {
				what = "unchanged"
				if prev.Spec.Image != f.Spec.Image {
					what = "updated"
				}
			}
		}
		url, err := t.URL(f.Name)
		if err != nil {
			url = "(no HTTP trigger)"
		}
		fmt.Fprintf(out, "%s %s: %s\n", f.Name, what, url)
	}
	if old != nil {
		for _, f := range old.Set.Functions {
			if rel.Set.Function(f.Name) == nil {
				fmt.Fprintf(out, "%s removed\n", f.Name)
			}
		}
	}
	fmt.Fprintf(out, "release %s live\n", rel.Digest)
}
