package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/ferrycd/ferry/server"
	"github.com/ferrycd/ferry/store"
)

// statusWidth is the widest line ferry status prints without -o wide:
// what a terminal beside an editor shows.
const statusWidth = 100

func newStatusCommand() *cobra.Command {
	r := &remote{}
	var watch bool
	var interval time.Duration
	cmd := &cobra.Command{
		Use:   "status [ENV]",
		Short: "What runs where: each environment's release and functions, in pipeline order",
		Long: `Each environment's live release and its functions, in the order of the
pipeline. The table fits in 100 columns, shortening what is too long
with …; -o wide prints everything (whole image references, URLs,
restarts). --watch prints it again whenever it changes.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if interval <= 0 {
				return fmt.Errorf("--interval %s: give a duration above zero, e.g. 2s", interval)
			}
			c, err := r.client()
			if err != nil {
				return err
			}
			env := ""
			if len(args) == 1 {
				env = args[0]
			}
			out := cmd.OutOrStdout()
			if !watch {
				s, err := r.status(cmd.Context(), c, env)
				if err != nil {
					return err
				}
				_, err = io.WriteString(out, s)
				return err
			}
			return r.watchStatus(cmd.Context(), out, c, env, interval)
		},
	}
	r.flags(cmd)
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "print the status again whenever it changes, until interrupted")
	cmd.Flags().DurationVar(&interval, "interval", 2*time.Second, "how often --watch asks the server")
	return cmd
}

// watchStatus prints the status, then again each time it differs, until
// ctx ends. On a terminal each print replaces the last; elsewhere (a
// pipe, a log) they follow one another, each after a line with the time.
func (r *remote) watchStatus(ctx context.Context, out io.Writer, c *server.Client, env string, interval time.Duration) error {
	tty := isTerminal(out)
	last := ""
	for {
		s, err := r.status(ctx, c, env)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			// why: a server restarting is what one watches for; say it
			// and keep asking.
			s = fmt.Sprintf("ferry status: %v\n", err)
		}
		if s != last {
			if tty {
				io.WriteString(out, "\033[H\033[2J")
			}
			fmt.Fprintf(out, "-- %s, every %s (Ctrl-C ends)\n%s", time.Now().Format("15:04:05"), interval, s)
			last = s
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(interval):
		}
	}
}

// status renders env's status, or every environment's, as -o asks.
func (r *remote) status(ctx context.Context, c *server.Client, env string) (string, error) {
	var envs []server.EnvironmentView
	if env != "" {
		e, err := c.Environment(ctx, env)
		if err != nil {
			return "", err
		}
		envs = []server.EnvironmentView{e}
	} else {
		var err error
		if envs, err = c.Environments(ctx); err != nil {
			return "", err
		}
	}
	if r.output == "json" {
		b, err := json.MarshalIndent(envs, "", "  ")
		return string(b) + "\n", err
	}
	srv, err := c.ServerInfo(ctx)
	if err != nil {
		return "", err
	}
	return renderStatus(envs, srv, r.output == "wide"), nil
}

// renderStatus is the status table: one row per function, the
// environment's notes (frozen, held, an error) below it.
func renderStatus(envs []server.EnvironmentView, srv server.ServerView, wide bool) string {
	header := []string{"ENVIRONMENT", "RELEASE", "FUNCTION", "STATE", "IMAGE", "URL"}
	if wide {
		header = append(header, "RESTARTS")
	}
	rows := [][]string{header}
	var notes []string
	for _, e := range envs {
		name := e.Name
		if e.Preview {
			// why: a preview is listed after the configured environments,
			// and its URL is where a reviewer looks.
			name += " (preview)"
		}
		rel := idFor(e.Release, wide)
		if rel == "" {
			rel = "(none)"
		}
		// why: the command comes first, so that clipping a note to 100
		// columns cuts only the reason.
		if e.Frozen {
			notes = append(notes, fmt.Sprintf("%s is frozen: ferry unfreeze %s lets promotions in (%s)", e.Name, e.Name, e.FreezeReason))
		}
		if e.Held {
			notes = append(notes, fmt.Sprintf("%s is held: ferry resume %s lets automatic promotions in (%s)", e.Name, e.Name, e.HoldReason))
		}
		if e.Error != "" {
			if wide {
				rows = append(rows, statusRow(wide, name, rel, "", "error: "+e.Error, "", e.URL, ""))
			} else {
				// why: a note has the whole line where a cell has a few
				// columns; a note too long says first how to read it all.
				rows = append(rows, statusRow(wide, name, rel, "", "error (below)", "", e.URL, ""))
				note := fmt.Sprintf("%s: error: %s", e.Name, e.Error)
				if utf8.RuneCountInString(note) > statusWidth {
					note = fmt.Sprintf("%s: error (ferry status %s -o wide prints it whole): %s", e.Name, e.Name, e.Error)
				}
				notes = append(notes, note)
			}
		}
		if len(e.Functions) == 0 && e.Error == "" {
			rows = append(rows, statusRow(wide, name, rel, "", "", "", e.URL, ""))
		}
		for _, f := range e.Functions {
			state := f.State
			if f.Message != "" {
				state += ": " + f.Message
			}
			rows = append(rows, statusRow(wide, name, rel, f.Name, state, imageFor(f.Image, wide), f.URL, fmt.Sprint(f.Restarts)))
		}
	}
	var sb strings.Builder
	sb.WriteString(clip("sandbox: "+srv.Sandbox, wide) + "\n")
	if !wide {
		fitColumns(rows, statusWidth, 2)
	}
	writeColumns(&sb, rows, 2)
	for _, n := range notes {
		sb.WriteString(clip(n, wide) + "\n")
	}
	return sb.String()
}

func statusRow(wide bool, cells ...string) []string {
	if wide {
		return cells
	}
	return cells[:6]
}

// shortImage is an image as the tables name it: its digest's first 12 hex
// characters, which any command that takes an image accepts.
func shortImage(ref string) string {
	if _, d, ok := strings.Cut(ref, "@"); ok {
		return store.Short(d)
	}
	return ref
}

// clip shortens a line to statusWidth unless wide.
func clip(s string, wide bool) string {
	if wide || utf8.RuneCountInString(s) <= statusWidth {
		return s
	}
	return truncate(s, statusWidth)
}

// truncate keeps the first n-1 characters of s and an ellipsis.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// minColumn is the narrowest fitColumns makes a column.
const minColumn = 8

// fitColumns shortens the widest columns' cells until a row with gap
// spaces between columns fits in width, or no column can shrink further.
func fitColumns(rows [][]string, width, gap int) {
	for {
		widths := columnWidths(rows)
		total := gap * (len(widths) - 1)
		widest := 0
		for i, w := range widths {
			total += w
			if w > widths[widest] {
				widest = i
			}
		}
		if total <= width || widths[widest] <= minColumn {
			return
		}
		to := max(widths[widest]-(total-width), minColumn)
		for _, row := range rows {
			if widest < len(row) {
				row[widest] = truncate(row[widest], to)
			}
		}
	}
}

func columnWidths(rows [][]string) []int {
	var widths []int
	for _, row := range rows {
		for i, cell := range row {
			if i == len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], utf8.RuneCountInString(cell))
		}
	}
	return widths
}

// writeColumns writes rows as aligned columns, without trailing spaces.
func writeColumns(w io.StringWriter, rows [][]string, gap int) {
	widths := columnWidths(rows)
	for _, row := range rows {
		var line strings.Builder
		for i, cell := range row {
			line.WriteString(cell)
			if i < len(row)-1 {
				line.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(cell)+gap))
			}
		}
		w.WriteString(strings.TrimRight(line.String(), " ") + "\n")
	}
}
