package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/ferrycd/ferry/server"
	"github.com/ferrycd/ferry/store"
)

func newRunsCommand() *cobra.Command {
	r := &remote{}
	var source string
	var limit int
	var before int64
	cmd := &cobra.Command{
		Use:   "runs [RUN]",
		Short: "Pipeline runs, newest first, and where each one's release went; or one run",
		Long: `Pipeline runs, newest first. FATE says where the run's release went,
environment by environment: dev ✔ (it succeeded there), staging rolled
back, prod waiting (for approvals, a freeze, a hold); REASON why the run
or its release failed. ferry runs RUN shows one run's steps and each
environment's fate with its reason. The tables fit in 100 columns,
naming releases by 12 hex characters; -o wide adds the branch and commit
and prints whole ids and reasons.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := r.client()
			if err != nil {
				return err
			}
			if len(args) == 1 {
				id, err := runNumber(args[0])
				if err != nil {
					return err
				}
				run, err := c.Run(cmd.Context(), id)
				if err != nil {
					return err
				}
				return r.print(cmd.OutOrStdout(), run, func(tw *tabwriter.Writer) { printRun(tw, run, r.output == "wide") })
			}
			p, err := c.Runs(cmd.Context(), source, limit, before)
			if err != nil {
				return err
			}
			return r.print(cmd.OutOrStdout(), p, func(tw *tabwriter.Writer) {
				printRuns(tw, p.Items, r.output == "wide")
				if p.Next != 0 {
					fmt.Fprintf(tw, "(more: --before %d)\n", p.Next)
				}
			})
		},
	}
	r.flags(cmd)
	cmd.Flags().StringVar(&source, "source", "", "only this source's runs")
	cmd.Flags().IntVar(&limit, "limit", 0, "runs per page (default 50)")
	cmd.Flags().Int64Var(&before, "before", 0, "the page after the one that printed this number")
	cmd.AddCommand(newRunLogsCommand(r))
	return cmd
}

func newRunLogsCommand(r *remote) *cobra.Command {
	var follow bool
	logs := &cobra.Command{
		Use:   "logs RUN",
		Short: "A run's log; -f follows it until the run ends",
		Long:  "A run's log. It exits 1 when the run failed (with -f: unless it succeeded), so scripts can tell.",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := runNumber(args[0])
			if err != nil {
				return err
			}
			c, err := r.client()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			printLine := func(l server.LogLineView) {
				fmt.Fprintf(out, "%s %-8s %s\n", l.At.Local().Format("15:04:05.000"), l.Step, terminalSafe(l.Text))
			}
			if !follow {
				lines, err := c.Logs(cmd.Context(), id, 0)
				if err != nil {
					return err
				}
				for _, l := range lines {
					printLine(l)
				}
				run, err := c.Run(cmd.Context(), id)
				if err != nil {
					return err
				}
				if run.Status == string(store.StatusFailed) {
					fmt.Fprintf(cmd.ErrOrStderr(), "run %d failed: %s\n", run.ID, run.Reason)
					return errReported
				}
				return nil
			}
			run, err := c.FollowLogs(cmd.Context(), id, printLine)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "run %d %s", run.ID, run.Status)
			if run.Reason != "" {
				fmt.Fprintf(out, ": %s", run.Reason)
			}
			fmt.Fprintln(out)
			if run.Status != string(store.StatusSucceeded) {
				return errReported
			}
			return nil
		},
	}
	logs.Flags().BoolVarP(&follow, "follow", "f", false, "follow the log until the run ends; exit 1 unless it succeeded")
	return logs
}

func runNumber(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("run %q: give the run's number (ferry runs lists them)", s)
	}
	return id, nil
}

// printRuns is the runs table, in 100 columns unless wide.
func printRuns(w io.Writer, runs []server.RunView, wide bool) {
	// why: the branch and commit are left to -o wide, so that FATE and
	// REASON have room in 100 columns.
	rows := [][]string{{"RUN", "SOURCE", "STATUS", "RELEASE", "CREATED", "FATE", "REASON"}}
	if wide {
		rows[0] = []string{"RUN", "SOURCE", "BRANCH", "COMMIT", "STATUS", "RELEASE", "CREATED", "FATE", "REASON"}
	}
	for _, run := range runs {
		row := []string{strconv.FormatInt(run.ID, 10), run.Source, run.Status, idFor(run.Release, wide), ago(run.Created), fateLine(run.Fate), runReason(run)}
		if wide {
			row = append(row[:2:2], append([]string{run.Branch, run.Commit}, row[2:]...)...)
		}
		rows = append(rows, row)
	}
	rowsTo(w, rows, wide)
}

// runReason is why a run failed or, when it made a release, why that
// release failed where it did (FATE names the environment).
func runReason(run server.RunView) string {
	if run.Reason != "" {
		return firstLine(run.Reason)
	}
	for _, f := range run.Fate {
		if fateFailed(f) && f.Reason != "" {
			return firstLine(f.Reason)
		}
	}
	return ""
}

// fateFailed reports whether the release failed in f's environment.
func fateFailed(f server.FateView) bool {
	switch f.Status {
	case "failed", "rolled-back", "deploy-failed":
		return true
	}
	return false
}

// printRun shows one run: what it built, its steps, and where its
// release went with the reasons.
func printRun(tw *tabwriter.Writer, run server.RunView, wide bool) {
	fmt.Fprintf(tw, "run %d\t%s/%s %s\t%s\n", run.ID, run.Source, run.Branch, idFor(run.Commit, wide), run.Status)
	if run.Reason != "" {
		fmt.Fprintf(tw, "reason\t%s\n", run.Reason)
	}
	if run.Release != "" {
		fmt.Fprintf(tw, "release\t%s\n", idFor(run.Release, wide))
	}
	fmt.Fprintln(tw, "\nSTEP\tSTATUS\tREASON")
	for _, s := range run.Steps {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Name, s.Status, s.Reason)
	}
	if run.Release == "" {
		return
	}
	tw.Flush()
	fmt.Fprintln(tw)
	rows := [][]string{{"ENVIRONMENT", "PROMOTION", "FATE", "REASON"}}
	if len(run.Fate) == 0 {
		rows = append(rows, []string{"(none yet)"})
	}
	for _, f := range run.Fate {
		promotion := "-"
		if f.Promotion != 0 {
			promotion = strconv.FormatInt(f.Promotion, 10)
		}
		reason := ""
		if f.Status != "succeeded" {
			reason = f.Reason
			if !wide {
				reason = firstLine(reason)
			}
		}
		rows = append(rows, []string{f.Environment, promotion, fateWord(f), reason})
	}
	rowsTo(tw, rows, wide)
}

// fateLine sums a release's fate up in one line: "dev ✔, staging rolled
// back, prod waiting".
func fateLine(fate []server.FateView) string {
	var parts []string
	for _, f := range fate {
		parts = append(parts, f.Environment+" "+fateWord(f))
	}
	return strings.Join(parts, ", ")
}

func fateWord(f server.FateView) string {
	switch f.Status {
	case "succeeded":
		return "✔"
	case "pending":
		return "waiting"
	case "rolled-back":
		return "rolled back"
	case "deploy-failed":
		return "deploy failed"
	}
	return f.Status
}
