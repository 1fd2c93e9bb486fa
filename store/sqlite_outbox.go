package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

var _ Outbox = (*SQLite)(nil)

// Enqueue implements Outbox. Notices are not audit entries: they repeat
// what the audit log says already.
func (s *SQLite) Enqueue(ctx context.Context, it OutboxItem) (OutboxItem, error) {
	now := time.Now()
	if it.NextAt.IsZero() {
		it.NextAt = now
	}
	it.Created, it.Version = now, 1
	err := s.write(ctx, func(tx *sql.Tx) error {
		if it.Key != "" {
			row := tx.QueryRowContext(ctx, `UPDATE outbox SET body = ?, version = version + 1
				WHERE sink = ? AND key = ? RETURNING id, version, attempts, next_at, last_error, created`,
				it.Body, it.Sink, it.Key)
			var next, created int64
			err := row.Scan(&it.ID, &it.Version, &it.Attempts, &next, &it.LastError, &created)
			if err == nil {
				it.NextAt, it.Created = time.Unix(0, next), time.Unix(0, created)
				return errNoEntry
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO outbox (sink, key, body, next_at, created) VALUES (?, ?, ?, ?, ?)`,
			it.Sink, it.Key, it.Body, it.NextAt.UnixNano(), it.Created.UnixNano())
		if err != nil {
			return err
		}
		it.ID, err = res.LastInsertId()
		if err != nil {
			return err
		}
		return errNoEntry
	})
	if err != nil {
		return OutboxItem{}, fmt.Errorf("queue a notice for %s: %w", it.Sink, err)
	}
	return it, nil
}

const outboxCols = `id, sink, key, body, version, attempts, next_at, last_error, created`

func scanOutbox(sc scanner) (OutboxItem, error) {
	var it OutboxItem
	err := sc.Scan(&it.ID, &it.Sink, &it.Key, &it.Body, &it.Version, &it.Attempts, at(&it.NextAt), &it.LastError, at(&it.Created))
	return it, err
}

// Due implements Outbox.
func (s *SQLite) Due(ctx context.Context, sink string, now time.Time, n int) ([]OutboxItem, error) {
	out, err := list(ctx, s.r, scanOutbox, `SELECT `+outboxCols+`
		FROM outbox WHERE sink = ? AND next_at <= ? ORDER BY id LIMIT ?`, sink, now.UnixNano(), n)
	if err != nil {
		return nil, fmt.Errorf("list notices for %s: %w", sink, err)
	}
	return out, nil
}

// OutboxDone implements Outbox.
func (s *SQLite) OutboxDone(ctx context.Context, id, version int64) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM outbox WHERE id = ? AND version = ?`, id, version); err != nil {
			return err
		}
		// why: a body replaced during the delivery is due at once, not
		// after the back-off of the body delivered.
		if _, err := tx.ExecContext(ctx, `UPDATE outbox SET attempts = 0, last_error = '' WHERE id = ?`, id); err != nil {
			return err
		}
		return errNoEntry
	})
	if err != nil {
		return fmt.Errorf("mark notice %d delivered: %w", id, err)
	}
	return nil
}

// OutboxRetry implements Outbox.
func (s *SQLite) OutboxRetry(ctx context.Context, id int64, next time.Time, lastError string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE outbox SET attempts = attempts + 1, next_at = ?, last_error = ? WHERE id = ?`,
			next.UnixNano(), lastError, id)
		if err != nil {
			return err
		}
		return errNoEntry
	})
	if err != nil {
		return fmt.Errorf("note a failed delivery of notice %d: %w", id, err)
	}
	return nil
}

// Pending implements Outbox.
func (s *SQLite) Pending(ctx context.Context) (map[string]int, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT sink, COUNT(*) FROM outbox GROUP BY sink`)
	if err != nil {
		return nil, fmt.Errorf("count notices: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var sink string
		var n int
		if err := rows.Scan(&sink, &n); err != nil {
			return nil, fmt.Errorf("count notices: %w", err)
		}
		out[sink] = n
	}
	return out, rows.Err()
}

// PutMemo implements Outbox.
func (s *SQLite) PutMemo(ctx context.Context, key, value string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO memos (key, value, updated) VALUES (?, ?, ?)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated = excluded.updated`, key, value, time.Now().UnixNano())
		if err != nil {
			return err
		}
		return errNoEntry
	})
	if err != nil {
		return fmt.Errorf("keep memo %s: %w", key, err)
	}
	return nil
}

// GetMemo implements Outbox.
func (s *SQLite) GetMemo(ctx context.Context, key string) (string, error) {
	var v string
	err := s.r.QueryRowContext(ctx, `SELECT value FROM memos WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("read memo %s: %w", key, err)
	}
	return v, nil
}
