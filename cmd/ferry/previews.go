package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/ferrycd/ferry/server"
)

func newPreviewsCommand() *cobra.Command {
	r := &remote{}
	cmd := &cobra.Command{
		Use:   "previews",
		Short: "The pull requests' preview environments: state, head commit, URL",
		Long: `Each pull request's preview environment (pr-N-SOURCE): its state, the head
commit it runs, its URL, when it last saw activity (a preview idle for
its Pipeline's previews.ttl is removed), and why a failed one failed or
a torn-down one went. ferry status lists the previews
too, after the configured environments.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := r.client()
			if err != nil {
				return err
			}
			list, err := c.Previews(cmd.Context())
			if err != nil {
				return err
			}
			return r.print(cmd.OutOrStdout(), list, func(tw *tabwriter.Writer) { printPreviews(tw, list, r.output == "wide") })
		},
	}
	r.flags(cmd)
	return cmd
}

func printPreviews(tw *tabwriter.Writer, list []server.PreviewInfo, wide bool) {
	if len(list) == 0 {
		// why: previews are off by default; a new user's first look here
		// should say how they come on, and why a request may have none.
		fmt.Fprintln(tw, "no previews: a source has them once its Pipeline at the branch head says previews: {enabled: true};\na fork's request (or a polled one) waits for its label or previews.forks (ferry serve's log says which)")
		return
	}
	fmt.Fprintln(tw, "SOURCE\tPR\tENVIRONMENT\tSTATE\tHEAD\tURL\tACTIVITY\tREASON")
	for _, p := range list {
		reason := p.Reason
		if !wide {
			reason = firstLine(reason)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Source, p.Number, p.Environment, p.State, idFor(p.Head, wide), p.URL, ago(p.LastActivity), reason)
	}
}
