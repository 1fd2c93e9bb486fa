package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ferrycd/ferry/manifests"
)

func newRenderCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "render [DIR]",
		Short: "Print a repository's manifests in canonical form",
		Long: `Load and validate DIR (default .), then print every object with defaults
applied, sorted by kind and name, keys sorted: the canonical document a
release's identity is computed from. The same input always prints the same
bytes.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var render func(*manifests.Set) ([]byte, error)
			switch output {
			case "yaml":
				render = manifests.Render
			case "json":
				render = manifests.RenderJSON
			default:
				return fmt.Errorf("-o %q: use yaml or json", output)
			}
			set, _, err := load(cmd, dirArg(args))
			if err != nil {
				return err
			}
			b, err := render(set)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "yaml", "output format: yaml or json")
	return cmd
}
