package server

import (
	"encoding/json"
	"fmt"

	"go.yaml.in/yaml/v3"

	"github.com/ferrycd/ferry/internal/sandbox"
)

// SandboxConfig is how repository code (functions on the embedded
// target, test commands) is confined:
//
//	sandbox: {mode: bwrap, network: none}   # the default
//	sandbox: none                           # runs it as ferry: logged loudly
//
// mode is bwrap (bubblewrap is required) or none; network is none (a
// function is reached only through the socket ferry hands it) or host
// (the host's network, for functions that call out).
type SandboxConfig struct {
	Mode    string `yaml:"mode" json:"mode"`
	Network string `yaml:"network" json:"network"`
}

// UnmarshalYAML takes the short form `sandbox: none` as well as the
// mapping.
func (s *SandboxConfig) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		s.Mode = n.Value
		return nil
	}
	type plain SandboxConfig
	return n.Decode((*plain)(s))
}

// UnmarshalJSON is UnmarshalYAML for a decoder that goes through JSON.
func (s *SandboxConfig) UnmarshalJSON(b []byte) error {
	var mode string
	if json.Unmarshal(b, &mode) == nil {
		s.Mode = mode
		return nil
	}
	type plain SandboxConfig
	return json.Unmarshal(b, (*plain)(s))
}

// checkSandbox fills the sandbox's defaults and names what is wrong.
func (c *Config) checkSandbox() []string {
	var errs []string
	if c.Sandbox.Mode == "" {
		c.Sandbox.Mode = string(sandbox.ModeBwrap)
	}
	if c.Sandbox.Network == "" {
		c.Sandbox.Network = string(sandbox.NetworkNone)
	}
	switch sandbox.Mode(c.Sandbox.Mode) {
	case sandbox.ModeBwrap, sandbox.ModeNone:
	default:
		errs = append(errs, fmt.Sprintf("sandbox.mode: %q is not known (use bwrap, or none to run repository code as ferry)", c.Sandbox.Mode))
	}
	switch sandbox.Network(c.Sandbox.Network) {
	case sandbox.NetworkNone, sandbox.NetworkHost:
	default:
		errs = append(errs, fmt.Sprintf("sandbox.network: %q is not known (use none, or host to let functions call out)", c.Sandbox.Network))
	}
	return errs
}
