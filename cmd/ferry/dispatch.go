package main

import (
	"github.com/spf13/cobra"

	"github.com/ferrycd/ferry/environments/dispatch"
)

func newDispatchCommand() *cobra.Command {
	var planFile, listen string
	cmd := &cobra.Command{
		Use:   "dispatch",
		Short: "Run an environment's NATS and Kafka triggers from a dispatch plan",
		Long: `Run the NATSTriggers and KafkaTriggers of a dispatch plan (JSON), calling
their functions with CloudEvents over plain HTTP at the plan's URLs, until
SIGTERM. Then drain: take no new message, let the calls under way finish,
commit the Kafka offsets of what every function answered, and exit.

This is what a Kubernetes cluster runs: the controller writes the plan into
a ConfigMap that a dispatcher Deployment mounts (the pod restarts when it
changes). Logs are JSON lines on stderr. With --listen, /healthz answers 200
while the triggers run and /metrics serves the trigger counters.`,
		Example: `  ferry dispatch --plan /etc/ferry/plan.json --listen :8081`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			plan, err := dispatch.LoadPlan(planFile)
			if err != nil {
				return err
			}
			return dispatch.Run(cmd.Context(), dispatch.RunConfig{Plan: plan, Listen: listen})
		},
	}
	cmd.Flags().StringVar(&planFile, "plan", "", "the dispatch plan, a JSON file (required)")
	cmd.Flags().StringVar(&listen, "listen", "", "where /healthz and /metrics answer, e.g. :8081 (default: nowhere)")
	_ = cmd.MarkFlagRequired("plan")
	return cmd
}
