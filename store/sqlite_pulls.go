package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// PullHeads returns the pull requests of source recorded as open, by
// number, with their heads, and whether the watcher's first listing of
// them was recorded (see BaselinePulls).
func (s *SQLite) PullHeads(ctx context.Context, source string) (map[int]string, bool, error) {
	heads := map[int]string{}
	rows, err := s.r.QueryContext(ctx, `SELECT number, commit_hash FROM pull_heads WHERE source = ?`, source)
	if err != nil {
		return nil, false, fmt.Errorf("read the pull requests of %s: %w", source, err)
	}
	defer rows.Close()
	for rows.Next() {
		var n int
		var c string
		if err := rows.Scan(&n, &c); err != nil {
			return nil, false, fmt.Errorf("read the pull requests of %s: %w", source, err)
		}
		heads[n] = c
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("read the pull requests of %s: %w", source, err)
	}
	var one int
	err = s.r.QueryRowContext(ctx, `SELECT 1 FROM pull_baselines WHERE source = ?`, source).Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return heads, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("read the pull requests of %s: %w", source, err)
	}
	return heads, true, nil
}

// SetPullHead records commit as the head of source's request number; a
// commit of "" forgets the request (it closed). The watcher's own
// bookkeeping, not an audit entry: the events it leads to are audited
// where they are acted on.
func (s *SQLite) SetPullHead(ctx context.Context, source string, number int, commit string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		var err error
		if commit == "" {
			_, err = tx.ExecContext(ctx, `DELETE FROM pull_heads WHERE source = ? AND number = ?`, source, number)
		} else {
			_, err = tx.ExecContext(ctx, `INSERT INTO pull_heads (source, number, commit_hash) VALUES (?, ?, ?)
				ON CONFLICT (source, number) DO UPDATE SET commit_hash = excluded.commit_hash`, source, number, commit)
		}
		if err != nil {
			return err
		}
		return errNoEntry
	})
	if err != nil {
		return fmt.Errorf("record pull request #%d of %s: %w", number, source, err)
	}
	return nil
}

// BaselinePulls records heads as all of source's open requests, replacing
// what was recorded, and marks the first listing taken.
func (s *SQLite) BaselinePulls(ctx context.Context, source string, heads map[int]string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM pull_heads WHERE source = ?`, source); err != nil {
			return err
		}
		for n, c := range heads {
			if _, err := tx.ExecContext(ctx, `INSERT INTO pull_heads (source, number, commit_hash) VALUES (?, ?, ?)`, source, n, c); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO pull_baselines (source) VALUES (?) ON CONFLICT DO NOTHING`, source); err != nil {
			return err
		}
		return errNoEntry
	})
	if err != nil {
		return fmt.Errorf("record the pull requests of %s: %w", source, err)
	}
	return nil
}

// ForgetPulls forgets source's requests and its first listing, so that
// the next listing is a first one again.
func (s *SQLite) ForgetPulls(ctx context.Context, source string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM pull_heads WHERE source = ?`, source); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM pull_baselines WHERE source = ?`, source); err != nil {
			return err
		}
		return errNoEntry
	})
	if err != nil {
		return fmt.Errorf("forget the pull requests of %s: %w", source, err)
	}
	return nil
}
