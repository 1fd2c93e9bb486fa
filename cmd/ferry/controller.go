package main

import (
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/ferrycd/ferry/environments/kube/controller"
)

func newControllerCommand() *cobra.Command {
	var opts controller.Options
	var kubeconfig, kubecontext string
	cmd := &cobra.Command{
		Use:   "controller",
		Short: "Run the in-cluster controller that makes Functions and triggers run on Kubernetes",
		Long: `Run ferry's Kubernetes controller: it turns the Function and trigger
objects ferry applies into Deployments, Services, HorizontalPodAutoscalers,
HTTPRoutes (or Ingresses), CronJobs and dispatcher Deployments, and
reports their state in the objects' status conditions and events.

In a pod it uses the pod's service account; outside, --kubeconfig (or
$KUBECONFIG, then ~/.kube/config). Run two replicas with --leader-elect:
one reconciles, the other takes over when it goes.

CronJobs and dispatchers run ferry's own image: --image, unless the
environment's ConfigMap (ferry-environment) names one.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rules := clientcmd.NewDefaultClientConfigLoadingRules()
			rules.ExplicitPath = kubeconfig
			cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules,
				&clientcmd.ConfigOverrides{CurrentContext: kubecontext}).ClientConfig()
			if err != nil {
				return fmt.Errorf("finding the cluster: %w (in a pod, the service account is used; outside, give --kubeconfig)", err)
			}
			return controller.Run(cmd.Context(), cfg, opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.MetricsBindAddress, "metrics-bind-address", ":8080", "where Prometheus metrics are served; 0 serves none")
	f.StringVar(&opts.HealthProbeBindAddress, "health-probe-bind-address", ":8081", "where /healthz and /readyz are served")
	f.BoolVar(&opts.LeaderElect, "leader-elect", false, "hold a Lease so that one of several replicas reconciles")
	f.StringVar(&opts.LeaderElectionNamespace, "leader-election-namespace", "", "namespace of the Lease (default: the pod's)")
	f.StringVar(&opts.Image, "image", "", "ferry's own image, by digest, for CronJobs (ferry fire) and dispatchers (ferry dispatch)")
	f.StringVar(&opts.Namespace, "namespace", "", "watch this namespace only (default: all)")
	f.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file, outside a cluster")
	f.StringVar(&kubecontext, "context", "", "kubeconfig context (default: its current one)")
	return cmd
}
