package server

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"go.yaml.in/yaml/v3"

	"github.com/ferrycd/ferry/promote"
	"github.com/ferrycd/ferry/store"
)

// Config is ferry serve's configuration file.
type Config struct {
	// Listen serves the API and the webhooks; Gateway the functions, at
	// http://GATEWAY/<env>/<path>.
	Listen  string `yaml:"listen"`
	Gateway string `yaml:"gateway"`
	// DataDir holds the store, the mirrors, the registry, the build cache,
	// unpacked images and logs. Relative to the configuration file.
	DataDir string `yaml:"dataDir"`
	// Registry is "embedded" (a registry inside ferry, under the data
	// folder) or HOST/REPO, with credentials from the Docker config.
	Registry string `yaml:"registry"`
	// Insecure allows plain HTTP to Registry when it is not on loopback.
	Insecure bool `yaml:"insecure"`
	// RegistryListen is where the embedded registry listens. A fixed
	// address, because releases are recorded by reference
	// (HOST/REPO@sha256:…) and must still resolve after a restart.
	RegistryListen string `yaml:"registryListen"`
	// Bases are the base images per runtime (RUNTIME: IMAGE). Default:
	// scratch for python and nodejs while every environment is embedded,
	// which runs them with this machine's interpreters.
	Bases        map[string]string   `yaml:"bases"`
	Sources      []SourceConfig      `yaml:"sources"`
	Environments []EnvironmentConfig `yaml:"environments"`
	Tokens       []TokenConfig       `yaml:"tokens"`
	// Export, when set, commits every deployment to a Git repository.
	Export *ExportConfig `yaml:"export"`
	// Sandbox confines repository code (config_sandbox.go).
	Sandbox SandboxConfig `yaml:"sandbox"`

	// dir is the folder of the configuration file.
	dir string
}

// SourceConfig is a source in the configuration file. Secrets may be
// written as $VAR or ${VAR}, read from ferry's environment, so the file
// can be committed without them.
type SourceConfig struct {
	Name          string `yaml:"name"`
	URL           string `yaml:"url"`
	Branch        string `yaml:"branch"`
	Interval      string `yaml:"interval"`
	WebhookSecret string `yaml:"webhookSecret"`
	Username      string `yaml:"username"`
	Password      string `yaml:"password"`
	SSHKeyFile    string `yaml:"sshKeyFile"`
}

// EnvironmentConfig is an environment in the configuration file.
type EnvironmentConfig struct {
	Name string `yaml:"name"`
	// Target is where it runs: "embedded" (the default).
	Target       string   `yaml:"target"`
	NATSURL      string   `yaml:"natsURL"`
	KafkaBrokers []string `yaml:"kafkaBrokers"`
	// Freeze windows refuse promotions on a schedule.
	Freeze []FreezeConfig `yaml:"freeze"`
}

// FreezeConfig is a recurring deny window: from each time Schedule (cron,
// five fields) fires, in TimeZone (default UTC), for Duration.
type FreezeConfig struct {
	Schedule string `yaml:"schedule"`
	Duration string `yaml:"duration"`
	TimeZone string `yaml:"timeZone"`
	Reason   string `yaml:"reason"`
}

// ExportConfig commits every deployment's release to a Git repository,
// for Flux or Argo CD to watch.
type ExportConfig struct {
	URL        string `yaml:"url"`
	Branch     string `yaml:"branch"`
	Path       string `yaml:"path"` // default environments/{env}/ferry.yaml
	Username   string `yaml:"username"`
	Password   string `yaml:"password"`
	SSHKeyFile string `yaml:"sshKeyFile"`
}

// TokenConfig is an API token.
type TokenConfig struct {
	Name  string   `yaml:"name"`
	Token string   `yaml:"token"`
	Roles []string `yaml:"roles"`
	// Email is the address this person commits with: an approval by a
	// commit's author is a self-approval.
	Email string `yaml:"email"`
	// Groups are the approver groups ("group:<name>" in a policy) the
	// token belongs to.
	Groups []string `yaml:"groups"`
}

// LoadConfig reads and checks a configuration file. Every problem is
// reported at once, each naming its key.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the configuration: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	return ParseConfig(data, filepath.Dir(abs), path)
}

