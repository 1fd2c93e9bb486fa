package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/ferrycd/ferry/server"
	"github.com/ferrycd/ferry/store"
)

func newDiffCommand() *cobra.Command {
	r := &remote{}
	cmd := &cobra.Command{
		Use:   "diff FROM TO",
		Short: "What differs between two environments or releases: images, triggers, the rendered manifest",
		Long: `FROM and TO each name an environment (its live release) or a release
(its id, or a prefix of it as ferry releases prints it). ferry diff
prints the functions whose images differ, the triggers added, removed
or changed, and the rendered manifests' unified diff.`,
		Example: `  ferry diff staging prod
  ferry diff 3f9a2c1b7d4e 8e0d41aa19c2`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := r.client()
			if err != nil {
				return err
			}
			d, err := c.Diff(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			return r.print(cmd.OutOrStdout(), d, func(tw *tabwriter.Writer) { printDiff(tw, d, r.output == "wide") })
		},
	}
	r.flags(cmd)
	return cmd
}

func printDiff(tw *tabwriter.Writer, d server.DiffView, wide bool) {
	side := func(s server.DiffSide) string {
		if store.Short(s.Release) == store.Short(s.Name) {
			return "release " + idFor(s.Release, wide)
		}
		return fmt.Sprintf("%s (release %s)", s.Name, idFor(s.Release, wide))
	}
	if d.From.Release == d.To.Release {
		fmt.Fprintf(tw, "%s and %s run the same release %s: nothing differs\n", d.From.Name, d.To.Name, idFor(d.From.Release, wide))
		return
	}
	fmt.Fprintf(tw, "from %s to %s\n", side(d.From), side(d.To))
	if len(d.Functions) == 0 {
		fmt.Fprintln(tw, "\nevery function has the same image")
	} else {
		fmt.Fprintln(tw, "\nFUNCTION\tFROM\tTO")
		for _, f := range d.Functions {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", f.Name, orDash(imageFor(f.From, wide)), orDash(imageFor(f.To, wide)))
		}
	}
	tw.Flush()
	if len(d.Triggers) == 0 {
		fmt.Fprintln(tw, "\nthe triggers are the same")
	} else {
		fmt.Fprintln(tw, "\nTRIGGER\tCHANGE")
		for _, t := range d.Triggers {
			fmt.Fprintf(tw, "%s/%s\t%s\n", t.Kind, t.Name, t.Change)
		}
	}
	tw.Flush()
	if d.Manifest != "" {
		fmt.Fprintf(tw, "\n%s", d.Manifest)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
