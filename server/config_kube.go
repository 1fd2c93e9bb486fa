package server

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Targets an environment may name in target:.
const (
	TargetEmbedded = "embedded"
	TargetKube     = "kube"
)

// KubeConfig is where a target: kube environment (or the previews, with
// previews.target: kube) runs:
//
//	environments:
//	- name: prod
//	  target: kube
//	  kube:
//	    kubeconfig: prod.kubeconfig   # default $KUBECONFIG, then ~/.kube/config
//	    context: prod-eu              # default the kubeconfig's current context
//	    namespace: shop-prod          # default ferry-<environment>
//	    gatewayURL: https://fn.example.com  # where the cluster's Gateway serves the HTTPRoutes
type KubeConfig struct {
	// Kubeconfig is the kubeconfig file, relative to the configuration
	// file; "" is $KUBECONFIG, then ~/.kube/config.
	Kubeconfig string `yaml:"kubeconfig"`
	// Context is the kubeconfig's context; "" is its current one.
	Context string `yaml:"context"`
	// Namespace holds the environment's objects (default
	// ferry-<environment>).
	Namespace string `yaml:"namespace"`
	// GatewayURL, when set, is where the cluster's Gateway serves the
	// environment's HTTPRoutes: the functions' URLs. Without it ferry
	// reaches the functions through the API server.
	GatewayURL string `yaml:"gatewayURL"`
	// Gateway is NAMESPACE/NAME of the Gateway API Gateway the
	// controller's HTTPRoutes attach to; IngressClass, when set, makes it
	// write Ingresses of that class instead.
	Gateway      string `yaml:"gateway"`
	IngressClass string `yaml:"ingressClass"`
	// Image is ferry's own image by digest, for the CronJobs and
	// dispatchers the controller makes ("" is the controller's --image).
	Image string `yaml:"image"`
}

// namespaceRE is a Kubernetes namespace's name: a DNS label.
var namespaceRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// checkTarget fills the defaults of an environment's (or, env "", the
// previews') target and kube: block, and checks them; key is where they
// are in the configuration.
func (c *Config) checkTarget(key, env string, target *string, kc **KubeConfig) []string {
	var errs []string
	who := ""
	if env != "" {
		who = "environment " + env + ": "
	}
	// Each message starts with its key, where configError places it.
	bad := func(sub, format string, args ...any) {
		errs = append(errs, key+sub+": "+who+fmt.Sprintf(format, args...))
	}
	if *target == "" {
		*target = TargetEmbedded
	}
	switch *target {
	case TargetEmbedded:
		if *kc != nil {
			bad(".kube", "the target is embedded, which has no kube: block; say target: kube, or remove the block")
		}
		return errs
	case TargetKube:
	default:
		bad(".target", "unknown target %q (use embedded or kube)", *target)
		return errs
	}
	if *kc == nil {
		*kc = &KubeConfig{}
	}
	k := *kc
	if k.Kubeconfig != "" {
		k.Kubeconfig = c.path(k.Kubeconfig)
		if _, err := os.Stat(k.Kubeconfig); err != nil {
			bad(".kube.kubeconfig", "%v; give the path of the cluster's kubeconfig file, or leave it out for $KUBECONFIG or ~/.kube/config", err)
		}
	}
	if k.Namespace == "" && env != "" {
		k.Namespace = "ferry-" + env
	}
	if env == "" && k.Namespace != "" {
		// why: one environment per namespace (the kube target claims it),
		// so a namespace for every preview would serve only the first.
		bad(".kube.namespace", "previews each get a namespace of their own, ferry-pr-<n>-<source>; remove namespace: from previews.kube")
	}
	if k.Namespace != "" && env != "" && !namespaceRE.MatchString(k.Namespace) {
		bad(".kube.namespace", "%q is not a namespace's name; use at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit", k.Namespace)
	}
	if k.Gateway != "" {
		ns, name, ok := strings.Cut(k.Gateway, "/")
		if !ok || !namespaceRE.MatchString(ns) || !namespaceRE.MatchString(name) {
			bad(".kube.gateway", "%q: give the Gateway as NAMESPACE/NAME", k.Gateway)
		}
	}
	if k.Gateway != "" && k.IngressClass != "" {
		bad(".kube.ingressClass", "give gateway (HTTPRoutes) or ingressClass (Ingresses), not both")
	}
	if k.Image != "" && !strings.Contains(k.Image, "@sha256:") {
		bad(".kube.image", "%q: give ferry's image pinned by digest (REPO@sha256:...), as ferry image push prints it", k.Image)
	}
	if k.GatewayURL != "" {
		u, err := url.Parse(strings.Replace(k.GatewayURL, "*", "x", 1))
		switch {
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			bad(".kube.gatewayURL", "%q: give the http:// or https:// URL where the cluster's Gateway serves the HTTPRoutes", k.GatewayURL)
		case env == "" && !strings.Contains(k.GatewayURL, "://*."):
			// why: the controller puts the URL's host on every route, so
			// previews sharing one host would answer each other's paths.
			bad(".kube.gatewayURL", "%q: previews need a host each; give a wildcard host, such as https://*.previews.example.com, and each preview answers at pr-<n>-<source>.previews.example.com", k.GatewayURL)
		case env != "" && strings.Contains(k.GatewayURL, "*"):
			bad(".kube.gatewayURL", "%q: a wildcard host is for previews; give this environment's own host", k.GatewayURL)
		}
	}
	return errs
}

// kubeFor is kc with what was left to the environment filled in: the
// kubeconfig ($KUBECONFIG, else ~/.kube/config) and the namespace
// (ferry-<env>, for a preview).
func kubeFor(env string, kc *KubeConfig) KubeConfig {
	var k KubeConfig
	if kc != nil {
		k = *kc
	}
	if k.Kubeconfig == "" {
		k.Kubeconfig = os.Getenv("KUBECONFIG")
	}
	if k.Kubeconfig == "" {
		if home, err := os.UserHomeDir(); err == nil {
			k.Kubeconfig = filepath.Join(home, ".kube", "config")
		}
	}
	if k.Namespace == "" {
		k.Namespace = "ferry-" + env
	}
	// A preview's host is the previews' wildcard host with its name.
	k.GatewayURL = strings.Replace(k.GatewayURL, "://*.", "://"+env+".", 1)
	return k
}
