package server

import (
	"slices"
	"strings"
	"testing"
)

func TestPreviewsConfigDefaults(t *testing.T) {
	cfg, err := ParseConfig([]byte("listen: 127.0.0.1:8080\n"), "/srv", "ferry-serve.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Previews
	if cfg.maxPreviews() != 10 || p.Forks || p.Label != "ferry/preview" || len(p.Labelers) != 0 || p.Target != "embedded" {
		t.Errorf("defaults: max %d, %+v", cfg.maxPreviews(), p)
	}

	cfg, err = ParseConfig([]byte(`
previews:
  max: 3
  forks: true
  label: preview-me
  labelers: [octocat, mona-lisa]
  natsURL: nats://127.0.0.1:4222
  env: {LOG_LEVEL: debug}
  functions:
    hello: {env: {GREETING: hi}}
`), "/srv", "ferry-serve.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p = cfg.Previews
	if cfg.maxPreviews() != 3 || !p.Forks || p.Label != "preview-me" || !slices.Equal(p.Labelers, []string{"octocat", "mona-lisa"}) || p.NATSURL != "nats://127.0.0.1:4222" {
		t.Errorf("given: %+v", p)
	}
	// A preview's variables are the previews: block's; a configured
	// environment's stay its own.
	all, per := cfg.envOverrides("pr-7-demo")
	if all["LOG_LEVEL"].Value != "debug" || per["hello"].Env["GREETING"].Value != "hi" {
		t.Errorf("a preview's overrides: %v %v", all, per)
	}
	if all, _ := cfg.envOverrides("dev"); all != nil {
		t.Errorf("dev has the previews' overrides: %v", all)
	}
}

func TestPreviewsConfigErrors(t *testing.T) {
	_, err := ParseConfig([]byte(`environments:
- {name: dev}
- {name: pr-1-demo}
previews:
  max: 0
  label: "a label far longer than the fifty characters GitHub allows"
  labelers: [octocat, "-bad-", "two words"]
  target: kubernetes
  env:
    TOKEN: {valueFrom: {secret: github-token}}
  functions:
    Hello: {env: {A: b}}
  approval: {required: 1}
`), "/srv", "ferry-serve.yaml")
	if err == nil {
		t.Fatal("a configuration full of mistakes in previews: loaded")
	}
	for _, want := range []string{
		"ferry-serve.yaml:5:8: previews.max: 0: give how many previews may run at once, at least 1 (default 10)",
		`previews.label: "a label far longer than the fifty characters GitHub allows" is longer than GitHub's 50 characters`,
		`previews.labelers[1]: "-bad-" is not a GitHub login`,
		`previews.labelers[2]: "two words" is not a GitHub login`,
		`previews.target: unknown target "kubernetes" (use embedded or kube)`,
		"previews.env: TOKEN: a preview runs a pull request's code, which must not read secrets; give a plain value",
		`previews.functions: "Hello" is not a function name`,
		"environments[1].name: pr-1-demo is how the preview of pull request 1 of source demo is named (pr-N-SOURCE); give the environment another name",
		// why: a preview has no gates; the strict decoder says so by
		// naming the keys allowed.
		"previews.approval: unknown key",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the errors do not say %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "labelers[0]") {
		t.Errorf("octocat is refused:\n%v", err)
	}
}

// TestPreviewsConfigPipelineKeys: previews.enabled in the configuration
// says that the repository's Pipeline turns previews on.
func TestPreviewsConfigPipelineKeys(t *testing.T) {
	_, err := ParseConfig([]byte("previews: {enabled: true, ttl: 1h}\n"), "/srv", "ferry-serve.yaml")
	if err == nil {
		t.Fatal("previews.enabled in the configuration was taken")
	}
	for _, want := range []string{
		"ferry-serve.yaml:1:12: previews.enabled: unknown key; a repository turns its previews on in its Pipeline",
		"previews.ttl: unknown key; a repository turns its previews on in its Pipeline",
		"the keys allowed in previews are max,",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}
