package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

const envCols = `name, target, release_id, held, updated`

func scanEnv(sc scanner) (Environment, error) {
	var e Environment
	err := sc.Scan(&e.Name, &e.Target, &e.Release, &e.Held, at(&e.Updated))
	return e, err
}

// PutEnvironment adds an environment or replaces the one of that name;
// Updated is set to now.
func (s *SQLite) PutEnvironment(ctx context.Context, e Environment) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO environments (`+envCols+`) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET target = excluded.target, release_id = excluded.release_id,
				held = excluded.held, updated = excluded.updated`,
			e.Name, e.Target, e.Release, e.Held, unixNano(now()))
		if err != nil {
			return fmt.Errorf("put environment %q: %w", e.Name, err)
		}
		return nil
	})
}

func (s *SQLite) GetEnvironment(ctx context.Context, name string) (Environment, error) {
	e, err := scanEnv(s.r.QueryRowContext(ctx, `SELECT `+envCols+` FROM environments WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return Environment{}, fmt.Errorf("environment %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return Environment{}, fmt.Errorf("get environment %q: %w", name, err)
	}
	return e, nil
}

// ListEnvironments lists environments by name.
func (s *SQLite) ListEnvironments(ctx context.Context) ([]Environment, error) {
	envs, err := list(ctx, s.r, scanEnv, `SELECT `+envCols+` FROM environments ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list environments: %w", err)
	}
	return envs, nil
}

const deploymentCols = `id, environment, release_id, previous, actor, promotion, run, status, reason, at`

func scanDeployment(sc scanner) (Deployment, error) {
	var d Deployment
	err := sc.Scan(&d.ID, &d.Environment, &d.Release, &d.Previous, &d.Actor, &d.Promotion, &d.RunID, &d.Status, &d.Reason, at(&d.At))
	return d, err
}

// RecordDeployment stores d and, when it succeeded, makes d.Release the
// environment's live release, adding the environment (target "embedded")
// when there is none. A d.Previous left "" is filled with the release live
// before, read in the same transaction so it cannot change underneath.
func (s *SQLite) RecordDeployment(ctx context.Context, d Deployment) (Deployment, error) {
	d.At = orNow(d.At)
	err := s.write(ctx, func(tx *sql.Tx) error {
		if d.Previous == "" {
			err := tx.QueryRowContext(ctx, `SELECT release_id FROM environments WHERE name = ?`, d.Environment).Scan(&d.Previous)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO deployments (environment, release_id, previous, actor, promotion, run, status, reason, at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			d.Environment, d.Release, d.Previous, d.Actor, d.Promotion, d.RunID, d.Status, d.Reason, unixNano(d.At))
		if err != nil {
			return err
		}
		if d.ID, err = res.LastInsertId(); err != nil {
			return err
		}
		if d.Status != "succeeded" {
			return nil
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO environments (`+envCols+`) VALUES (?, 'embedded', ?, 0, ?)
			ON CONFLICT (name) DO UPDATE SET release_id = excluded.release_id, updated = excluded.updated`,
			d.Environment, d.Release, unixNano(d.At))
		return err
	})
	if err != nil {
		return Deployment{}, fmt.Errorf("record deployment of %s to %q: %w", d.Release, d.Environment, err)
	}
	return d, nil
}

// ListDeployments lists deployments newest first; env "" lists every
// environment's.
func (s *SQLite) ListDeployments(ctx context.Context, env string, page Page) ([]Deployment, error) {
	q, args := paged(`SELECT `+deploymentCols+` FROM deployments`, "id", "environment", env, page)
	ds, err := list(ctx, s.r, scanDeployment, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list deployments of %q: %w", env, err)
	}
	return ds, nil
}
