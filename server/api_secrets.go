package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ferrycd/ferry/store"
)

// Who may touch an environment's secrets. Setting and deleting one needs
// admin: a secret is a credential to something outside ferry, and a
// deployer, who moves releases between environments, has no need to
// replace prod's database password. Listing needs only viewer: the answer
// holds names and times, never a value, and whoever reads a failed
// deploy's message ("needs secret db-password") should be able to see
// which secrets an environment has.
const (
	roleWriteSecrets = RoleAdmin
	roleListSecrets  = RoleViewer
)

// maxSecretSize bounds a secret's value: enough for a key or a
// certificate chain, small enough to live in an environment variable.
const maxSecretSize = 64 << 10

// EnvSecretView is one secret of an environment: its name and times,
// never its value.
type EnvSecretView struct {
	Environment string    `json:"environment"`
	Name        string    `json:"name"`
	Created     time.Time `json:"created"`
	Updated     time.Time `json:"updated"`
}

// EnvSecretSetView answers a set: the secret, whether it replaced one, and
// what became of the environment's functions.
type EnvSecretSetView struct {
	EnvSecretView
	Replaced bool `json:"replaced"`
	// Reloaded is true when the live release of the environment was
	// applied again with the new value; ReloadError says why not (the
	// secret is stored all the same, and the previous processes serve).
	Reloaded    bool   `json:"reloaded"`
	ReloadError string `json:"reloadError,omitempty"`
}

func envSecretView(s store.EnvSecret) EnvSecretView {
	return EnvSecretView{Environment: s.Environment, Name: s.Name, Created: s.Created, Updated: s.Updated}
}

func (a *api) routesSecrets() {
	a.route("GET /api/v1/environments/{env}/secrets", roleListSecrets, a.listEnvSecrets)
	a.route("PUT /api/v1/environments/{env}/secrets/{secret}", roleWriteSecrets, a.setEnvSecret)
	a.route("DELETE /api/v1/environments/{env}/secrets/{secret}", roleWriteSecrets, a.deleteEnvSecret)
}

func (a *api) envSecrets() (EnvSecretManager, error) {
	if a.cfg.EnvSecrets == nil {
		return nil, &apiError{http.StatusNotImplemented, "this server keeps no environment secrets"}
	}
	return a.cfg.EnvSecrets, nil
}

// secretError answers an unknown environment with 404.
func secretError(err error) error {
	if errors.Is(err, ErrUnknownEnvironment) {
		return &apiError{http.StatusNotFound, err.Error()}
	}
	return err
}

func (a *api) listEnvSecrets(w http.ResponseWriter, r *http.Request, _ Identity) error {
	m, err := a.envSecrets()
	if err != nil {
		return err
	}
	l, err := m.List(r.Context(), r.PathValue("env"))
	if err != nil {
		return secretError(err)
	}
	out := make([]EnvSecretView, 0, len(l))
	for _, s := range l {
		out = append(out, envSecretView(s))
	}
	writeJSON(w, http.StatusOK, ListPage[EnvSecretView]{Items: out})
	return nil
}

// EnvSecretRequest sets a secret. Value is text (UTF-8), as an
// environment variable's value is.
type EnvSecretRequest struct {
	Value string `json:"value"`
}

func (a *api) setEnvSecret(w http.ResponseWriter, r *http.Request, id Identity) error {
	m, err := a.envSecrets()
	if err != nil {
		return err
	}
	env, name := r.PathValue("env"), r.PathValue("secret")
	var req EnvSecretRequest
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return err
		}
		// The decoder's message may quote the body, which is the secret.
		return badRequest("secret %s: the body is not {\"value\": \"...\"}", name)
	}
	switch {
	case len(req.Value) > maxSecretSize:
		return &apiError{http.StatusRequestEntityTooLarge, fmt.Sprintf("secret %s: the value is larger than %d KiB", name, maxSecretSize>>10)}
	case req.Value == "":
		return badRequest("secret %s: the value is empty; give it on standard input (ferry secrets set %s %s < file)", name, env, name)
	case !utf8.ValidString(req.Value) || strings.ContainsRune(req.Value, 0):
		return badRequest("secret %s: the value is not text (an environment variable holds UTF-8 without NUL bytes); encode it, with base64 say", name)
	}
	sec, replaced, reload, err := m.Set(a.event(r.Context(), id, "secret.set", "env/"+env, "secret "+name), env, name, req.Value)
	if err != nil {
		return secretError(err)
	}
	view := EnvSecretSetView{EnvSecretView: envSecretView(sec), Replaced: replaced, Reloaded: reload == nil}
	if reload != nil {
		view.ReloadError = reload.Error()
		a.cfg.Log("environment %s: secret %s set; its functions were not restarted: %v", env, name, reload)
	} else {
		a.cfg.Log("environment %s: secret %s set by %s; functions that use it restarted", env, name, id.Name)
	}
	writeJSON(w, http.StatusOK, view)
	return nil
}

func (a *api) deleteEnvSecret(w http.ResponseWriter, r *http.Request, id Identity) error {
	m, err := a.envSecrets()
	if err != nil {
		return err
	}
	env, name := r.PathValue("env"), r.PathValue("secret")
	if err := m.Delete(a.event(r.Context(), id, "secret.delete", "env/"+env, "secret "+name), env, name); err != nil {
		return secretError(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// SetEnvSecret sets secret name of env to value.
func (c *Client) SetEnvSecret(ctx context.Context, env, name, value string) (EnvSecretSetView, error) {
	var out EnvSecretSetView
	err := c.do(ctx, http.MethodPut, "/api/v1/environments/"+url.PathEscape(env)+"/secrets/"+url.PathEscape(name), EnvSecretRequest{Value: value}, &out)
	return out, err
}

// EnvSecrets lists env's secrets, names and times only.
func (c *Client) EnvSecrets(ctx context.Context, env string) ([]EnvSecretView, error) {
	var out ListPage[EnvSecretView]
	err := c.do(ctx, http.MethodGet, "/api/v1/environments/"+url.PathEscape(env)+"/secrets", nil, &out)
	return out.Items, err
}

// DeleteEnvSecret removes secret name of env.
func (c *Client) DeleteEnvSecret(ctx context.Context, env, name string) error {
	return c.do(ctx, http.MethodDelete, "/api/v1/environments/"+url.PathEscape(env)+"/secrets/"+url.PathEscape(name), nil, nil)
}
