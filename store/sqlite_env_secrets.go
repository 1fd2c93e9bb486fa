package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

var _ EnvSecrets = (*SQLite)(nil)

func (s *SQLite) PutEnvSecret(ctx context.Context, sec EnvSecret) (bool, error) {
	now := orNow(sec.Updated)
	replaced := false
	err := s.write(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM env_secrets WHERE environment = ? AND name = ?`, sec.Environment, sec.Name).Scan(&n); err != nil {
			return fmt.Errorf("secret %s of environment %s: %w", sec.Name, sec.Environment, err)
		}
		replaced = n > 0
		_, err := tx.ExecContext(ctx, `INSERT INTO env_secrets (environment, name, value, created, updated) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (environment, name) DO UPDATE SET value = excluded.value, updated = excluded.updated`,
			sec.Environment, sec.Name, sec.Value, unixNano(now), unixNano(now))
		if err != nil {
			return fmt.Errorf("put secret %s of environment %s: %w", sec.Name, sec.Environment, err)
		}
		return nil
	})
	return replaced, err
}

func scanEnvSecret(sc scanner) (EnvSecret, error) {
	var e EnvSecret
	err := sc.Scan(&e.Environment, &e.Name, &e.Value, at(&e.Created), at(&e.Updated))
	return e, err
}

func (s *SQLite) GetEnvSecret(ctx context.Context, env, name string) (EnvSecret, error) {
	e, err := scanEnvSecret(s.r.QueryRowContext(ctx, `SELECT environment, name, value, created, updated FROM env_secrets WHERE environment = ? AND name = ?`, env, name))
	if errors.Is(err, sql.ErrNoRows) {
		return EnvSecret{}, fmt.Errorf("secret %s of environment %s: %w", name, env, ErrNotFound)
	}
	if err != nil {
		return EnvSecret{}, fmt.Errorf("get secret %s of environment %s: %w", name, env, err)
	}
	return e, nil
}

func (s *SQLite) ListEnvSecrets(ctx context.Context, env string) ([]EnvSecret, error) {
	// The value is not even read: a list never needs it.
	l, err := list(ctx, s.r, scanEnvSecret, `SELECT environment, name, '', created, updated FROM env_secrets WHERE environment = ? ORDER BY name`, env)
	if err != nil {
		return nil, fmt.Errorf("list secrets of environment %s: %w", env, err)
	}
	return l, nil
}

func (s *SQLite) DeleteEnvSecret(ctx context.Context, env, name string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM env_secrets WHERE environment = ? AND name = ?`, env, name)
		if err != nil {
			return fmt.Errorf("delete secret %s of environment %s: %w", name, env, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("secret %s of environment %s: %w", name, env, ErrNotFound)
		}
		return nil
	})
}
