package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/ferrycd/ferry/build"
	"github.com/ferrycd/ferry/environments/kube/install"
)

func newInstallCommand() *cobra.Command {
	var (
		kubeContext, kubeconfig, namespace string
		image, push, output                string
		dryRun, insecure                   bool
		timeout                            time.Duration
	)
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Install ferry's CRDs, RBAC and controller in a Kubernetes cluster",
		Long: `Install in the cluster of --context: ferry's CRDs, the namespace
(--namespace), the controller's ServiceAccount and least-privilege RBAC,
and the controller Deployment running ferry's own image by digest. The
objects are applied server-side (field manager ferry), so installing again
updates them; ferry install waits for the CRDs to be Established.

The image is --image REPO@sha256:..., as ` + "`ferry image push`" + ` prints it, or
--push REPO to push this ferry executable there first. An image not pinned
by digest is refused.

With --dry-run -o yaml nothing is sent: the objects are printed as one
YAML stream (CRDs, namespace, RBAC, Deployment), for kubectl apply
--server-side -f - or a GitOps repository.`,
		Example: `  ferry install --context prod --push registry.example.com/ferry
  ferry install --dry-run -o yaml --image registry.example.com/ferry@sha256:...`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if dryRun && output == "" {
				return errors.New("--dry-run prints the objects: add -o yaml")
			}
			if output != "" && output != "yaml" {
				return fmt.Errorf("-o %s: ferry install prints yaml only (-o yaml), which kubectl apply --server-side -f - reads", output)
			}
			if !dryRun && output != "" {
				return errors.New("-o yaml prints instead of installing: add --dry-run")
			}
			if !dryRun && kubeContext == "" {
				return errors.New("no --context: name the kubeconfig context of the cluster to install in, so ferry never installs into whichever cluster happens to be current")
			}
			switch {
			case image != "" && push != "":
				return errors.New("give --image or --push, not both")
			case image == "" && push == "":
				return errors.New("no image for the controller: --push REPO pushes this ferry executable, or --image REPO@sha256:... names one pushed before with `ferry image push`")
			case push != "":
				ref, err := build.PushSelf(ctx, push, build.WithInsecure(insecure))
				if err != nil {
					return err
				}
				image = ref
				fmt.Fprintf(cmd.ErrOrStderr(), "pushed ferry's image %s\n", ref)
			}
			objs, err := install.Objects(install.Options{Namespace: namespace, Image: image})
			if err != nil {
				return err
			}
			if dryRun {
				return install.WriteYAML(cmd.OutOrStdout(), objs)
			}
			rules := clientcmd.NewDefaultClientConfigLoadingRules()
			rules.ExplicitPath = kubeconfig
			if kubeconfig != "" {
				// Said apart from a bad context: client-go words a missing file as a stat error.
				if _, err := os.Stat(kubeconfig); err != nil {
					return fmt.Errorf("--kubeconfig %s: %w; pass the kubeconfig file of the cluster (or leave --kubeconfig out to use $KUBECONFIG, else ~/.kube/config)", kubeconfig, err)
				}
			}
			cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: kubeContext}).ClientConfig()
			if err != nil {
				return fmt.Errorf("kubeconfig context %q: %w; list the contexts with `kubectl config get-contexts`", kubeContext, err)
			}
			out := cmd.OutOrStdout()
			err = install.Apply(ctx, cfg, objs, timeout, func(kind, name string) {
				fmt.Fprintf(out, "applied %s %s\n", kind, name)
			})
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(out, "installed: the controller runs %s in namespace %s\n", image, namespaceOr(namespace))
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&kubeContext, "context", "", "kubeconfig context of the cluster to install in (required unless --dry-run)")
	f.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)")
	f.StringVarP(&namespace, "namespace", "n", install.DefaultNamespace, "namespace of the controller")
	f.StringVar(&image, "image", "", "ferry's image for the controller, pinned by digest (REPO@sha256:...)")
	f.StringVar(&push, "push", "", "push this ferry executable to REPO first and install that image")
	f.BoolVar(&insecure, "insecure", false, "with --push: allow plain HTTP to a registry that is not on this machine")
	f.BoolVar(&dryRun, "dry-run", false, "print the objects instead of applying them (with -o yaml)")
	f.StringVarP(&output, "output", "o", "", "with --dry-run: the format to print (yaml)")
	f.DurationVar(&timeout, "timeout", install.DefaultTimeout, "how long to wait for the CRDs to be Established")
	return cmd
}

func namespaceOr(ns string) string {
	if ns == "" {
		return install.DefaultNamespace
	}
	return ns
}
