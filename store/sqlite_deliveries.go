package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// RememberDelivery records a webhook delivery's key as seen at now and
// reports whether it is new: not seen within ttl. Seeing a key again moves
// its time forward, since a sender that still retries it is still
// replaying. Keys not seen within ttl are forgotten in the same
// transaction, so the table holds about a ttl's worth of deliveries.
// Checking and recording are one transaction, so of two identical
// deliveries at once exactly one is new, in this process or another.
func (s *SQLite) RememberDelivery(ctx context.Context, key string, now time.Time, ttl time.Duration) (bool, error) {
	first := false
	err := s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM webhook_deliveries WHERE seen <= ?`, now.Add(-ttl).UnixNano()); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO webhook_deliveries (key, seen) VALUES (?, ?)
			ON CONFLICT (key) DO NOTHING`, key, now.UnixNano())
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 1 {
			first = true
			return nil
		}
		if _, err = tx.ExecContext(ctx, `UPDATE webhook_deliveries SET seen = ? WHERE key = ?`, now.UnixNano(), key); err != nil {
			return err
		}
		// A replay does nothing but keep its key longer.
		return errNoEntry
	})
	if err != nil {
		return false, fmt.Errorf("remember webhook delivery: %w", err)
	}
	return first, nil
}

// ForgetDelivery forgets a delivery's key, so that the sender's
// redelivery of one that failed after it was remembered is acted on.
func (s *SQLite) ForgetDelivery(ctx context.Context, key string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM webhook_deliveries WHERE key = ?`, key); err != nil {
			return err
		}
		return errNoEntry
	})
	if err != nil {
		return fmt.Errorf("forget webhook delivery: %w", err)
	}
	return nil
}

// Checkpoint copies the write-ahead log into the database file and
// empties the log, so that what was overwritten (a secret an older ferry
// stored in the clear, say) lingers in neither.
func (s *SQLite) Checkpoint(ctx context.Context) error {
	if _, err := s.w.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		return fmt.Errorf("checkpoint the store: %w", err)
	}
	return nil
}
