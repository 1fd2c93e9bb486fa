package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

const envCols = `name, target, release_id, held, hold_reason, updated, frozen, freeze_reason, frozen_by, frozen_at`

func scanEnv(sc scanner) (Environment, error) {
	var e Environment
	err := sc.Scan(&e.Name, &e.Target, &e.Release, &e.Held, &e.HoldReason, at(&e.Updated),
		&e.Frozen, &e.FreezeReason, &e.FrozenBy, at(&e.FrozenAt))
	return e, err
}

// PutEnvironment adds an environment or replaces the one of that name;
// Updated is set to now. Its freeze is kept: only FreezeEnvironment
// changes that.
func (s *SQLite) PutEnvironment(ctx context.Context, e Environment) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO environments (name, target, release_id, held, hold_reason, updated) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET target = excluded.target, release_id = excluded.release_id,
				held = excluded.held, hold_reason = excluded.hold_reason, updated = excluded.updated`,
			e.Name, e.Target, e.Release, e.Held, e.HoldReason, unixNano(now()))
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

// HoldEnvironment sets env's hold and its reason, and Updated to now.
func (s *SQLite) HoldEnvironment(ctx context.Context, env string, held bool, reason string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO environments (name, target, release_id, held, hold_reason, updated) VALUES (?, 'embedded', '', ?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET held = excluded.held, hold_reason = excluded.hold_reason, updated = excluded.updated`,
			env, held, reason, unixNano(now()))
		return err
	})
	if err != nil {
		return fmt.Errorf("hold environment %q: %w", env, err)
	}
	return nil
}

