package server

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/ferrycd/ferry/build"
	"github.com/ferrycd/ferry/environments"
	"github.com/ferrycd/ferry/environments/embedded"
	"github.com/ferrycd/ferry/internal/seal"
	"github.com/ferrycd/ferry/manifests"
	"github.com/ferrycd/ferry/manifests/v1alpha1"
	"github.com/ferrycd/ferry/store"
)

// The secrets of environments (ferry secrets set ENV NAME), and what a
// function's process starts with in an environment.
//
// A secret's value is sealed before it reaches the store (seal.Box, with the
// environment and name as associated data, so a sealed value moved to
// another row does not open) and opened only when a function's process
// starts. Releases, the GitOps export, API answers, logs and errors carry the
// name, never the value.
//
// Setting a secret re-applies the environment's live release: the functions
// whose variables changed start again with the new value (healthy before
// they replace the running ones), the others keep running. A user who sets
// a secret expects it in effect, and Kubernetes's way (nothing happens
// until the next rollout) is a known trap; so ferry does the restart, and
// says which environment it reloaded.

// EnvSecretManager keeps the environments' secrets, for the API.
type EnvSecretManager interface {
	// Set seals and stores value as the secret name of env and reloads the
	// environment's functions; replaced says whether it existed.
	Set(ctx context.Context, env, name, value string) (sec store.EnvSecret, replaced bool, reload error, err error)
	// List returns env's secrets, names and times only.
	List(ctx context.Context, env string) ([]store.EnvSecret, error)
	// Delete forgets a secret. Running functions keep the value they
	// started with until the environment's next deploy.
	Delete(ctx context.Context, env, name string) error
}

// ErrUnknownEnvironment is wrapped by the errors about an environment that
// is not in the configuration; the API answers 404.
var ErrUnknownEnvironment = errors.New("no such environment")

// envSettings implements EnvSecretManager and resolves functions'
// variables per environment.
type envSettings struct {
	cfg   *Config
	store store.EnvSecrets
	box   *seal.Box
	// reload re-applies env's live release (set once the targets exist).
	reload func(ctx context.Context, env string) error
}

var _ EnvSecretManager = (*envSettings)(nil)

// secretWhere names a secret for the seal's associated data.
func secretWhere(env, name string) string { return "env/" + env + "/secret/" + name }

func (s *envSettings) known(env string) error {
	for _, e := range s.cfg.Environments {
		if e.Name == env {
			return nil
		}
	}
	names := make([]string, 0, len(s.cfg.Environments))
	for _, e := range s.cfg.Environments {
		names = append(names, e.Name)
	}
	return fmt.Errorf("environment %q: %w; the environments are %s", env, ErrUnknownEnvironment, strings.Join(names, ", "))
}

func (s *envSettings) Set(ctx context.Context, env, name, value string) (store.EnvSecret, bool, error, error) {
	if err := s.known(env); err != nil {
		return store.EnvSecret{}, false, nil, err
	}
	if p := manifests.SecretNameProblem(name); p != "" {
		return store.EnvSecret{}, false, nil, badRequest("%s", p)
	}
	sec := store.EnvSecret{Environment: env, Name: name, Value: s.box.Seal(value, secretWhere(env, name)), Updated: time.Now()}
	replaced, err := s.store.PutEnvSecret(ctx, sec)
	if err != nil {
		return store.EnvSecret{}, false, nil, err
	}
	stored, err := s.store.GetEnvSecret(ctx, env, name)
	if err != nil {
		return store.EnvSecret{}, false, nil, err
	}
	stored.Value = ""
	var reload error
	if s.reload != nil {
		reload = s.reload(ctx, env)
	}
	return stored, replaced, reload, nil
}

func (s *envSettings) List(ctx context.Context, env string) ([]store.EnvSecret, error) {
	if err := s.known(env); err != nil {
		return nil, err
	}
	return s.store.ListEnvSecrets(ctx, env)
}

func (s *envSettings) Delete(ctx context.Context, env, name string) error {
	if err := s.known(env); err != nil {
		return err
	}
	if p := manifests.SecretNameProblem(name); p != "" {
		return badRequest("%s", p)
	}
	return s.store.DeleteEnvSecret(ctx, env, name)
}

// secret opens the value of env's secret name.
func (s *envSettings) secret(ctx context.Context, env, name string) (string, error) {
	sec, err := s.store.GetEnvSecret(ctx, env, name)
	if err != nil {
		return "", err
	}
	plain, err := s.box.Open(sec.Value, secretWhere(env, name))
	if err != nil {
		return "", fmt.Errorf("secret %s of environment %s does not open with this ferry's key (was the key changed?); set it again with: ferry secrets set %s %s: %w", name, env, env, name, err)
	}
	return plain, nil
}