// ParseConfig checks a configuration read from name in folder dir.
func ParseConfig(data []byte, dir, name string) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	c.dir = dir
	if errs := c.check(); len(errs) > 0 {
		return nil, fmt.Errorf("%s:\n  %s", name, strings.Join(errs, "\n  "))
	}
	return &c, nil
}

// check fills defaults and returns what is wrong.
func (c *Config) check() []string {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8080"
	}
	if c.Gateway == "" {
		c.Gateway = "127.0.0.1:8081"
	}
	for key, addr := range map[string]string{"listen": c.Listen, "gateway": c.Gateway} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			bad("%s: %q is not HOST:PORT", key, addr)
		}
	}
	if c.Listen == c.Gateway {
		bad("listen and gateway are both %s; give each its own port", c.Listen)
	}
	errs = append(errs, c.checkSandbox()...)
	if c.DataDir == "" {
		c.DataDir = ".ferry-data"
	}
	if !filepath.IsAbs(c.DataDir) {
		c.DataDir = filepath.Join(c.dir, c.DataDir)
	}
	if c.Registry == "" {
		c.Registry = "embedded"
	}
	if c.RegistryListen == "" {
		c.RegistryListen = "127.0.0.1:8082"
	}
	if c.Registry == "embedded" {
		if _, _, err := net.SplitHostPort(c.RegistryListen); err != nil {
			bad("registryListen: %q is not HOST:PORT", c.RegistryListen)
		}
		if c.RegistryListen == c.Listen || c.RegistryListen == c.Gateway {
			bad("registryListen %s is also listen or gateway; give it its own port", c.RegistryListen)
		}
	}
	if c.Registry != "embedded" && !strings.Contains(c.Registry, "/") {
		bad("registry: %q is neither embedded nor HOST/REPO", c.Registry)
	}

	names := map[string]bool{}
	for i := range c.Sources {
		s := &c.Sources[i]
		if names[s.Name] {
			bad("sources[%d]: a second source named %s", i, s.Name)
		}
		names[s.Name] = true
		if s.URL != "" && !strings.Contains(s.URL, "://") && !strings.Contains(s.URL, "@") && !filepath.IsAbs(s.URL) {
			// why: a relative path means relative to the file, not to
			// wherever ferry happens to be started.
			s.URL = filepath.Join(c.dir, s.URL)
		}
		if _, err := c.source(*s); err != nil {
			bad("sources[%d]: %v", i, err)
		}
	}

	if len(c.Environments) == 0 {
		c.Environments = []EnvironmentConfig{{Name: "dev"}, {Name: "staging"}, {Name: "prod"}}
	}
	envs := map[string]bool{}
	for i := range c.Environments {
		e := &c.Environments[i]
		if !validName(e.Name) {
			bad("environments[%d]: name %q: use lower-case letters, digits and '-', starting with a letter", i, e.Name)
		}
		if envs[e.Name] {
			bad("environments[%d]: a second environment named %s", i, e.Name)
		}
		envs[e.Name] = true
		if e.Target == "" {
			e.Target = "embedded"
		}
		if e.Target != "embedded" {
			bad("environments[%d] (%s): target %q: only embedded exists in this version", i, e.Name, e.Target)
		}
		for j, f := range e.Freeze {
			if _, err := freezeWindow(f); err != nil {
				bad("environments[%d] (%s): freeze[%d]: %v", i, e.Name, j, err)
			}
		}
	}

	seen := map[string]bool{}
	for i, t := range c.Tokens {
		if seen[t.Name] {
			bad("tokens[%d]: a second token named %s", i, t.Name)
		}
		seen[t.Name] = true
		if len(t.Roles) == 0 {
			bad("tokens[%d] (%s): give it roles (viewer, deployer, approver, admin)", i, t.Name)
		}
		for _, r := range t.Roles {
			if _, err := ParseRole(r); err != nil {
				bad("tokens[%d] (%s): %v", i, t.Name, err)
			}
		}
	}
	if _, err := newTokens(c.tokens()); err != nil {
		bad("tokens: %v", err)
	}
	if c.Export != nil {
		if c.Export.URL == "" {
			bad("export: url is required (the repository Flux or Argo CD watch)")
		}
		if !strings.Contains(c.Export.URL, "://") && !strings.Contains(c.Export.URL, "@") && !filepath.IsAbs(c.Export.URL) {
			c.Export.URL = filepath.Join(c.dir, c.Export.URL)
		}
		if _, err := expand(c.Export.Password); err != nil {
			bad("export: password: %v", err)
		}
	}
	return errs
}