// FreezeEnvironment sets env's manual freeze; At defaults to now for a
// freeze. Unfreezing clears the reason, actor and time.
func (s *SQLite) FreezeEnvironment(ctx context.Context, env string, f Freeze) error {
	if f.Frozen {
		f.At = orNow(f.At)
	} else {
		f = Freeze{}
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO environments (name, target, release_id, held, updated, frozen, freeze_reason, frozen_by, frozen_at)
			VALUES (?, 'embedded', '', 0, ?, ?, ?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET frozen = excluded.frozen, freeze_reason = excluded.freeze_reason,
				frozen_by = excluded.frozen_by, frozen_at = excluded.frozen_at, updated = excluded.updated`,
			env, unixNano(now()), f.Frozen, f.Reason, f.Actor, unixNano(f.At))
		return err
	})
	if err != nil {
		return fmt.Errorf("freeze environment %q: %w", env, err)
	}
	return nil
}

// deploymentCols reads a deployment with its release's source and commit:
// the columns of "deployments d LEFT JOIN releases r".
const deploymentCols = `d.id, d.environment, d.release_id, d.previous, d.actor, d.promotion, d.run, d.status, d.reason, d.at,
	d.kind, d.verification, d.verified, COALESCE(r.source, ''), COALESCE(r.commit_id, '')`

const deploymentsJoined = ` FROM deployments d LEFT JOIN releases r ON r.id = d.release_id`

func scanDeployment(sc scanner) (Deployment, error) {
	var d Deployment
	err := sc.Scan(&d.ID, &d.Environment, &d.Release, &d.Previous, &d.Actor, &d.Promotion, &d.RunID, &d.Status, &d.Reason, at(&d.At),
		&d.Kind, &d.Verification, at(&d.Verified), &d.Source, &d.Commit)
	return d, err
}

// RecordDeployment stores d and, when it succeeded, makes d.Release the
// environment's live release, adding the environment (target "embedded")
// when there is none. A d.Previous left "" is filled with the release live
// before, read in the same transaction so it cannot change underneath.
func (s *SQLite) RecordDeployment(ctx context.Context, d Deployment) (Deployment, error) {
	err := s.write(ctx, func(tx *sql.Tx) error {
		var err error
		d, err = recordDeployment(ctx, tx, d)
		return err
	})
	if err != nil {
		return Deployment{}, fmt.Errorf("record deployment of %s to %q: %w", d.Release, d.Environment, err)
	}
	return d, nil
}

// recordDeployment is RecordDeployment inside tx.
func recordDeployment(ctx context.Context, tx *sql.Tx, d Deployment) (Deployment, error) {
	d.At = orNow(d.At)
	d.Verified = utc(d.Verified)
	if d.Previous == "" {
		err := tx.QueryRowContext(ctx, `SELECT release_id FROM environments WHERE name = ?`, d.Environment).Scan(&d.Previous)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return d, err
		}
	}
	err := tx.QueryRowContext(ctx, `SELECT source, commit_id FROM releases WHERE id = ?`, d.Release).Scan(&d.Source, &d.Commit)
	if errors.Is(err, sql.ErrNoRows) {
		d.Source, d.Commit = "", ""
	} else if err != nil {
		return d, err
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO deployments (environment, release_id, previous, actor, promotion, run, status, reason, at, kind, verification, verified)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		d.Environment, d.Release, d.Previous, d.Actor, d.Promotion, d.RunID, d.Status, d.Reason, unixNano(d.At),
		d.Kind, d.Verification, unixNano(d.Verified))
	if err != nil {
		return d, err
	}
	if d.ID, err = res.LastInsertId(); err != nil {
		return d, err
	}
	if d.Status != DeploymentSucceeded {
		return d, nil
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO environments (name, target, release_id, held, updated) VALUES (?, 'embedded', ?, 0, ?)
		ON CONFLICT (name) DO UPDATE SET release_id = excluded.release_id, updated = excluded.updated`,
		d.Environment, d.Release, unixNano(d.At))
	return d, err
}

func (s *SQLite) GetDeployment(ctx context.Context, id int64) (Deployment, error) {
	d, err := scanDeployment(s.r.QueryRowContext(ctx, `SELECT `+deploymentCols+deploymentsJoined+` WHERE d.id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Deployment{}, fmt.Errorf("deployment %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Deployment{}, fmt.Errorf("get deployment %d: %w", id, err)
	}
	return d, nil
}

// UpdateDeployment sets d's Status, Reason, Verification and Verified.
func (s *SQLite) UpdateDeployment(ctx context.Context, d Deployment) error {
	err := s.write(ctx, func(tx *sql.Tx) error { return updateDeployment(ctx, tx, d) })
	if err != nil {
		return fmt.Errorf("update deployment %d: %w", d.ID, err)
	}
	return nil
}

func updateDeployment(ctx context.Context, tx *sql.Tx, d Deployment) error {
	res, err := tx.ExecContext(ctx, `UPDATE deployments SET status = ?, reason = ?, verification = ?, verified = ? WHERE id = ?`,
		d.Status, d.Reason, d.Verification, unixNano(utc(d.Verified)), d.ID)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return fmt.Errorf("deployment %d: %w", d.ID, ErrNotFound)
	}
	return nil
}

// ListDeployments lists deployments newest first; env "" lists every
// environment's.
func (s *SQLite) ListDeployments(ctx context.Context, env string, page Page) ([]Deployment, error) {
	q, args := paged(`SELECT `+deploymentCols+deploymentsJoined, "d.id", "d.environment", env, page)
	ds, err := list(ctx, s.r, scanDeployment, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list deployments of %q: %w", env, err)
	}
	return ds, nil
}

// FindDeployments lists the deployments q selects, newest first.
func (s *SQLite) FindDeployments(ctx context.Context, q DeploymentQuery) ([]Deployment, error) {
	var f filter
	eq(&f, "d.environment", q.Environment)
	eq(&f, "d.release_id", q.Release)
	eq(&f, "d.run", q.RunID)
	eq(&f, "d.promotion", q.Promotion)
	query := `SELECT ` + deploymentCols + deploymentsJoined + f.where() + ` ORDER BY d.id DESC`
	if q.Limit > 0 {
		query += ` LIMIT ?`
		f.args = append(f.args, q.Limit)
	}
	ds, err := list(ctx, s.r, scanDeployment, query, f.args...)
	if err != nil {
		return nil, fmt.Errorf("find deployments %+v: %w", q, err)
	}
	return ds, nil
}