// Env returns the variables function f starts with in env: its manifest's,
// then the environment's overrides, then the function's overrides, each
// secret reference replaced by the secret's value. Every missing secret is
// named in one error, with the command that sets it; no value is.
func (s *envSettings) Env(ctx context.Context, env string, f *v1alpha1.Function) (map[string]string, error) {
	vars, _, err := s.resolve(ctx, env, f)
	return vars, err
}

// resolve is Env, also returning the values that came from secrets.
func (s *envSettings) resolve(ctx context.Context, env string, f *v1alpha1.Function) (map[string]string, []string, error) {
	merged := s.values(env, f)

	out := make(map[string]string, len(merged))
	var secrets, missing []string
	for _, k := range slices.Sorted(maps.Keys(merged)) {
		v := merged[k]
		name := v.Secret()
		if name == "" {
			out[k] = v.Value
			continue
		}
		if _, _, ok := store.ParsePreviewName(env); ok {
			// why: a preview runs a pull request's code, which must not
			// read secrets; none is ever set in a preview.
			return nil, nil, fmt.Errorf("function %s in preview %s: env %s names secret %s, and a preview reads no secrets (it runs a pull request's code); give the variable a plain value under previews.env in ferry serve's configuration", f.Name, env, k, name)
		}
		plain, err := s.secret(ctx, env, name)
		switch {
		case errors.Is(err, store.ErrNotFound):
			missing = append(missing, fmt.Sprintf("%s (env %s)", name, k))
		case err != nil:
			return nil, nil, fmt.Errorf("function %s in environment %s: env %s: %w", f.Name, env, k, err)
		default:
			out[k] = plain
			secrets = append(secrets, plain)
		}
	}
	if len(missing) > 0 {
		cmds := make([]string, 0, len(missing))
		for _, m := range missing {
			name, _, _ := strings.Cut(m, " ")
			cmds = append(cmds, fmt.Sprintf("ferry secrets set %s %s", env, name))
		}
		noun, it := "secret", "it"
		if len(missing) > 1 {
			noun, it = "secrets", "them"
		}
		return nil, nil, fmt.Errorf("function %s in environment %s needs %s %s, not set in %s; set %s with: %s", f.Name, env, noun, strings.Join(missing, ", "), env, it, strings.Join(cmds, "; "))
	}
	return out, secrets, nil
}

// values is f's env in env: its spec.env, then the configuration's env:
// for every function of env, then for f, secrets left by name.
func (s *envSettings) values(env string, f *v1alpha1.Function) map[string]v1alpha1.EnvValue {
	all, perFn := s.cfg.envOverrides(env)
	merged := maps.Clone(f.Spec.Env)
	if merged == nil {
		merged = map[string]v1alpha1.EnvValue{}
	}
	maps.Copy(merged, all)
	maps.Copy(merged, perFn[f.Name].Env)
	return merged
}

// redact hides every secret of env in text (promote.Config.Redact). When
// the secrets cannot be read, text is replaced whole: it may hold one.
func (s *envSettings) redact(ctx context.Context, env, text string) string {
	l, err := s.store.ListEnvSecrets(ctx, env)
	if err != nil {
		return "(not shown: the secrets of " + env + " to hide in it could not be read)"
	}
	var values []string
	for _, sec := range l {
		v, err := s.secret(ctx, env, sec.Name)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				continue // deleted meanwhile
			}
			return "(not shown: the secrets of " + env + " to hide in it could not be read)"
		}
		values = append(values, v)
	}
	return embedded.RedactSecrets(text, values)
}

// resolver is Env bound to one environment, as its target asks.
func (s *envSettings) resolver(env string) embedded.EnvResolver {
	return func(ctx context.Context, f *v1alpha1.Function) (map[string]string, []string, error) {
		return s.resolve(ctx, env, f)
	}
}

// reloadEnvironment applies env's live release again after a secret
// changed. An environment that runs nothing although the store records a
// release (its start failed, for a secret that was missing then) gets that
// release applied, so setting the secret is all it takes to bring it back.
//
// A target that reloads in place (reloader) does so; another gets its
// live release applied again, which writes the variables anew.
func reloadEnvironment(ctx context.Context, st store.Store, env string, target func(string) (environments.Target, error), pull func(context.Context, string) (*build.Release, error)) error {
	t, err := target(env)
	if err != nil {
		return err
	}
	status, err := t.Status(ctx)
	if err != nil {
		return err
	}
	if r, ok := t.(reloader); ok && status.Release != "" {
		return r.Reload(ctx)
	}
	e, err := st.GetEnvironment(ctx, env)
	if err != nil || e.Release == "" {
		return nil // nothing deployed yet: the first deploy reads the secret
	}
	rel, err := st.GetRelease(ctx, e.Release)
	if err != nil {
		return err
	}
	br, err := pull(ctx, rel.Ref)
	if err != nil {
		return fmt.Errorf("environment %s: pulling its release %s: %w", env, store.Short(e.Release), err)
	}
	return t.Apply(ctx, br)
}