// expand reads $VAR and ${VAR} from the environment; a value naming a
// variable that is not set is an error rather than an empty secret.
func expand(v string) (string, error) {
	var missing []string
	out := os.Expand(v, func(name string) string {
		val, ok := os.LookupEnv(name)
		if !ok {
			missing = append(missing, name)
		}
		return val
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("$%s is not set in ferry's environment", missing[0])
	}
	return out, nil
}

// source turns a configured source into the store's record.
func (c *Config) source(s SourceConfig) (store.Source, error) {
	secret, err := expand(s.WebhookSecret)
	if err != nil {
		return store.Source{}, fmt.Errorf("%s: webhookSecret: %w", s.Name, err)
	}
	password, err := expand(s.Password)
	if err != nil {
		return store.Source{}, fmt.Errorf("%s: password: %w", s.Name, err)
	}
	var key string
	if s.SSHKeyFile != "" {
		p := s.SSHKeyFile
		if !filepath.IsAbs(p) {
			p = filepath.Join(c.dir, p)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return store.Source{}, fmt.Errorf("%s: sshKeyFile: %w", s.Name, err)
		}
		key = string(b)
	}
	src, err := SourceFromRequest(SourceRequest{Name: s.Name, URL: s.URL, Branch: s.Branch, Interval: s.Interval,
		WebhookSecret: secret, Username: s.Username, Password: password, SSHKey: key})
	if err != nil {
		return src, err
	}
	src.FromConfig = true
	return src, nil
}

// tokens are the configured tokens, secrets expanded.
func (c *Config) tokens() []Token {
	var out []Token
	for _, t := range c.Tokens {
		secret, err := expand(t.Token)
		if err != nil {
			secret = "" // check reports it through newTokens' length rule
		}
		var roles []Role
		for _, r := range t.Roles {
			roles = append(roles, Role(r))
		}
		out = append(out, Token{Name: t.Name, Secret: secret, Roles: roles, Email: t.Email, Groups: t.Groups})
	}
	return out
}

// freezeWindow checks a configured freeze window.
func freezeWindow(f FreezeConfig) (promote.FreezeWindow, error) {
	w := promote.FreezeWindow{Schedule: f.Schedule, TimeZone: f.TimeZone, Reason: f.Reason}
	if _, err := cron.ParseStandard(f.Schedule); err != nil {
		return w, fmt.Errorf("schedule %q: %v (five fields: minute hour day-of-month month day-of-week)", f.Schedule, err)
	}
	d, err := time.ParseDuration(f.Duration)
	if err != nil || d <= 0 {
		return w, fmt.Errorf("duration %q: give how long each window lasts, e.g. 64h", f.Duration)
	}
	w.Duration = d
	if f.TimeZone != "" {
		if _, err := time.LoadLocation(f.TimeZone); err != nil {
			return w, fmt.Errorf("timeZone %q: %v", f.TimeZone, err)
		}
	}
	if w.Reason == "" {
		w.Reason = "freeze window " + f.Schedule + " for " + f.Duration
	}
	return w, nil
}

// promoteEnvironments are the environments as the promoter sees them.
func (c *Config) promoteEnvironments() []promote.Environment {
	var out []promote.Environment
	for _, e := range c.Environments {
		pe := promote.Environment{Name: e.Name}
		for _, f := range e.Freeze {
			w, _ := freezeWindow(f) // checked at load
			pe.Freeze = append(pe.Freeze, w)
		}
		out = append(out, pe)
	}
	return out
}

// groups maps each approver group to the tokens in it.
func (c *Config) groups() map[string][]string {
	g := map[string][]string{}
	for _, t := range c.Tokens {
		for _, name := range t.Groups {
			g[name] = append(g[name], t.Name)
		}
	}
	return g
}
