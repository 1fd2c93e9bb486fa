package embedded

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/ferrycd/ferry/build"
	"github.com/ferrycd/ferry/internal/sandbox"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Host runs several environments on one machine, as ferry serve does: one
// image cache (a digest is unpacked once, whichever environment asks), one
// gateway serving every environment at /<env>/<path>, and a Target per
// environment.
type Host struct {
	cfg    HostConfig
	images *images
	gw     *gateway

	mu      sync.Mutex
	targets map[string]*Target
	// known are the environments served: HostConfig.Environments, then
	// those made since (a preview), less those removed.
	known []string
}

// HostConfig wires a Host.
type HostConfig struct {
	// DataDir holds unpacked images (images/) and function logs
	// (logs/<env>/).
	DataDir string
	// GatewayURL is where the caller serves Handler (http://ADDR), for the
	// functions' URLs.
	GatewayURL string
	// IdleAfter overrides the scale-to-zero idle time (tests, benchmarks).
	IdleAfter time.Duration
	// Log hears what triggers report.
	Log func(format string, args ...any)
	// Sandbox runs every function. Nil: the sandbox when bubblewrap is
	// there and works (as ferry run has it), else none.
	Sandbox *sandbox.Sandbox
	// Environments are the environments the host serves from the start,
	// so that a trigger whose environments name none of them is reported;
	// Target adds one it makes, Remove takes it away.
	Environments []string
	// RegistryTimeout bounds the wait for each answer of the registry
	// when an image is pulled, and a stop in its middle (default
	// build.DefaultRegistryTimeout).
	RegistryTimeout time.Duration
}

// EnvironmentConfig is what differs between environments of one host.
type EnvironmentConfig struct {
	// NATSURL and KafkaBrokers are where the environment's NATS and Kafka
	// triggers connect; a release with such a trigger and none set is
	// refused.
	NATSURL      string
	KafkaBrokers []string
	// Env resolves each function's variables in the environment (nil:
	// plain values only).
	Env EnvResolver
	// Untrusted marks an environment that runs code no one vetted (a
	// pull request's preview): see Config.Untrusted.
	Untrusted bool
}

// NewHost returns a host serving no environment yet.
func NewHost(cfg HostConfig) (*Host, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("embedded: a host needs a data folder")
	}
	timeout := cfg.RegistryTimeout
	if timeout <= 0 {
		timeout = build.DefaultRegistryTimeout
	}
	imgs, err := newImages(filepath.Join(cfg.DataDir, "images"), remote.WithTransport(build.RegistryTransport(timeout)))
	if err != nil {
		return nil, err
	}
	if cfg.Sandbox == nil {
		if cfg.Sandbox, err = sandbox.Find(context.Background(), sandbox.ModeAuto, sandbox.NetworkNone); err != nil {
			return nil, err
		}
	}
	return &Host{cfg: cfg, images: imgs, gw: newGateway(), targets: map[string]*Target{}, known: slices.Clone(cfg.Environments)}, nil
}

// Handler is the gateway of every environment of the host.
func (h *Host) Handler() http.Handler { return h.gw }

// Target returns the target of environment env, made with ec the first
// time it is asked for; later calls return that one (ec is then ignored).
// Its error does not name env, which the caller knows.
func (h *Host) Target(env string, ec EnvironmentConfig) (*Target, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if t := h.targets[env]; t != nil {
		return t, nil
	}
	t, err := New(Config{
		Environment:  env,
		Images:       h.images,
		Gateway:      h.gw,
		GatewayURL:   h.cfg.GatewayURL,
		LogDir:       filepath.Join(h.cfg.DataDir, "logs"), // the target adds <env>/
		IdleAfter:    h.cfg.IdleAfter,
		NATSURL:      ec.NATSURL,
		KafkaBrokers: ec.KafkaBrokers,
		Log:          h.cfg.Log,
		Sandbox:      h.cfg.Sandbox,
		Env:          ec.Env,
		Untrusted:    ec.Untrusted,
		Known:        h.knownEnvironments,
	})
	if err != nil {
		// The caller, which chose env, names it.
		return nil, err
	}
	h.targets[env] = t
	if !slices.Contains(h.known, env) {
		h.known = append(h.known, env)
	}
	h.gw.setRemoved(env, "")
	return t, nil
}

// knownEnvironments is Config.Known of the host's targets.
func (h *Host) knownEnvironments() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.known)
}

// Remove forgets environment env: its functions and triggers stop
// (Target.Delete), its URLs answer 404 with why (say "environment
// pr-3-app was removed (its pull request closed)"), and a later Target
// of the same name makes a new one. Its logs stay on disk. Removing an
// environment the host does not serve only records why. The old target,
// if someone still holds it, refuses Apply with why. The caller must not
// make env again before Remove returns: the old target's stop would take
// the new one's routes (ferry serve's envSet serialises the two).
func (h *Host) Remove(ctx context.Context, env, why string) error {
	h.mu.Lock()
	t := h.targets[env]
	delete(h.targets, env)
	h.known = slices.DeleteFunc(h.known, func(e string) bool { return e == env })
	// why: marked before the processes stop, so no request in between
	// reads "no such environment".
	h.gw.setRemoved(env, why)
	h.mu.Unlock()
	if t == nil {
		return nil
	}
	return t.remove(ctx, why)
}
