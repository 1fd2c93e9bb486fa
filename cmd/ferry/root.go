package main

import (
	"errors"

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
		newRegistryCommand(),
		newBuildCommand(),
		newRunCommand(),
		newInvokeCommand(),
		newLogsCommand(),
		newServeCommand(),
		newSourcesCommand(),
		newRunsCommand(),
		newReleasesCommand(),
		newStatusCommand(),
		newPreviewsCommand(),
		newDiffCommand(),
		newPromoteCommand(),
		newApproveCommand(true),
		newApproveCommand(false),
		newPromotionsCommand(),
		newRollbackCommand(),
		newResumeCommand(),
		newFreezeCommand(),
		newUnfreezeCommand(),
		newHistoryCommand(),
		newSecretsCommand(),
		newDispatchCommand(),
		newFireCommand(),
		newImageCommand(),
		newInstallCommand(),
		newControllerCommand(),
	)
	root.AddCommand(newDocsCommand(root))
	return root
}
