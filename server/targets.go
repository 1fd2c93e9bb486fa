package server

import (
	"context"
	"fmt"
	"sync"

	"github.com/ferrycd/ferry/environments"
	"github.com/ferrycd/ferry/environments/embedded"
	"github.com/ferrycd/ferry/manifests/v1alpha1"
)

// KubeTargetOptions is what ferry serve gives a kube target besides its
// KubeConfig.
type KubeTargetOptions struct {
	// EnvValues is a function's env in the environment: its spec.env
	// with the configuration's env: overrides, secrets still by name.
	EnvValues func(f *v1alpha1.Function) map[string]v1alpha1.EnvValue
	// Secret reads one of the environment's sealed secrets.
	Secret func(ctx context.Context, name string) (string, error)
	// Untrusted marks a preview: it runs a pull request's code.
	Untrusted bool
	// NATSURL and KafkaBrokers are where its NATS and Kafka triggers
	// connect.
	NATSURL      string
	KafkaBrokers []string
	Log          func(format string, args ...any)
}

// newKubeTarget makes the target of a target: kube environment, with k's
// defaults filled in (kubeFor): makeKubeTarget, a variable so that the
// factory's tests can count what it makes without a cluster.
var newKubeTarget = makeKubeTarget

// targetSpec is what makes one environment's target: the configuration's
// target: and the settings of that kind.
type targetSpec struct {
	kind         string // TargetEmbedded or TargetKube
	kube         *KubeConfig
	natsURL      string
	kafkaBrokers []string
	// untrusted marks a preview (embedded.EnvironmentConfig.Untrusted).
	untrusted bool
}

// targets is the target factory: it makes each environment's target by
// its kind, once, and keeps it. The embedded ones live in the host, which
// also serves their gateway; the others here.
type targets struct {
	host     *embedded.Host
	settings *envSettings
	log      func(format string, args ...any)

	mu     sync.Mutex
	others map[string]environments.Target
}

func newTargets(host *embedded.Host, settings *envSettings, logf func(string, ...any)) *targets {
	return &targets{host: host, settings: settings, log: logf, others: map[string]environments.Target{}}
}

// get is env's target, made the first time it is asked for (spec is then
// ignored, as embedded.Host.Target does).
func (f *targets) get(env string, spec targetSpec) (environments.Target, error) {
	switch spec.kind {
	case "", TargetEmbedded:
		return f.host.Target(env, embedded.EnvironmentConfig{NATSURL: spec.natsURL, KafkaBrokers: spec.kafkaBrokers,
			Env: f.settings.resolver(env), Untrusted: spec.untrusted})
	case TargetKube:
		f.mu.Lock()
		defer f.mu.Unlock()
		if t := f.others[env]; t != nil {
			return t, nil
		}
		t, err := newKubeTarget(env, kubeFor(env, spec.kube), KubeTargetOptions{
			EnvValues: func(fn *v1alpha1.Function) map[string]v1alpha1.EnvValue {
				return f.settings.values(env, fn)
			},
			Secret: func(ctx context.Context, name string) (string, error) {
				return f.settings.secret(ctx, env, name)
			},
			Untrusted: spec.untrusted, NATSURL: spec.natsURL, KafkaBrokers: spec.kafkaBrokers, Log: f.log,
		})
		if err != nil {
			return nil, fmt.Errorf("target kube: %w", err)
		}
		f.others[env] = t
		return t, nil
	}
	return nil, fmt.Errorf("unknown target %q (use embedded or kube)", spec.kind)
}

// remote says env's target runs elsewhere than in this process (kube),
// once it has been made.
func (f *targets) remote(env string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.others[env]
	return ok
}

// remove stops what env runs and forgets its target, saying why to
// whoever calls an embedded one's URLs from then on.
func (f *targets) remove(ctx context.Context, env, why string) error {
	f.mu.Lock()
	t := f.others[env]
	delete(f.others, env)
	f.mu.Unlock()
	if t != nil {
		return t.Delete(ctx)
	}
	return f.host.Remove(ctx, env, why)
}

// reloader is a target that applies its live release again in place, its
// variables and secrets read anew (embedded.Target); a target without it
// gets its live release applied again.
type reloader interface {
	Reload(ctx context.Context) error
}

// functionLogs is a target whose functions' logs and invoke route ferry
// serves itself (embedded.Target): the API's logs and invoke go through it.
type functionLogs interface {
	Logs(function string, q embedded.LogQuery) ([]embedded.LogLine, error)
	FollowLogs(function string, q embedded.LogQuery) ([]embedded.LogLine, *embedded.LogFollower, error)
	InvokeURL(function, method, path string) (string, error)
}

var (
	_ reloader     = (*embedded.Target)(nil)
	_ functionLogs = (*embedded.Target)(nil)
)
