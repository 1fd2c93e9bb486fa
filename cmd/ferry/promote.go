package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/ferrycd/ferry/server"
)

func printPromotion(tw *tabwriter.Writer, p server.PromotionView, wide bool) {
	fmt.Fprintf(tw, "promotion %d: %s into %s, %s", p.ID, idFor(p.Release, wide), p.Environment, p.Status)
	if p.Reason != "" {
		fmt.Fprintf(tw, " (%s)", p.Reason)
	}
	fmt.Fprintf(tw, "; asked by %s\n", p.Requester)
	for _, a := range p.Approvals {
		verb := "approved"
		if !a.Approve {
			verb = "rejected"
		}
		fmt.Fprintf(tw, "  %s by %s %s", verb, a.Actor, ago(a.At))
		if a.Comment != "" {
			fmt.Fprintf(tw, ": %s", a.Comment)
		}
		fmt.Fprintln(tw)
	}
	if p.Next != "" {
		fmt.Fprintf(tw, "next: %s\n", p.Next)
	}
}

func parseID(what, s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id < 1 {
		return 0, fmt.Errorf("%s %q: give its number (ferry %ss lists them)", what, s, what)
	}
	return id, nil
}

func newPromoteCommand() *cobra.Command {
	r := &remote{}
	var env string
	cmd := &cobra.Command{
		Use: "promote RELEASE --to ENV",
		Long: `Ask for a release in an environment. RELEASE is its id or a unique
prefix of it, such as the 12 characters ferry releases prints; a prefix
that names more than one lists them. The answer says what happens next:
deploying now, or waiting for whose approval.`,
		Short: "Ask for a release in an environment (deployer); the stage's policy decides whether it waits for approvals",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if env == "" {
				return fmt.Errorf("--to ENV is required")
			}
			c, err := r.client()
			if err != nil {
				return err
			}
			p, err := c.Promote(cmd.Context(), args[0], env)
			if err != nil {
				return err
			}
			return r.print(cmd.OutOrStdout(), p, func(tw *tabwriter.Writer) { printPromotion(tw, p, r.output == "wide") })
		},
	}
	r.flags(cmd)
	cmd.Flags().StringVar(&env, "to", "", "the environment")
	return cmd
}

func newApproveCommand(approve bool) *cobra.Command {
	r := &remote{}
	var comment string
	use, short := "approve PROMOTION [--comment TEXT]", "Approve a pending promotion (approver)"
	if !approve {
		use, short = "reject PROMOTION --comment TEXT", "Reject a pending promotion, saying why (approver)"
	}
	cmd := &cobra.Command{
		Use: use, Short: short, Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID("promotion", args[0])
			if err != nil {
				return err
			}
			c, err := r.client()
			if err != nil {
				return err
			}
			var p server.PromotionView
			if approve {
				p, err = c.Approve(cmd.Context(), id, comment)
			} else {
				p, err = c.Reject(cmd.Context(), id, comment)
			}
			if err != nil {
				return err
			}
			return r.print(cmd.OutOrStdout(), p, func(tw *tabwriter.Writer) { printPromotion(tw, p, r.output == "wide") })
		},
	}
	r.flags(cmd)
	cmd.Flags().StringVar(&comment, "comment", "", "why")
	return cmd
}

