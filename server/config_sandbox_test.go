package server

import (
	"strings"
	"testing"
)

func TestParseConfigSandbox(t *testing.T) {
	for _, tc := range []struct {
		yaml, mode, network string
	}{
		{"listen: 127.0.0.1:8080\n", "bwrap", "none"},
		{"sandbox: none\n", "none", "none"},
		{"sandbox: {mode: bwrap, network: host}\n", "bwrap", "host"},
	} {
		cfg, err := ParseConfig([]byte(tc.yaml), "/srv/ferry", "ferry-serve.yaml")
		if err != nil {
			t.Fatalf("%q: %v", tc.yaml, err)
		}
		if cfg.Sandbox.Mode != tc.mode || cfg.Sandbox.Network != tc.network {
			t.Errorf("%q: sandbox %+v, want mode %s network %s", tc.yaml, cfg.Sandbox, tc.mode, tc.network)
		}
	}
	_, err := ParseConfig([]byte("sandbox: {mode: docker, network: bridge}\n"), "/srv/ferry", "ferry-serve.yaml")
	for _, want := range []string{`sandbox.mode: "docker" is not known (use bwrap, or none`, `sandbox.network: "bridge" is not known (use none, or host`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("a bad sandbox: %v, want it to say %q", err, want)
		}
	}
}
