package promote

import (
	"errors"
	"fmt"
)

// Environments is what a promoter offers whose environments change at
// run time: ferry serve makes a preview environment for a pull request
// and removes it when the request closes. The promoter New returns
// implements it.
type Environments interface {
	// AddEnvironment adds env, or changes its settings if it is there
	// already. A preview (env.Preview) has no freeze windows and no
	// floor: it is deployed by its own run, never promoted into.
	AddEnvironment(env Environment) error
	// RemoveEnvironment forgets a preview environment: a promotion or a
	// rollback into it is then refused with "environment ENV was removed
	// (WHY)". An environment that is not a preview cannot be removed;
	// one not known is only recorded as removed.
	RemoveEnvironment(env, why string) error
}

var _ Environments = (*engine)(nil)

// AddEnvironment implements Environments.
func (e *engine) AddEnvironment(env Environment) error {
	ws, floor, err := envSettings(env)
	if err != nil {
		return err
	}
	if env.Preview {
		if len(ws) > 0 || env.Floor != nil {
			return fmt.Errorf("promote: preview environment %s: a preview has no freeze windows and no floor", env.Name)
		}
		floor = Floor{}
	}
	e.envMu.Lock()
	defer e.envMu.Unlock()
	if _, ok := e.envs[env.Name]; ok && e.previews[env.Name] != env.Preview {
		return fmt.Errorf("promote: environment %s is there already, and a preview only if it was made as one", env.Name)
	}
	e.envs[env.Name] = ws
	e.floors[env.Name] = floor
	e.previews[env.Name] = env.Preview
	delete(e.removed, env.Name)
	return nil
}

// RemoveEnvironment implements Environments.
func (e *engine) RemoveEnvironment(env, why string) error {
	e.envMu.Lock()
	defer e.envMu.Unlock()
	if _, ok := e.envs[env]; ok && !e.previews[env] {
		return invalid("environment %s is in ferry serve's configuration and cannot be removed; remove it from the configuration and restart", env)
	}
	delete(e.envs, env)
	delete(e.floors, env)
	delete(e.previews, env)
	e.removed[env] = why
	return nil
}

// envSettings checks env's name and returns its freeze windows and its
// floor (DefaultFloor when it sets none), for the configured environments
// and the ones added at run time alike.
func envSettings(env Environment) ([]window, Floor, error) {
	if env.Name == "" {
		return nil, Floor{}, errors.New("promote: an environment has no name")
	}
	ws, err := parseWindows(env)
	if err != nil {
		return nil, Floor{}, err
	}
	floor := DefaultFloor(env.Name)
	if env.Floor != nil {
		floor = *env.Floor
	}
	return ws, floor, nil
}

// isPreview reports whether env is a preview environment.
func (e *engine) isPreview(env string) bool {
	e.envMu.RLock()
	defer e.envMu.RUnlock()
	return e.previews[env]
}

// floorOf is env's floor and whether env has one set.
func (e *engine) floorOf(env string) (Floor, bool) {
	e.envMu.RLock()
	defer e.envMu.RUnlock()
	f, ok := e.floors[env]
	return f, ok
}
