package server

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/ferrycd/ferry/internal/gitauth"
	"github.com/ferrycd/ferry/manifests"
	"github.com/ferrycd/ferry/manifests/v1alpha1"
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
	// RegistryListen is where the embedded registry listens. It may
	// change between starts: releases are recorded by reference
	// (HOST/REPO@sha256:…), and those at an address the registry had
	// before are pulled from the new one (registry_move.go).
	RegistryListen string `yaml:"registryListen"`
	// Bases are the base images per runtime (RUNTIME: IMAGE). Default:
	// scratch for python and nodejs while every environment is embedded,
	// which runs them with this machine's interpreters.
	Bases        map[string]string   `yaml:"bases"`
	Sources      []SourceConfig      `yaml:"sources"`
	Environments []EnvironmentConfig `yaml:"environments"`
	Tokens       []TokenConfig       `yaml:"tokens"`
	// LocalRoots are the folders under which a source added through the
	// API may be a local path or file:// URL. None by default: the API
	// then refuses local repositories, which would let anyone with the
	// admin role make ferry read any folder it can. The configuration's
	// own sources may name any local path.
	LocalRoots []string `yaml:"localRoots"`
	// Export, when set, commits every deployment to a Git repository.
	Export *ExportConfig `yaml:"export"`
	// AllowedImages are registries and repositories (prefixes such as
	// registry.example.com/team/) whose images a rollback may deploy
	// although ferry did not build them; see config_images.go.
	AllowedImages []string `yaml:"allowedImages"`
	// Previews are pull requests' preview environments
	// (config_previews.go).
	Previews PreviewsConfig `yaml:"previews"`
	// Sandbox confines repository code (config_sandbox.go).
	Sandbox SandboxConfig `yaml:"sandbox"`
	// LogFormat is how ferry serve writes its log: text (for people, the
	// default) or json (one object a line, for log collectors).
	LogFormat string `yaml:"logFormat"`
	// RegistryTimeout bounds the wait for the registry's answer to each
	// request of a push or a pull (default 60s): a registry that accepts
	// and never answers fails the run's step instead of holding it.
	RegistryTimeout string `yaml:"registryTimeout"`
	// StoreRetry is how long a run retries a write the store refuses (a
	// full disk) before it stops, failed, as a Go duration (default 2m).
	StoreRetry string `yaml:"storeRetry"`
	// PublicURL is ferry's API as people reach it, for the links in
	// notifications (default http://LISTEN).
	PublicURL string `yaml:"publicURL"`
	// Notifications are webhooks and chats told of ferry's outcomes
	// (config_notify.go).
	Notifications []NotificationConfig `yaml:"notifications"`
	// GitHub, when set, tells GitHub what ferry did and hears approvals
	// from its comments (config_github.go).
	GitHub *GitHubConfig `yaml:"github"`

	// storeRetry is StoreRetry parsed; 0 for the default.
	storeRetry time.Duration
	// dir is the folder of the configuration file.
	dir string
	// registryTimeout is RegistryTimeout parsed; 0 when not given.
	registryTimeout time.Duration
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
	// Timeout bounds each fetch, connecting included (default 60s).
	Timeout string `yaml:"timeout"`
	// GitHub is the repository on GitHub (owner/name) ferry reports to;
	// default: the one URL names, when it is on GitHub.
	GitHub string `yaml:"github"`
}

