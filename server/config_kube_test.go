package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestKubeTargetConfig: target: kube with its kube: block, the defaults
// it gets, and what a mistaken one says.
func TestKubeTargetConfig(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "prod.kubeconfig"), []byte("apiVersion: v1\nkind: Config\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseConfig([]byte(`
environments:
- {name: dev}
- name: staging
  target: kube
- name: prod
  target: kube
  kube: {kubeconfig: prod.kubeconfig, context: prod-eu, namespace: shop-prod, gatewayURL: "https://fn.example.com", gateway: infra/public}
previews:
  target: kube
  kube: {context: previews, gatewayURL: "https://*.previews.example.com"}
`), dir, "ferry-serve.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dev, staging, prod := cfg.Environments[0], cfg.Environments[1], cfg.Environments[2]
	if dev.Target != TargetEmbedded || dev.Kube != nil {
		t.Errorf("dev: %+v, want embedded with no kube: block", dev)
	}
	if staging.Target != TargetKube || staging.Kube == nil || staging.Kube.Namespace != "ferry-staging" || staging.Kube.Kubeconfig != "" {
		t.Errorf("staging: %+v, want kube in namespace ferry-staging, the default kubeconfig", staging.Kube)
	}
	want := KubeConfig{Kubeconfig: filepath.Join(dir, "prod.kubeconfig"), Context: "prod-eu", Namespace: "shop-prod", GatewayURL: "https://fn.example.com", Gateway: "infra/public"}
	if prod.Target != TargetKube || prod.Kube == nil || *prod.Kube != want {
		t.Errorf("prod: %+v, want %+v", prod.Kube, want)
	}
	if p := cfg.Previews; p.Target != TargetKube || p.Kube == nil || p.Kube.Namespace != "" || p.Kube.Context != "previews" {
		t.Errorf("previews: %+v, want kube with the namespace left to each preview", p.Kube)
	}
	t.Setenv("KUBECONFIG", "/elsewhere/config")
	if k := kubeFor("pr-3-demo", cfg.Previews.Kube); k.Namespace != "ferry-pr-3-demo" || k.Kubeconfig != "/elsewhere/config" || k.Context != "previews" || k.GatewayURL != "https://pr-3-demo.previews.example.com" {
		t.Errorf("a preview's kube: %+v, want its own namespace and host", k)
	}
	if k := kubeFor("pr-4-demo", cfg.Previews.Kube); k.Namespace != "ferry-pr-4-demo" || k.GatewayURL != "https://pr-4-demo.previews.example.com" {
		t.Errorf("a second preview's kube: %+v, want a namespace and host apart from the first's", k)
	}

	// Previews cannot share one namespace or one host: the kube target
	// claims a namespace for one environment, and the controller puts the
	// host on every route.
	_, err = ParseConfig([]byte(`
environments:
- {name: prod, target: kube, kube: {gatewayURL: "https://*.example.com"}}
previews:
  target: kube
  kube: {namespace: previews, gatewayURL: "https://previews.example.com"}
`), dir, "ferry-serve.yaml")
	for _, want := range []string{
		`environments[0].kube.gatewayURL: environment prod: "https://*.example.com": a wildcard host is for previews`,
		`previews.kube.namespace: previews each get a namespace of their own`,
		`previews.kube.gatewayURL: "https://previews.example.com": previews need a host each; give a wildcard host`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q:\n%v", want, err)
		}
	}

	_, err = ParseConfig([]byte(`
environments:
- {name: dev, target: kubernetes}
- {name: qa, kube: {namespace: qa}}
- name: staging
  target: kube
  kube: {kubeconfig: missing.kubeconfig, namespace: Staging_NS, gatewayURL: "fn.example.com", gateway: "infra", ingressClass: nginx, image: "ferry:latest"}
previews:
  target: k8s
`), dir, "ferry-serve.yaml")
	if err == nil {
		t.Fatal("a configuration with mistaken targets loaded")
	}
	for _, want := range []string{
		`environments[0].target: environment dev: unknown target "kubernetes" (use embedded or kube)`,
		`environments[1].kube: environment qa: the target is embedded, which has no kube: block; say target: kube, or remove the block`,
		`environments[2].kube.kubeconfig: environment staging: stat ` + filepath.Join(dir, "missing.kubeconfig") + `: no such file or directory; give the path`,
		`environments[2].kube.namespace: environment staging: "Staging_NS" is not a namespace's name`,
		`environments[2].kube.gatewayURL: environment staging: "fn.example.com": give the http:// or https:// URL`,
		`environments[2].kube.gateway: environment staging: "infra": give the Gateway as NAMESPACE/NAME`,
		`environments[2].kube.ingressClass: environment staging: give gateway (HTTPRoutes) or ingressClass (Ingresses), not both`,
		`environments[2].kube.image: environment staging: "ferry:latest": give ferry's image pinned by digest`,
		`previews.target: unknown target "k8s" (use embedded or kube)`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q:\n%v", want, err)
		}
	}
}
