package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/ferrycd/ferry/environments/embedded"
	"github.com/ferrycd/ferry/internal/words"
	"github.com/ferrycd/ferry/server"
)

func newLogsCommand() *cobra.Command {
	r := &remote{}
	var env, dataDir, since string
	var follow bool
	var tail int
	cmd := &cobra.Command{
		Use:   "logs FUNCTION",
		Short: "Print a function's log, each line with its time and stream",
		Long: `Print FUNCTION's log in ENV: what it wrote (stdout, stderr), the gateway's
line per call (access: method, path, status, duration, ce-id) and its
supervisor's (ferry). With -f, keep printing new lines until interrupted.
Control characters a function wrote (a carriage return, an escape
sequence) are printed escaped (\r, \x1b), so that no line can rewrite
another on the terminal; -o json gives the text as written.

With a server (--server or $FERRY_SERVER, and a token) the lines come from
ferry serve's API, which keeps the last 1000 of each function; without one,
from the log file under ferry run's data folder.`,
		Example: `  ferry logs hello --env dev --tail 20
  ferry logs hello --env dev -f --since 10m`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			fn := args[0]
			if r.serverAddr() == "" || cmd.Flags().Changed("data") {
				if tail != 0 || since != "" {
					return fmt.Errorf("--tail and --since need a server (--server or $FERRY_SERVER); the local log file is printed whole")
				}
				return embedded.CopyLog(cmd.Context(), embedded.LogFile(dataDir, env, fn), cmd.OutOrStdout(), follow)
			}
			if !cmd.Flags().Changed("env") {
				return fmt.Errorf("give --env: which environment of %s runs %s", r.serverAddr(), fn)
			}
			if tail < 0 {
				return fmt.Errorf("--tail %d: give a number of lines, 0 for all that are kept", tail)
			}
			c, err := r.client()
			if err != nil {
				return err
			}
			q := server.FunctionLogQuery{Tail: tail, Since: since}
			out := cmd.OutOrStdout()
			print := func(l server.FunctionLogView) { printFunctionLine(out, l, r.output == "json") }
			if !follow {
				lines, err := c.FunctionLogs(cmd.Context(), env, fn, q)
				if err != nil {
					return err
				}
				for _, l := range lines {
					print(l)
				}
				return nil
			}
			return c.FollowFunctionLogs(cmd.Context(), env, fn, q, print, func(n uint64) {
				fmt.Fprintf(cmd.ErrOrStderr(), "ferry logs: %s dropped: this terminal fell behind the function\n", words.Count(int(n), "line was", "lines were"))
			})
		},
	}
	r.flags(cmd)
	cmd.Flags().StringVar(&env, "env", "local", "environment")
	cmd.Flags().StringVar(&dataDir, "data", "./.ferry-data", "the data folder of ferry run, DIR/.ferry-data (used when no server is given)")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new lines until interrupted")
	cmd.Flags().IntVar(&tail, "tail", 0, "print only the last N lines (0: all that are kept)")
	cmd.Flags().StringVar(&since, "since", "", "print only lines newer than this: a duration (10m) or a time (RFC 3339)")
	return cmd
}

// printFunctionLine prints a line as the log file holds it, or as JSON.
func printFunctionLine(w io.Writer, l server.FunctionLogView, asJSON bool) {
	if asJSON {
		b, _ := json.Marshal(l)
		fmt.Fprintf(w, "%s\n", b)
		return
	}
	fmt.Fprintf(w, "%s %s %s\n", l.Time.UTC().Format("2006-01-02T15:04:05.000000Z07:00"), l.Stream, terminalSafe(l.Text))
}

// terminalSafe returns s with every control character but the tab written
// as its Go escape (\r, \x1b, \x7f). A function's output is whoever
// pushed it: a carriage return or an escape sequence would rewrite the
// line on the reader's terminal (its stream and time too, so that it reads
// as the gateway's access line or ferry's own), or lines above it. -o json
// gives the text as written.
func terminalSafe(s string) string {
	if !strings.ContainsFunc(s, escaped) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if escaped(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func escaped(r rune) bool { return r != '\t' && unicode.IsControl(r) }
