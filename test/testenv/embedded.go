package testenv

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/ferrycd/ferry/environments"
	"github.com/ferrycd/ferry/environments/embedded"
)

// Host is an embedded host with its gateway serving on loopback.
type Host struct {
	// Gateway is http://ADDR of the gateway: GATEWAY/<env>/<path> reaches
	// an environment's HTTP triggers.
	Gateway string
	envs    []string
	host    *embedded.Host
	srv     *http.Server
}

// StartEmbedded starts a host for environments envs, keeping its images
// and logs under dataDir, with its gateway on a free port. Stop it with
// Stop.
func StartEmbedded(dataDir string, envs ...string) (*Host, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	h := &Host{Gateway: "http://" + ln.Addr().String(), envs: envs}
	h.host, err = embedded.NewHost(embedded.HostConfig{DataDir: dataDir, GatewayURL: h.Gateway})
	if err != nil {
		ln.Close()
		return nil, err
	}
	h.srv = &http.Server{Handler: h.host.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go h.srv.Serve(ln)
	return h, nil
}

// Target is env's target; an environment not given to StartEmbedded is
// an error, as it is for a ferry that does not configure it.
func (h *Host) Target(env string) (environments.Target, error) {
	if !slices.Contains(h.envs, env) {
		return nil, fmt.Errorf("no environment %s in this test", env)
	}
	return h.host.Target(env, embedded.EnvironmentConfig{})
}

// Stop stops every function and the gateway: what a crash of ferry does
// to the embedded environments. It returns the first environment's error.
func (h *Host) Stop(ctx context.Context) error {
	var first error
	for _, env := range h.envs {
		if t, err := h.host.Target(env, embedded.EnvironmentConfig{}); err == nil {
			if err := t.Delete(ctx); err != nil && first == nil {
				first = fmt.Errorf("stopping %s: %w", env, err)
			}
		}
	}
	h.srv.Close()
	return first
}