func newPromotionsCommand() *cobra.Command {
	r := &remote{}
	var env string
	var limit int
	var before int64
	cmd := &cobra.Command{
		Use: "promotions [ID]", Short: "Promotions, newest first, or one with its approvals", Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := r.client()
			if err != nil {
				return err
			}
			if len(args) == 1 {
				id, err := parseID("promotion", args[0])
				if err != nil {
					return err
				}
				p, err := c.Promotion(cmd.Context(), id)
				if err != nil {
					return err
				}
				return r.print(cmd.OutOrStdout(), p, func(tw *tabwriter.Writer) { printPromotion(tw, p, r.output == "wide") })
			}
			page, err := c.Promotions(cmd.Context(), env, limit, before)
			if err != nil {
				return err
			}
			return r.print(cmd.OutOrStdout(), page, func(tw *tabwriter.Writer) {
				printPromotions(tw, page.Items, r.output == "wide")
				if page.Next != 0 {
					fmt.Fprintf(tw, "(more: --before %d)\n", page.Next)
				}
			})
		},
	}
	r.flags(cmd)
	cmd.Flags().StringVar(&env, "env", "", "only this environment's")
	cmd.Flags().IntVar(&limit, "limit", 0, "per page (default 50)")
	cmd.Flags().Int64Var(&before, "before", 0, "the page after the one that printed this number")
	return cmd
}

// printPromotions is the promotions table, in 100 columns unless wide.
func printPromotions(w io.Writer, ps []server.PromotionView, wide bool) {
	rows := [][]string{{"ID", "ENV", "RELEASE", "STATUS", "REQUESTER", "APPROVALS", "CREATED", "REASON"}}
	for _, p := range ps {
		rows = append(rows, []string{strconv.FormatInt(p.ID, 10), p.Environment, idFor(p.Release, wide), p.Status, p.Requester,
			approvalsCell(p), ago(p.Created), firstLine(p.Reason)})
	}
	rowsTo(w, rows, wide)
}

func printDeployment(tw *tabwriter.Writer, d server.DeploymentView, wide bool) {
	fmt.Fprintf(tw, "%s now runs %s (was %s), by %s\n", d.Environment, idFor(d.Release, wide), idFor(d.Previous, wide), d.Actor)
}

