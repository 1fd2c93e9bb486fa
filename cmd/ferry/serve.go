package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ferrycd/ferry/internal/sandbox"
	"github.com/ferrycd/ferry/server"
)

func newServeCommand() *cobra.Command {
	var config, logFormat string
	cmd := &cobra.Command{
		Use:   "serve --config FILE",
		Short: "Run ferry: watch sources, run pipelines, serve the dashboard, API, webhooks and environments",
		Long: `Run ferry as one process: the dashboard, API and webhooks on listen, every
environment's functions on gateway (http://GATEWAY/<env>/<path>), the
watcher polling each source, the pipeline building each new commit into a
release and deploying it to the first stage, an embedded registry, and
durable state under dataDir. Stop with Ctrl-C or SIGTERM; a run cut off
by a crash resumes at the next start. One ferry serve per dataDir: a
second one says which process holds it (dataDir/ferry.lock) and exits.

The configuration (YAML):

  listen: 127.0.0.1:8080          # dashboard (/), API, webhooks
  gateway: 127.0.0.1:8081         # functions: http://GATEWAY/<env>/<path>
  dataDir: ./.ferry-data          # relative to the file
  registry: embedded              # or HOST/REPO (Docker config credentials)
  registryListen: 127.0.0.1:8082  # the embedded registry
  registryTimeout: 60s            # each registry answer is due within it
  sources:
  - {name: demo, url: ./demo-repo, branch: main, interval: 30s, timeout: 60s, webhookSecret: $DEMO_SECRET}
  environments:
  - {name: dev}
  - {name: staging}
  - {name: prod, target: kube, kube: {kubeconfig: prod.kubeconfig, context: prod}}  # a cluster (ferry install)
  tokens:
  - {name: alice, token: $ALICE_TOKEN, roles: [deployer, approver]}
  sandbox: {mode: bwrap, network: none}  # how code from Git runs (bubblewrap)
  logFormat: text                 # or json, one object a line
  storeRetry: 2m                  # a full disk: how long a run waits before it fails

ferry serve logs one line per outcome: run started and finished (with the
failing step and its first error), release made, deployed to ENV,
verification passed or failed, rolled back, waiting for approvals,
approved, rejected, frozen and unfrozen.

Secrets may be written as $VAR, read from ferry's environment.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := sandbox.HardenSelf(); err != nil {
				return err
			}
			cfg, err := server.LoadConfig(config)
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("log-format") {
				if !slices.Contains(server.LogFormats, logFormat) {
					return fmt.Errorf("--log-format %q: give one of %s", logFormat, strings.Join(server.LogFormats, ", "))
				}
				cfg.LogFormat = logFormat
			}
			return server.Serve(cmd.Context(), cfg, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&config, "config", "ferry-serve.yaml", "the configuration file")
	cmd.Flags().StringVar(&logFormat, "log-format", server.LogText, "how to log: text (for people) or json (for log collectors); overrides logFormat")
	return cmd
}
