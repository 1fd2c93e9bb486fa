package main

import (
	"fmt"
	"io/fs"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ferrycd/ferry/build"
	"github.com/ferrycd/ferry/manifests"
)

func newValidateCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "validate [DIR]",
		Short: "Check a repository's manifests; list every error as file:line:col: message",
		Long: `Load ferry.yaml and .ferry/*.yaml from DIR (default .), and check them
against the rules and the repository's files. Exit 0 if they are valid;
else print every error, one per line, as file:line:col: message, and
exit 1.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := dirArg(args)
			set, _, err := load(cmd, dir)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: valid: %s\n", dir, summary(set))
			return nil
		},
	}
}

func dirArg(args []string) string {
	if len(args) == 0 {
		return "."
	}
	return args[0]
}

// load loads the repository in dir as a build sees it (without what Git
// ignores), printing manifest errors one per line as file:line:col with
// paths that start at the working folder. It returns the tree it loaded.
func load(cmd *cobra.Command, dir string) (*manifests.Set, fs.FS, error) {
	set, src, err := build.LoadLocal(cmd.Context(), dir)
	if list := manifests.Errors(err); list != nil {
		for _, e := range list {
			fmt.Fprintln(cmd.ErrOrStderr(), e.Error())
		}
		return nil, nil, errReported
	}
	return set, src, err
}

func summary(s *manifests.Set) string {
	var parts []string
	count := func(n int, kind string) {
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, kind))
		}
	}
	count(len(s.Functions), "Function")
	count(len(s.HTTPTriggers), "HTTPTrigger")
	count(len(s.CronTriggers), "CronTrigger")
	count(len(s.NATSTriggers), "NATSTrigger")
	count(len(s.KafkaTriggers), "KafkaTrigger")
	stages := make([]string, len(s.Pipeline.Spec.Stages))
	for i, st := range s.Pipeline.Spec.Stages {
		stages[i] = st.Name
	}
	out := strings.Join(parts, ", ") + "; stages " + strings.Join(stages, " -> ")
	// why: previews are off unless the Pipeline says so; say when it does,
	// so a repository's author sees the switch took.
	if pv := s.Pipeline.Spec.Previews; pv != nil && pv.Enabled != nil && *pv.Enabled {
		out += "; previews on"
		if pv.TTL != nil {
			out += " (ttl " + pv.TTL.Duration.String() + ")"
		}
	}
	return out
}