func newRollbackCommand() *cobra.Command {
	r := &remote{}
	var to, function string
	cmd := &cobra.Command{
		Use:   "rollback ENV [--to RELEASE | --function F --to DIGEST]",
		Short: "Put an environment back on an earlier release, by digest, without building (deployer)",
		Long: `Without --to, the release live before the current one. --to RELEASE names a
release by id (sha256:…, also one no longer in ferry's records, pulled
back from the registry) or by a unique prefix of it, such as the 12
characters the tables print. --function F --to DIGEST keeps the live
release but pins one function's image: sha256:…, HOST/REPO@sha256:…, or
a unique prefix of a digest ferry built for F. A prefix that names more
than one lists them.

Only what ferry built, or was told to allow, is deployed: an image must be
one ferry built for the live release's source, and a release pulled back
must come from ferry's own release repository with images ferry built,
unless the registry or repository is listed in allowedImages of ferry
serve's configuration. An image is always given by digest. An image the
embedded target refuses for what it holds (a layer escaping its root, a
digest that does not match, not an image, too big) is answered with 422
and the reason; the environment keeps its release.

A manual rollback holds automatic promotion into the environment until
ferry resume ENV, so an auto stage never silently undoes it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := server.RollbackRequest{Release: to}
			if function != "" {
				if to == "" {
					return fmt.Errorf("--function needs --to DIGEST (the image to pin, sha256:… or a prefix)")
				}
				req = server.RollbackRequest{Function: function, Image: to}
			}
			c, err := r.client()
			if err != nil {
				return err
			}
			d, err := c.Rollback(cmd.Context(), args[0], req)
			if err != nil {
				return err
			}
			return r.print(cmd.OutOrStdout(), d, func(tw *tabwriter.Writer) {
				printDeployment(tw, d, r.output == "wide")
				fmt.Fprintf(tw, "automatic promotion into %s is held: ferry resume %s lets it go on\n", d.Environment, d.Environment)
			})
		},
	}
	r.flags(cmd)
	cmd.Flags().StringVar(&to, "to", "", "a release id or prefix; with --function an image digest or prefix (or HOST/REPO@sha256:…)")
	cmd.Flags().StringVar(&function, "function", "", "pin only this function's image")
	return cmd
}

// newEnvCommand is resume, freeze and unfreeze: one environment, one call.
func newEnvCommand(use, summary string, call func(c *server.Client, cmd *cobra.Command, env, reason string) (server.EnvironmentView, error), needsReason bool) *cobra.Command {
	r := &remote{}
	var reason string
	cmd := &cobra.Command{
		Use: use, Short: summary, Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if needsReason && strings.TrimSpace(reason) == "" {
				return fmt.Errorf("--reason is required: every refused promotion shows it")
			}
			c, err := r.client()
			if err != nil {
				return err
			}
			e, err := call(c, cmd, args[0], reason)
			if err != nil {
				return err
			}
			return r.print(cmd.OutOrStdout(), e, func(tw *tabwriter.Writer) {
				rel := idFor(e.Release, r.output == "wide")
				if rel == "" {
					rel = "(none yet)"
				}
				fmt.Fprintf(tw, "%s: release %s", e.Name, rel)
				if e.Held {
					fmt.Fprint(tw, ", automatic promotion held")
				}
				if e.Frozen {
					fmt.Fprintf(tw, ", frozen: %s", e.FreezeReason)
				}
				fmt.Fprintln(tw)
				if e.Next != "" {
					fmt.Fprintf(tw, "next: %s\n", e.Next)
				}
			})
		},
	}
	r.flags(cmd)
	if needsReason {
		cmd.Flags().StringVar(&reason, "reason", "", "why (shown to every refused promotion)")
	}
	return cmd
}

func newResumeCommand() *cobra.Command {
	return newEnvCommand("resume ENV", "Let automatic promotion into an environment go on after a manual rollback (deployer)",
		func(c *server.Client, cmd *cobra.Command, env, _ string) (server.EnvironmentView, error) {
			return c.Resume(cmd.Context(), env)
		}, false)
}

func newFreezeCommand() *cobra.Command {
	return newEnvCommand("freeze ENV --reason TEXT", "Refuse every promotion into an environment until unfrozen (deployer)",
		func(c *server.Client, cmd *cobra.Command, env, reason string) (server.EnvironmentView, error) {
			return c.Freeze(cmd.Context(), env, reason)
		}, true)
}

func newUnfreezeCommand() *cobra.Command {
	return newEnvCommand("unfreeze ENV", "End a manual freeze (deployer); freeze windows of the configuration still apply",
		func(c *server.Client, cmd *cobra.Command, env, _ string) (server.EnvironmentView, error) {
			return c.Unfreeze(cmd.Context(), env)
		}, false)
}

func newHistoryCommand() *cobra.Command {
	r := &remote{}
	var limit int
	var before int64
	cmd := &cobra.Command{
		Use: "history ENV", Short: "Every deployment of an environment, newest first, page by page", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := r.client()
			if err != nil {
				return err
			}
			p, err := c.History(cmd.Context(), args[0], limit, before)
			if err != nil {
				return err
			}
			return r.print(cmd.OutOrStdout(), p, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "ID\tKIND\tRELEASE\tCOMMIT\tACTOR\tPROMOTION\tSTATUS\tVERIFICATION\tWHEN\tREASON")
				for _, d := range p.Items {
					promo := "-"
					if d.Promotion != 0 {
						promo = strconv.FormatInt(d.Promotion, 10)
					} else if d.Run != 0 {
						promo = fmt.Sprintf("run %d", d.Run)
					}
					kind := d.Kind
					if kind == "" {
						kind = "deploy"
					}
					fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.ID, kind, idFor(d.Release, r.output == "wide"), idFor(d.Commit, r.output == "wide"), d.Actor, promo, d.Status, d.Verification, ago(d.At), d.Reason)
				}
				if p.Next != 0 {
					fmt.Fprintf(tw, "(more: --before %d)\n", p.Next)
				}
			})
		},
	}
	r.flags(cmd)
	cmd.Flags().IntVar(&limit, "limit", 0, "per page (default 50)")
	cmd.Flags().Int64Var(&before, "before", 0, "the page after the one that printed this number")
	return cmd
}
