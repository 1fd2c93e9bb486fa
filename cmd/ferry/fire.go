package main

import (
	"fmt"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferrycd/ferry/environments/dispatch"
)

func newFireCommand() *cobra.Command {
	var f dispatch.Firing
	var data string
	cmd := &cobra.Command{
		Use:   "fire",
		Short: "Send one CloudEvent to a function",
		Long: `Send one CloudEvent (binary mode, a new ce-id) to the function at --url
and print its answer. Exit 0 when it answers 2xx, 1 otherwise.

This is what a Kubernetes CronJob runs for a CronTrigger's tick. Redirects
are not followed.`,
		Example: `  ferry fire --url http://report.prod.svc --type dev.ferry.cron.tick \
    --source /ferry/prod/cron/nightly --data '{"full": true}'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f.Data = []byte(data)
			code, answer, err := dispatch.Fire(cmd.Context(), f)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			out.Write(answer)
			if len(answer) > 0 && answer[len(answer)-1] != '\n' {
				fmt.Fprintln(out)
			}
			if code/100 != 2 {
				return fmt.Errorf("%s answered %d %s", f.URL, code, http.StatusText(code))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&f.URL, "url", "", "the function's URL (required)")
	cmd.Flags().StringVar(&f.Type, "type", "", "the event's type, ce-type (required)")
	cmd.Flags().StringVar(&f.Source, "source", "", "the event's source, ce-source (required)")
	cmd.Flags().StringVar(&data, "data", "", "the event's data, JSON (default: none)")
	cmd.Flags().DurationVar(&f.Timeout, "timeout", 30*time.Second, "how long to wait for the answer")
	for _, name := range []string{"url", "type", "source"} {
		_ = cmd.MarkFlagRequired(name)
	}
	return cmd
}
