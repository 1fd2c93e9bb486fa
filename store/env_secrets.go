package store

import (
	"context"
	"time"
)

// EnvSecret is a secret of one environment, as ferry secrets set gave it.
// Value is always sealed ("sealed:v1:…", see internal/seal): the server
// seals before it stores and opens only to start a function, so neither
// the database nor a list of secrets holds a value in the clear.
type EnvSecret struct {
	Environment string
	Name        string
	Value       string
	Created     time.Time
	Updated     time.Time
}

// EnvSecrets keeps the environments' secrets.
type EnvSecrets interface {
	// PutEnvSecret adds the secret or replaces its value; a replaced one
	// keeps Created. It reports whether the secret existed already.
	PutEnvSecret(ctx context.Context, s EnvSecret) (replaced bool, err error)
	// GetEnvSecret returns one secret; ErrNotFound when it was never set.
	GetEnvSecret(ctx context.Context, env, name string) (EnvSecret, error)
	// ListEnvSecrets lists an environment's secrets by name, without their
	// values (Value is empty), for callers that only show them.
	ListEnvSecrets(ctx context.Context, env string) ([]EnvSecret, error)
	// DeleteEnvSecret removes a secret; ErrNotFound when there is none.
	DeleteEnvSecret(ctx context.Context, env, name string) error
}
