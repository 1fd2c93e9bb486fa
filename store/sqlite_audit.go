package store

import (
	"context"
	"database/sql"
	"fmt"
)

const eventCols = `id, at, actor, action, object, detail`

func scanEvent(sc scanner) (Event, error) {
	var e Event
	err := sc.Scan(&e.ID, at(&e.At), &e.Actor, &e.Action, &e.Object, &e.Detail)
	return e, err
}

// AppendEvent adds e to the audit log; At defaults to now.
func (s *SQLite) AppendEvent(ctx context.Context, e Event) (Event, error) {
	e.At = orNow(e.At)
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO events (at, actor, action, object, detail) VALUES (?, ?, ?, ?, ?)`,
			unixNano(e.At), e.Actor, e.Action, e.Object, e.Detail)
		if err != nil {
			return err
		}
		e.ID, err = res.LastInsertId()
		return err
	})
	if err != nil {
		return Event{}, fmt.Errorf("append audit event %s on %s: %w", e.Action, e.Object, err)
	}
	return e, nil
}

// ListEvents lists events newest first; object "" lists all.
func (s *SQLite) ListEvents(ctx context.Context, object string, page Page) ([]Event, error) {
	q, args := paged(`SELECT `+eventCols+` FROM events`, "id", "object", object, page)
	evs, err := list(ctx, s.r, scanEvent, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list audit events of %q: %w", object, err)
	}
	return evs, nil
}
