package embedded

import (
	"fmt"
	"net/http"
	"time"

	"github.com/ferrycd/ferry/internal/sandbox"
)

// LocalConfig is a target with everything of its own under one folder.
type LocalConfig struct {
	Environment string
	DataDir     string // images under images/, logs under logs/
	GatewayURL  string // http://ADDR, where the caller serves the gateway
	IdleAfter   time.Duration
	// NATSURL and KafkaBrokers are Config's: where the environment's
	// NATS and Kafka triggers connect.
	NATSURL      string
	KafkaBrokers []string
	// Sandbox runs the functions; nil as HostConfig's.
	Sandbox *sandbox.Sandbox
}

// NewLocal returns a target of cfg.Environment with an image cache and
// logs of its own under cfg.DataDir, and the gateway it routes through.
// ferry run wires its target with it, and so does the benchmark in
// test/bench/embedded, which measures the target from outside this
// package.
func NewLocal(cfg LocalConfig) (*Target, http.Handler, error) {
	h, err := NewHost(HostConfig{DataDir: cfg.DataDir, GatewayURL: cfg.GatewayURL, IdleAfter: cfg.IdleAfter, Sandbox: cfg.Sandbox})
	if err != nil {
		return nil, nil, err
	}
	t, err := h.Target(cfg.Environment, EnvironmentConfig{NATSURL: cfg.NATSURL, KafkaBrokers: cfg.KafkaBrokers})
	if err != nil {
		return nil, nil, err
	}
	return t, h.Handler(), nil
}

// ProcessURL returns the base URL (http://127.0.0.1:PORT) of the running
// process of function in the live release, where a call bypasses the
// gateway. It exists for the same benchmark as NewLocal.
func (t *Target) ProcessURL(function string) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.live == nil || t.live.instances[function] == nil {
		return "", fmt.Errorf("environment %s runs no function %s", t.cfg.Environment, function)
	}
	in := t.live.instances[function]
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.proc == nil {
		return "", fmt.Errorf("function %s is scaled to zero: no process to call", function)
	}
	return in.proc.URL(), nil
}
