package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferrycd/ferry/server"
	"github.com/ferrycd/ferry/store"
)

// remote holds the flags of every command that talks to ferry serve.
type remote struct {
	server, token, output string
}

func (r *remote) flags(cmd *cobra.Command) {
	// why: the variables are read at run time, not as flag defaults, so
	// that help says "(default $FERRY_SERVER)" once and never shows a value.
	cmd.PersistentFlags().StringVar(&r.server, "server", "", "ferry serve's API, http://HOST:PORT (default $FERRY_SERVER)")
	cmd.PersistentFlags().StringVar(&r.token, "token", "", "API token (default $FERRY_TOKEN)")
	cmd.PersistentFlags().StringVarP(&r.output, "output", "o", "table", "table, json, or wide (every column: status)")
}

// serverAddr is --server, else $FERRY_SERVER.
func (r *remote) serverAddr() string {
	if r.server != "" {
		return r.server
	}
	return os.Getenv("FERRY_SERVER")
}

func (r *remote) client() (*server.Client, error) {
	token, srv := r.token, r.serverAddr()
	if token == "" {
		token = os.Getenv("FERRY_TOKEN")
	}
	if r.output != "table" && r.output != "json" && r.output != "wide" {
		return nil, fmt.Errorf("--output %q: use table, json or wide", r.output)
	}
	return server.NewClient(srv, token)
}

// print writes v as JSON with -o json, else calls table.
func (r *remote) print(w io.Writer, v any, table func(tw *tabwriter.Writer)) error {
	if r.output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := time.Since(t).Round(time.Second)
	if d < 0 {
		return "in " + (-d).String()
	}
	return d.String() + " ago"
}

func newSourcesCommand() *cobra.Command {
	r := &remote{}
	cmd := &cobra.Command{Use: "sources", Short: "The Git repositories ferry serve watches"}
	r.flags(cmd)

	list := &cobra.Command{
		Use: "list", Short: "List sources and what was last seen of each", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := r.client()
			if err != nil {
				return err
			}
			srcs, err := c.Sources(cmd.Context())
			if err != nil {
				return err
			}
			return r.print(cmd.OutOrStdout(), srcs, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "NAME\tURL\tBRANCH\tINTERVAL\tCOMMIT\tFETCHED\tSTATUS")
				for _, s := range srcs {
					status := "ok"
					if s.LastError != "" {
						status = fmt.Sprintf("failing: %s (%d in a row, next %s)", s.LastError, s.Failures, ago(s.NextFetch))
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, s.URL, s.Branch, s.Interval, store.Short(s.LastCommit), ago(s.LastFetch), status)
				}
			})
		},
	}
	var req server.SourceRequest
	add := &cobra.Command{
		Use: "add NAME URL", Short: "Watch a repository (admin)", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := r.client()
			if err != nil {
				return err
			}
			req.Name, req.URL = args[0], args[1]
			if req.Password == "" {
				req.Password = os.Getenv("FERRY_SOURCE_PASSWORD")
			}
			s, err := c.AddSource(cmd.Context(), req)
			if err != nil {
				return err
			}
			return r.print(cmd.OutOrStdout(), s, func(tw *tabwriter.Writer) {
				fmt.Fprintf(tw, "source %s added: %s (%s), every %s, each fetch within %s\n", s.Name, s.URL, s.Branch, s.Interval, s.Timeout)
			})
		},
	}
	add.Flags().StringVar(&req.Branch, "branch", "main", "branch to watch")
	add.Flags().StringVar(&req.Interval, "interval", "1m", "how often to poll")
	add.Flags().StringVar(&req.Timeout, "timeout", "", "bound on each fetch, connecting included (default 60s; raise it for a very large first fetch)")
	add.Flags().StringVar(&req.WebhookSecret, "webhook-secret", "", "secret that signs the repository's webhooks")
	add.Flags().StringVar(&req.Username, "username", "", "HTTPS user (the password or token comes from $FERRY_SOURCE_PASSWORD)")
	var keyFile string
	add.Flags().StringVar(&keyFile, "ssh-key", "", "file with the SSH private key for an ssh:// URL")
	add.PreRunE = func(*cobra.Command, []string) error {
		if keyFile == "" {
			return nil
		}
		b, err := os.ReadFile(keyFile)
		req.SSHKey = string(b)
		return err
	}
	rm := &cobra.Command{
		Use: "rm NAME", Short: "Stop watching a repository (admin); its runs and releases stay", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := r.client()
			if err != nil {
				return err
			}
			if err := c.RemoveSource(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "source %s removed\n", args[0])
			return nil
		},
	}
	sync := &cobra.Command{
		Use: "sync NAME", Short: "Fetch a repository now (deployer)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := r.client()
			if err != nil {
				return err
			}
			s, err := c.SyncSource(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return r.print(cmd.OutOrStdout(), s, func(tw *tabwriter.Writer) {
				fmt.Fprintf(tw, "source %s at %s\n", s.Name, store.Short(s.LastCommit))
			})
		},
	}
	cmd.AddCommand(list, add, rm, sync)
	return cmd
}

func newReleasesCommand() *cobra.Command {
	r := &remote{}
	var source string
	var limit int
	var before int64
	cmd := &cobra.Command{
		Use: "releases [ID]", Short: "Releases, newest first, or one release's manifest (ID: the id or a unique prefix)", Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := r.client()
			if err != nil {
				return err
			}
			if len(args) == 1 {
				rel, err := c.Release(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				return r.print(cmd.OutOrStdout(), rel, func(tw *tabwriter.Writer) {
					fmt.Fprintf(tw, "# release %s of %s at %s\n# %s\n%s", rel.ID, rel.Source, rel.Commit, rel.Ref, rel.Manifest)
				})
			}
			p, err := c.Releases(cmd.Context(), source, limit, before)
			if err != nil {
				return err
			}
			return r.print(cmd.OutOrStdout(), p, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "RELEASE\tSOURCE\tCOMMIT\tRUN\tCREATED")
				for _, rel := range p.Items {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", idFor(rel.ID, r.output == "wide"), rel.Source, idFor(rel.Commit, r.output == "wide"), rel.RunID, ago(rel.Created))
				}
				if p.Next != 0 {
					fmt.Fprintf(tw, "(more: --before %d)\n", p.Next)
				}
			})
		},
	}
	r.flags(cmd)
	cmd.Flags().StringVar(&source, "source", "", "only this source's releases")
	cmd.Flags().IntVar(&limit, "limit", 0, "releases per page (default 50)")
	cmd.Flags().Int64Var(&before, "before", 0, "the page after the one that printed this number")
	return cmd
}
