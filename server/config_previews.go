package server

import (
	"fmt"
	"maps"
	"regexp"
	"slices"

	"github.com/ferrycd/ferry/manifests/v1alpha1"
	"github.com/ferrycd/ferry/store"
)

// PreviewsConfig is the operator's side of pull-request previews: how
// many may run, which pull requests are built, and where previews run.
// Whether a source has previews at all is its repository's Pipeline
// (previews.enabled, read at the source's branch head).
//
//	previews:
//	  max: 10                 # concurrent previews; the longest idle one is evicted
//	  forks: false            # build pull requests from forks without the label
//	  label: ferry/preview    # the label that lets a fork's pull request be built
//	  labelers: [octocat]     # who may add it (empty: anyone GitHub lets label)
//	  natsURL: nats://127.0.0.1:4222
//	  env: {LOG_LEVEL: debug}
//
// A preview has no gates: no approvals and no freeze windows (its run
// deploys it), and no environment's from: may name it (from: names
// configured environments only). Its variables are
// plain values: a preview runs a pull request's code, which must not read
// the operator's secrets.
type PreviewsConfig struct {
	// Max is how many previews may run at once (default 10, at least 1).
	Max *int `yaml:"max"`
	// Forks builds pull requests from forks without the label.
	Forks bool `yaml:"forks"`
	// Label lets a fork's pull request be built (default ferry/preview).
	Label string `yaml:"label"`
	// Labelers are the GitHub logins whose label counts; empty: anyone
	// GitHub lets add a label (which takes triage access).
	Labelers []string `yaml:"labelers"`
	// Target is where previews run: "embedded" (the default) or "kube",
	// with Kube saying which cluster; a preview's namespace defaults to
	// ferry-<preview>.
	Target       string      `yaml:"target"`
	Kube         *KubeConfig `yaml:"kube"`
	NATSURL      string      `yaml:"natsURL"`
	KafkaBrokers []string    `yaml:"kafkaBrokers"`
	// Env and Functions override functions' variables in every preview,
	// as an environment's do (config_env.go), plain values only.
	Env       map[string]v1alpha1.EnvValue `yaml:"env"`
	Functions map[string]FunctionConfig    `yaml:"functions"`
}

// Defaults of the previews: block.
const (
	DefaultMaxPreviews  = 10
	DefaultPreviewLabel = "ferry/preview"
)

// githubLoginRE is a GitHub login: letters, digits and single hyphens,
// not at either end, at most 39 characters.
var githubLoginRE = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9]|-[A-Za-z0-9]){0,38}$`)

// checkPreviews fills the previews' defaults and checks them.
func (c *Config) checkPreviews() []string {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	p := &c.Previews
	if p.Max == nil {
		p.Max = new(int)
		*p.Max = DefaultMaxPreviews
	}
	if *p.Max < 1 {
		bad("previews.max: %d: give how many previews may run at once, at least 1 (default %d)", *p.Max, DefaultMaxPreviews)
	}
	if p.Label == "" {
		p.Label = DefaultPreviewLabel
	}
	// why: GitHub's own limit on a label's name.
	if len([]rune(p.Label)) > 50 {
		bad("previews.label: %q is longer than GitHub's 50 characters; give a shorter label", p.Label)
	}
	for i, l := range p.Labelers {
		if !githubLoginRE.MatchString(l) {
			bad("previews.labelers[%d]: %q is not a GitHub login; give the user's login (letters, digits and '-')", i, l)
		}
	}
	errs = append(errs, c.checkTarget("previews", "", &p.Target, &p.Kube)...)
	errs = append(errs, checkEnvValues("previews.env", p.Env)...)
	errs = append(errs, noSecrets("previews.env", p.Env)...)
	for _, fn := range slices.Sorted(maps.Keys(p.Functions)) {
		if !validName(fn) {
			bad("previews.functions: %q is not a function name; use lower-case letters, digits and '-', as the Function's metadata.name", fn)
			continue
		}
		errs = append(errs, checkEnvValues("previews.functions", p.Functions[fn].Env)...)
		errs = append(errs, noSecrets("previews.functions", p.Functions[fn].Env)...)
	}
	for i, e := range c.Environments {
		// why: a configured environment named like a preview would be
		// taken for one (made, removed, listed as one).
		if source, n, ok := store.ParsePreviewName(e.Name); ok {
			bad("environments[%d].name: %s is how the preview of pull request %d of source %s is named (pr-N-SOURCE); give the environment another name", i, e.Name, n, source)
		}
	}
	return errs
}

// noSecrets refuses secret references in a preview's variables.
func noSecrets(key string, env map[string]v1alpha1.EnvValue) []string {
	var errs []string
	for _, name := range slices.Sorted(maps.Keys(env)) {
		if env[name].ValueFrom != nil {
			errs = append(errs, fmt.Sprintf("%s: %s: a preview runs a pull request's code, which must not read secrets; give a plain value", key, name))
		}
	}
	return errs
}

// maxPreviews is previews.max, filled in by check.
func (c *Config) maxPreviews() int {
	if c.Previews.Max == nil {
		return DefaultMaxPreviews
	}
	return *c.Previews.Max
}
