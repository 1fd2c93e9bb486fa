package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ferrycd/ferry/build"
)

func newImageCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Make ferry's own image, which runs the controller in a cluster",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newImagePushCommand())
	return cmd
}

func newImagePushCommand() *cobra.Command {
	var insecure bool
	cmd := &cobra.Command{
		Use:   "push REPO",
		Short: "Push this ferry executable as an image to REPO and print REPO@sha256:...",
		Long: `Push the running ferry executable as an OCI image to REPO
(HOST[:PORT]/PATH), by digest, and print its reference REPO@sha256:....
The image holds /ferry only, its entrypoint, run as user 65532; every time
in it is fixed, so the same executable always gives the same digest. The
controller's Deployment, CronJobs and dispatchers in a cluster run it
(ferry install --image).

The executable must be statically linked: build ferry with CGO_ENABLED=0
(and without -race) for Linux.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := build.PushSelf(cmd.Context(), args[0], build.WithInsecure(insecure))
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), ref)
			return err
		},
	}
	cmd.Flags().BoolVar(&insecure, "insecure", false, "allow plain HTTP to a registry that is not on this machine")
	return cmd
}