// EnvironmentConfig is an environment in the configuration file.
type EnvironmentConfig struct {
	Name string `yaml:"name"`
	// Target is where it runs: "embedded" (the default) or "kube", with
	// Kube saying which cluster (config_kube.go).
	Target       string      `yaml:"target"`
	Kube         *KubeConfig `yaml:"kube"`
	NATSURL      string      `yaml:"natsURL"`
	KafkaBrokers []string    `yaml:"kafkaBrokers"`
	// Freeze windows refuse promotions on a schedule.
	Freeze []FreezeConfig `yaml:"freeze"`
	// Gates: the least policy of the environment, which a release's
	// Pipeline may tighten, never loosen (see config_gates.go).
	Approval *ApprovalGateConfig `yaml:"approval"`
	Auto     *bool               `yaml:"auto"`
	From     []string            `yaml:"from"`
	Verify   []map[string]any    `yaml:"verify"`
	Soak     string              `yaml:"soak"`
	// Env and Functions override functions' variables in this
	// environment (see config_env.go).
	Env       map[string]v1alpha1.EnvValue `yaml:"env"`
	Functions map[string]FunctionConfig    `yaml:"functions"`
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
// reported at once, each at its file:line:column (a manifests.ErrorList).
func LoadConfig(path string) (*Config, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("reading the configuration: %w", err)
	}
	if info.IsDir() {
		return nil, fmt.Errorf("the configuration %s is a folder; give the path of its YAML file", path)
	}
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

// ParseConfig checks a configuration read from name in folder dir. It
// decodes with the manifests' strict decoder, so a mistake reads as a
// manifest's does: where, what is wrong and what to do, every one at once.
func ParseConfig(data []byte, dir, name string) (*Config, error) {
	var c Config
	origin, err := manifests.DecodeStrict(name, data, &c)
	list := manifests.Errors(err)
	if err != nil && list == nil {
		return nil, err
	}
	for _, e := range list {
		// why: previews.enabled and previews.ttl are the repository's
		// Pipeline keys; an operator who looks for them here needs to hear
		// where they live, not only which keys this block takes.
		if (e.Field == "previews.enabled" || e.Field == "previews.ttl") && strings.HasPrefix(e.Message, "unknown key") {
			e.Message = "unknown key; a repository turns its previews on in its Pipeline (kind: Pipeline, spec.previews: {enabled: true, ttl: 72h}), not here; " +
				strings.TrimPrefix(strings.TrimPrefix(e.Message, "unknown key"), "; ")
		}
	}
	c.dir = dir
	for _, msg := range c.check() {
		if e := configError(origin, msg); e != nil {
			list = append(list, e)
		}
	}
	if len(list) > 0 {
		errs := manifests.ErrorList(list)
		errs.Sort()
		return nil, errs
	}
	return &c, nil
}

// keyPathRE is the key a check's message starts with: "sources[1]",
// "environments[0].freeze[2]", "export".
var keyPathRE = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9]*(\[[0-9]+\]|\.[a-zA-Z][a-zA-Z0-9]*)*`)

// configError places a check's message at the key it starts with, so the
// checks stay plain strings ("sources[1]: a second source named demo").
// It returns nil for a key the decoder already reported.
func configError(origin *manifests.Origin, msg string) *manifests.Error {
	key := keyPathRE.FindString(msg)
	if key == "" {
		return &manifests.Error{Pos: origin.Pos, Message: msg}
	}
	if origin.Reported(key) {
		return nil
	}
	e := &manifests.Error{Pos: origin.At(key), Message: msg}
	if rest, ok := strings.CutPrefix(msg[len(key):], ": "); ok {
		e.Field, e.Message = key, rest
	}
	return e
}

// check fills defaults and returns what is wrong, each message starting
// with the key it is about. It is a list of checks, one a line.
func (c *Config) check() []string {
	var errs []string
	errs = append(errs, c.checkAddresses()...)
	errs = append(errs, c.checkLocalRoots()...)
	errs = append(errs, c.checkSources()...)
	errs = append(errs, c.checkEnvironments()...)
	errs = append(errs, c.checkGates()...)
	errs = append(errs, c.checkTokens()...)
	errs = append(errs, c.checkExport()...)
	errs = append(errs, c.checkAllowedImages()...)
	errs = append(errs, c.checkSandbox()...)
	errs = append(errs, c.checkEnvOverrides()...)
	errs = append(errs, c.checkPreviews()...)
	errs = append(errs, c.checkLogFormat()...)
	errs = append(errs, c.checkStoreRetry()...)
	errs = append(errs, c.checkNotifications()...)
	errs = append(errs, c.checkGitHub()...)
	return errs
}

func (c *Config) checkStoreRetry() []string {
	if c.StoreRetry == "" {
		return nil
	}
	d, err := time.ParseDuration(c.StoreRetry)
	if err != nil || d <= 0 {
		return []string{fmt.Sprintf("storeRetry: %q is not a positive duration; give one such as 2m", c.StoreRetry)}
	}
	c.storeRetry = d
	return nil
}

func (c *Config) checkLogFormat() []string {
	if c.LogFormat == "" {
		c.LogFormat = LogText
	}
	if !slices.Contains(LogFormats, c.LogFormat) {
		return []string{fmt.Sprintf("logFormat: %q is not a log format; give one of %s", c.LogFormat, strings.Join(LogFormats, ", "))}
	}
	return nil
}

func (c *Config) checkAddresses() []string {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8080"
	}
	if c.Gateway == "" {
		c.Gateway = "127.0.0.1:8081"
	}
	for _, a := range []struct{ key, addr string }{{"listen", c.Listen}, {"gateway", c.Gateway}} {
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			bad("%s: %q is not HOST:PORT", a.key, a.addr)
		}
	}
	if c.Listen == c.Gateway {
		bad("gateway: listen and gateway are both %s; give each its own port", c.Listen)
	}
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
			bad("registryListen: %s is also listen or gateway; give it its own port", c.RegistryListen)
		}
	}
	if c.RegistryTimeout != "" {
		d, err := time.ParseDuration(c.RegistryTimeout)
		if err != nil || d < 100*time.Millisecond {
			bad("registryTimeout: %q: give a duration such as 60s", c.RegistryTimeout)
		} else {
			c.registryTimeout = d
		}
	}
	if c.Registry != "embedded" && !strings.Contains(c.Registry, "/") {
		bad("registry: %q is neither embedded nor HOST/REPO", c.Registry)
	}
	return errs
}

// checkLocalRoots makes each local root absolute (against the file's
// folder) with its symlinks resolved, so that a path is compared with the
// folder it really is.
func (c *Config) checkLocalRoots() []string {
	var errs []string
	for i, r := range c.LocalRoots {
		if r == "" {
			errs = append(errs, fmt.Sprintf("localRoots[%d]: empty; give a folder the API may name local repositories under", i))
			continue
		}
		p := c.path(r)
		real, err := filepath.EvalSymlinks(p)
		if err == nil {
			var info os.FileInfo
			if info, err = os.Stat(real); err == nil && !info.IsDir() {
				err = errors.New("not a folder")
			}
		}
		if err != nil {
			errs = append(errs, fmt.Sprintf("localRoots[%d]: %s: %v; give an existing folder", i, p, err))
			continue
		}
		c.LocalRoots[i] = real
	}
	return errs
}

func (c *Config) checkSources() []string {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	names := map[string]bool{}
	for i := range c.Sources {
		s := &c.Sources[i]
		if names[s.Name] {
			bad("sources[%d]: a second source named %s", i, s.Name)
		}
		names[s.Name] = true
		s.URL = c.localURL(s.URL)
		for _, f := range []struct{ key, value string }{{"webhookSecret", s.WebhookSecret}, {"password", s.Password}} {
			if _, err := expand(f.value); err != nil {
				bad("sources[%d].%s: %v", i, f.key, err)
			}
		}
		if s.SSHKeyFile != "" {
			s.SSHKeyFile = c.path(s.SSHKeyFile)
			if f, err := os.Open(s.SSHKeyFile); err != nil {
				bad("sources[%d].sshKeyFile: %v", i, err)
			} else {
				f.Close()
			}
		}
		if _, err := c.source(*s); err != nil {
			bad("sources[%d]: %v", i, err)
			continue
		}
		// The URL and its credentials are checked here, not first by the
		// watcher, so a mistake is reported with the rest and nothing is
		// stored.
		if err := c.checkRemote(*s); err != nil {
			bad("sources[%d].url: %v", i, err)
		}
	}
	return errs
}

// checkRemote checks a configured source's URL against its credentials,
// with the secrets' values read now (they are not kept).
func (c *Config) checkRemote(s SourceConfig) error {
	password, err := expand(s.Password)
	if err != nil {
		return nil // reported as sources[i].password
	}
	creds := gitauth.Credentials{Username: s.Username, Password: password}
	if s.SSHKeyFile != "" {
		b, err := os.ReadFile(s.SSHKeyFile)
		if err != nil {
			return nil // reported as sources[i].sshKeyFile
		}
		creds.SSHKey = string(b)
	}
	_, err = gitauth.Check(s.URL, creds, gitauth.Use{Holder: "the source"})
	return err
}

func (c *Config) checkEnvironments() []string {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if len(c.Environments) == 0 {
		c.Environments = []EnvironmentConfig{{Name: "dev"}, {Name: "staging"}, {Name: "prod"}}
	}
	envs := map[string]bool{}
	for i := range c.Environments {
		e := &c.Environments[i]
		if !validName(e.Name) {
			bad("environments[%d].name: %q: use lower-case letters, digits and '-', starting with a letter", i, e.Name)
		}
		if envs[e.Name] {
			bad("environments[%d]: a second environment named %s", i, e.Name)
		}
		envs[e.Name] = true
		errs = append(errs, c.checkTarget(fmt.Sprintf("environments[%d]", i), e.Name, &e.Target, &e.Kube)...)
		for j, f := range e.Freeze {
			if _, err := freezeWindow(f); err != nil {
				bad("environments[%d].freeze[%d]: environment %s: %v", i, j, e.Name, err)
			}
		}
	}
	return errs
}

func (c *Config) checkTokens() []string {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	seen, secrets := map[string]bool{}, map[string]bool{}
	for i, t := range c.Tokens {
		if seen[t.Name] {
			bad("tokens[%d]: a second token named %s", i, t.Name)
		}
		seen[t.Name] = true
		if len(t.Roles) == 0 {
			bad("tokens[%d].roles: token %s has none; give it roles (viewer, deployer, approver, admin)", i, t.Name)
		}
		for _, r := range t.Roles {
			if _, err := ParseRole(r); err != nil {
				bad("tokens[%d].roles: token %s: %v", i, t.Name, err)
			}
		}
		secret, err := expand(t.Token)
		switch {
		case err != nil:
			bad("tokens[%d].token: %v", i, err)
		case len(secret) < 16:
			bad("tokens[%d].token: token %s needs a secret of at least 16 characters (e.g. `openssl rand -hex 24`)", i, t.Name)
		case secrets[secret]:
			bad("tokens[%d].token: token %s has another token's secret; give each token its own", i, t.Name)
		}
		secrets[secret] = true
	}
	if len(errs) == 0 {
		if _, err := newTokens(c.tokens()); err != nil {
			bad("tokens: %v", err)
		}
	}
	return errs
}

func (c *Config) checkExport() []string {
	if c.Export == nil {
		return nil
	}
	var errs []string
	if c.Export.URL == "" {
		errs = append(errs, "export: url is required (the repository Flux or Argo CD watch)")
	}
	c.Export.URL = c.localURL(c.Export.URL)
	if _, err := expand(c.Export.Password); err != nil {
		errs = append(errs, fmt.Sprintf("export.password: %v", err))
	}
	return errs
}

// path makes p absolute against the configuration file's folder: a
// relative path means relative to the file, not to wherever ferry happens
// to be started.
func (c *Config) path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.dir, p)
}

// localURL makes a local repository path absolute, with its symlinks
// resolved when it exists; URLs are left alone.
func (c *Config) localURL(u string) string {
	if u == "" || strings.Contains(u, "://") || (strings.Contains(u, "@") && strings.Contains(u, ":")) {
		return u
	}
	p := c.path(u)
	if real, err := filepath.EvalSymlinks(p); err == nil {
		return real
	}
	return p
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
		return "", fmt.Errorf("$%s is not set in ferry's environment; export it before ferry serve starts (or write the value itself)", missing[0])
	}
	return out, nil
}

// source turns a configured source into the store's record. Its secrets
// are not expanded: a $VAR stays a reference ("env:$VAR") that ferry reads
// when it needs the value, and an SSH key stays its file ("file:PATH"), so
// the store never holds them; a secret written out in the file is sealed
// before it is stored (see secrets.go).
func (c *Config) source(s SourceConfig) (store.Source, error) {
	var key string
	if s.SSHKeyFile != "" {
		key = fileRef + c.path(s.SSHKeyFile)
	}
	src, err := SourceFromRequest(SourceRequest{Name: s.Name, URL: s.URL, Branch: s.Branch, Interval: s.Interval, Timeout: s.Timeout,
		WebhookSecret: configSecret(s.WebhookSecret), Username: s.Username, Password: configSecret(s.Password), SSHKey: key})
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
