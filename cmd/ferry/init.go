package main

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/ferrycd/ferry/manifests"
)

func newInitCommand() *cobra.Command {
	var runtime, name string
	cmd := &cobra.Command{
		Use:   "init [DIR] --runtime go|python|nodejs",
		Short: "Add a function, its HTTP trigger and a test to a repository",
		Long: `Write a new function into DIR (default .): its code and a test in
DIR/NAME/, and a Function with an HTTPTrigger on /NAME in ferry.yaml
(appended to it if it exists). Nothing is overwritten, and nothing is left
behind if the result would not validate.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := dirArg(args)
			res, err := manifests.Init(cmd.Context(), dir, runtime, name)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "created function %s (%s) in %s\n", res.Name, runtime, dir)
			for _, f := range res.Files {
				fmt.Fprintf(out, "  %s\n", filepath.Join(dir, f))
			}
			fmt.Fprintf(out, "  %s\nnext: ferry validate %s\n", filepath.Join(dir, res.Manifest), dir)
			return nil
		},
	}
	cmd.Flags().StringVar(&runtime, "runtime", "", "the function's runtime: go, python or nodejs")
	cmd.Flags().StringVar(&name, "name", "", "the function's name (default: the folder's name, or hello)")
	_ = cmd.MarkFlagRequired("runtime")
	return cmd
}
