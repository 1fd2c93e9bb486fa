package embedded

import (
	"fmt"
	"net/http"
	"path/filepath"
	"time"
)

// NewLocal returns a target of the environment env with an image cache
// and logs of its own under dataDir, and the gateway it routes through,
// which the caller serves at gatewayURL (http://ADDR). idleAfter is
// Config.IdleAfter (0 keeps the default). ferry run wires its target with
// it, and so does the benchmark in test/bench/embedded, which measures the
// target from outside this package.
func NewLocal(env, dataDir, gatewayURL string, idleAfter time.Duration) (*Target, http.Handler, error) {
	imgs, err := newImages(filepath.Join(dataDir, "images"))
	if err != nil {
		return nil, nil, err
	}
	gw := newGateway()
	t, err := New(Config{Environment: env, Images: imgs, Gateway: gw, GatewayURL: gatewayURL,
		LogDir: filepath.Join(dataDir, "logs"), IdleAfter: idleAfter})
	if err != nil {
		return nil, nil, err
	}
	return t, gw, nil
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
