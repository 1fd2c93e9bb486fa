package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
)

// errReported means the command already printed what went wrong; main
// only has to exit non-zero.
var errReported = errors.New("reported")

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "ferry",
		Short: "GitOps CI/CD for functions: from a git push to a promoted release",
		Long: `ferry watches a Git repository, builds an image per function, bundles
them into a release, and promotes that release from dev to staging to prod.

A repository declares its functions and triggers in ferry.yaml.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		newVersionCommand(),
		newValidateCommand(),
		newRenderCommand(),
		newInitCommand(),
	)
	// Print errors once, here, so every command reports them the same way.
	root.PersistentPostRunE = nil
	cobra.OnFinalize()
	wrapErrors(root)
	return root
}

// wrapErrors makes every command print its error to stderr as
// "ferry: <error>", except errors already reported in full.
func wrapErrors(cmd *cobra.Command) {
	for _, c := range cmd.Commands() {
		wrapErrors(c)
	}
	run := cmd.RunE
	if run == nil {
		return
	}
	cmd.RunE = func(c *cobra.Command, args []string) error {
		err := run(c, args)
		if err != nil && !errors.Is(err, errReported) {
			fmt.Fprintf(c.ErrOrStderr(), "ferry %s: %v\n", c.Name(), err)
		}
		return err
	}
}
