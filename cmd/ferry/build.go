package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/ferrycd/ferry/build"
)

type buildOutput struct {
	Functions []buildOutputFunction `json:"functions"`
	Release   buildOutputRelease    `json:"release"`
}

type buildOutputFunction struct {
	Name   string `json:"name"`
	Image  string `json:"image"`
	Digest string `json:"digest"`
	Cached bool   `json:"cached"`
}

type buildOutputRelease struct {
	Ref    string `json:"ref"`
	Digest string `json:"digest"`
}

func newBuildCommand() *cobra.Command {
	var (
		registry, output, cacheDir string
		insecure, refresh          bool
		bases                      []string
		jobs                       int
	)
	cmd := &cobra.Command{
		Use:   "build [DIR]",
		Short: "Build every function into an image, push it by digest, and push the release",
		Long: `Build every function of the repository in DIR (default .) into a
reproducible OCI image, push each to REPO/<function> by digest, and push
the release (the rendered manifest with every image pinned) to REPO.
Functions build in parallel. A function whose inputs have not changed is
not built again: its image is reused once the registry is seen to hold it.
No release is pushed when any function fails.

When DIR is a Git work tree, files Git ignores are left out (a .env stays
on your machine), its HEAD commit is recorded in the images' annotations
and its commit time stamped on the code; SOURCE_DATE_EPOCH overrides the
time.

Base images per runtime (--base RUNTIME=REF): go builds on nothing (a
static binary); python on python:3.12-slim and nodejs on node:22-slim,
resolved to a digest once. --base python=scratch builds without a base:
the image then runs only on the embedded target, with the host's
interpreter.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if registry == "" {
				return fmt.Errorf("no registry; give --registry HOST:PORT/REPO (ferry registry serve runs one)")
			}
			if output != "" && output != "json" {
				return fmt.Errorf("-o %q is not supported; use -o json or leave it out for a table", output)
			}
			dir := dirArg(args)
			set, src, err := load(cmd, dir)
			if err != nil {
				return err
			}
			opts := []build.Option{build.WithInsecure(insecure), build.WithRefreshBases(refresh)}
			if cacheDir != "" {
				opts = append(opts, build.WithCacheDir(cacheDir))
			}
			if jobs > 0 {
				opts = append(opts, build.WithJobs(jobs))
			}
			baseOpts, err := baseOptions(bases)
			if err != nil {
				return err
			}
			builder, err := build.New(registry, append(opts, baseOpts...)...)
			if err != nil {
				return err
			}
			info, err := build.LocalInfo(cmd.Context(), dir)
			if err != nil {
				return err
			}
			if output == "" && isTerminal(cmd.ErrOrStderr()) {
				info.Progress = newProgressPrinter(cmd.ErrOrStderr()).print
			}
			res, err := builder.Release(cmd.Context(), src, set, info)
			if err != nil {
				return err
			}
			out := buildOutput{Release: buildOutputRelease{Ref: res.Release.Ref, Digest: res.Release.Digest.String()}}
			for _, img := range res.Images {
				out.Functions = append(out.Functions, buildOutputFunction{Name: img.Function, Image: img.Ref, Digest: img.Digest.String(), Cached: img.Cached})
			}
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(out)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "FUNCTION\tIMAGE\tCACHED")
			for _, f := range out.Functions {
				fmt.Fprintf(tw, "%s\t%s\t%v\n", f.Name, f.Image, f.Cached)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "release %s\n", out.Release.Ref)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&registry, "registry", "", "where to push: HOST:PORT/REPO (images go to REPO/<function>, the release to REPO)")
	f.BoolVar(&insecure, "insecure", false, "allow plain HTTP to a registry that is not on this machine")
	f.StringVarP(&output, "output", "o", "", "output format: json (default: a table)")
	f.StringVar(&cacheDir, "cache", "", "build cache folder (default: the user's cache folder, ferry/build)")
	f.StringArrayVar(&bases, "base", nil, "base image of a runtime as RUNTIME=IMAGE (repeatable); IMAGE may be scratch")
	f.IntVar(&jobs, "jobs", 0, "functions built at once (default: the number of CPUs)")
	f.BoolVar(&refresh, "refresh-bases", false, "resolve base image tags to digests again")
	return cmd
}

// isTerminal reports whether w is a terminal, where progress is shown.
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	// why: /dev/null is a character device too; only a terminal answers
	// the terminal-settings ioctl.
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// progressPrinter prints a line when a function's build changes phase,
// and push progress at most twice a second per function.
type progressPrinter struct {
	w    io.Writer
	mu   sync.Mutex
	last map[string]time.Time
}

func newProgressPrinter(w io.Writer) *progressPrinter {
	return &progressPrinter{w: w, last: map[string]time.Time{}}
}

func (p *progressPrinter) print(pr build.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pr.Phase == build.PhasePushing && pr.Total > 0 {
		if time.Since(p.last[pr.Function]) < 500*time.Millisecond && pr.Pushed < pr.Total {
			return
		}
		p.last[pr.Function] = time.Now()
		fmt.Fprintf(p.w, "%s: pushing %s / %s\n", pr.Function, byteSize(pr.Pushed), byteSize(pr.Total))
		return
	}
	fmt.Fprintf(p.w, "%s: %s\n", pr.Function, pr.Phase)
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// baseOptions turns --base RUNTIME=IMAGE flags into builder options.
func baseOptions(bases []string) ([]build.Option, error) {
	var opts []build.Option
	for _, b := range bases {
		rt, ref, ok := strings.Cut(b, "=")
		if !ok {
			return nil, fmt.Errorf("--base %q: give it as RUNTIME=IMAGE, such as python=scratch", b)
		}
		opts = append(opts, build.WithBase(rt, ref))
	}
	return opts, nil
}
