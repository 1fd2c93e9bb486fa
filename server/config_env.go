package server

import (
	"fmt"
	"maps"
	"slices"

	"github.com/ferrycd/ferry/manifests"
	"github.com/ferrycd/ferry/manifests/v1alpha1"
	"github.com/ferrycd/ferry/store"
)

// FunctionConfig is what an environment of the configuration changes about
// one function: variables that override the ones of its manifest.
//
// Overrides are for what differs between environments of the same release
// (a log level, an endpoint, a secret with a name of its own), so that a
// release promoted from dev to prod stays the same artifact:
//
//	environments:
//	- name: prod
//	  env:                  # every function in prod
//	    LOG_LEVEL: warn
//	  functions:
//	    hello:              # one function, over the lines above
//	      env:
//	        LOG_LEVEL: info
//	        DB_PASSWORD: {valueFrom: {secret: prod-db}}
//
// A variable is set whether or not the manifest declares it; the order is
// the manifest, then the environment's env, then the function's.
type FunctionConfig struct {
	Env map[string]v1alpha1.EnvValue `yaml:"env"`
}

// checkEnvOverrides checks every environment's env and functions: variable
// names as a manifest's, values a string or a reference to a secret with a
// valid name, function names as a manifest's. A function named here that no
// release has is not an error: the configuration outlives releases.
func (c *Config) checkEnvOverrides() []string {
	var errs []string
	for i, e := range c.Environments {
		errs = append(errs, checkEnvValues(fmt.Sprintf("environments[%d].env", i), e.Env)...)
		for _, fn := range slices.Sorted(maps.Keys(e.Functions)) {
			key := fmt.Sprintf("environments[%d].functions", i)
			if !validName(fn) {
				errs = append(errs, fmt.Sprintf("%s: %q is not a function name; use lower-case letters, digits and '-', as the Function's metadata.name", key, fn))
				continue
			}
			errs = append(errs, checkEnvValues(key, e.Functions[fn].Env)...)
		}
	}
	return errs
}

// checkEnvValues checks one map of variables; key is where it is, for the
// message (the variables' names are in the message, not in the key, since
// a key path holds no '_').
func checkEnvValues(key string, env map[string]v1alpha1.EnvValue) []string {
	var errs []string
	for _, name := range slices.Sorted(maps.Keys(env)) {
		v := env[name]
		if p := manifests.EnvNameProblem(name); p != "" {
			errs = append(errs, fmt.Sprintf("%s: %s", key, p))
			continue
		}
		if v.ValueFrom == nil {
			continue
		}
		switch {
		case v.Value != "":
			errs = append(errs, fmt.Sprintf("%s: %s has both value and valueFrom; keep one", key, name))
		case v.ValueFrom.Secret == "":
			errs = append(errs, fmt.Sprintf("%s: %s: valueFrom.secret is missing; name the secret (ferry secrets set ENV NAME)", key, name))
		default:
			if p := manifests.SecretNameProblem(v.ValueFrom.Secret); p != "" {
				errs = append(errs, fmt.Sprintf("%s: %s: %s", key, name, p))
			}
		}
	}
	return errs
}

// envOverrides returns the overrides of environment env: all functions',
// and per function.
func (c *Config) envOverrides(env string) (map[string]v1alpha1.EnvValue, map[string]FunctionConfig) {
	for _, e := range c.Environments {
		if e.Name == env {
			return e.Env, e.Functions
		}
	}
	if _, _, ok := store.ParsePreviewName(env); ok {
		return c.Previews.Env, c.Previews.Functions
	}
	return nil, nil
}

// environmentNames lists the configured environments, in order.
func (c *Config) environmentNames() []string {
	names := make([]string, 0, len(c.Environments))
	for _, e := range c.Environments {
		names = append(names, e.Name)
	}
	return names
}
