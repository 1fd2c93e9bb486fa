package server

import (
	"github.com/ferrycd/ferry/environments"
	"github.com/ferrycd/ferry/environments/kube"
)

// makeKubeTarget is newKubeTarget: environments/kube's target with what
// ferry serve knows of the environment. Secrets are read by name when a
// release is applied and written into the namespace's Secret; a preview
// gets none (it runs a pull request's code).
func makeKubeTarget(env string, k KubeConfig, o KubeTargetOptions) (environments.Target, error) {
	cfg := kube.Config{
		Environment:  env,
		Kubeconfig:   k.Kubeconfig,
		Context:      k.Context,
		Namespace:    k.Namespace,
		GatewayURL:   k.GatewayURL,
		Gateway:      k.Gateway,
		IngressClass: k.IngressClass,
		Image:        k.Image,
		NATSURL:      o.NATSURL,
		KafkaBrokers: o.KafkaBrokers,
		Env:          o.EnvValues,
		Log:          o.Log,
	}
	if !o.Untrusted {
		cfg.Secrets = o.Secret
	}
	return kube.New(cfg)
}
