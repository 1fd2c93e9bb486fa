package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

const eventCols = `id, at, actor, action, object, detail`

func scanEvent(sc scanner) (Event, error) {
	var e Event
	err := sc.Scan(&e.ID, at(&e.At), &e.Actor, &e.Action, &e.Object, &e.Detail)
	return e, err
}

// pendingEvent is the audit entry a context carries to the next change.
type pendingEvent struct {
	mu      sync.Mutex
	e       Event
	written bool
	// name, when set, makes the entry of the record the change creates.
	name func(id int64) Event
}

type eventKey struct{}

// WithEvent returns a context under which the store's next change made
// with it also appends e to the audit log, in the same transaction: the
// change and its entry are both kept or neither is. Later changes with the
// same context do not append e again. A change whose entry cannot be
// written fails with an *AuditError.
func WithEvent(ctx context.Context, e Event) context.Context {
	return context.WithValue(ctx, eventKey{}, &pendingEvent{e: e})
}

// EventWritten reports whether the entry ctx carries (WithEvent) was
// written with a change; false when ctx carries none.
func EventWritten(ctx context.Context) bool {
	p, _ := ctx.Value(eventKey{}).(*pendingEvent)
	if p == nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.written
}

// errNoEntry, returned by a write's function, commits its work without the
// entry ctx carries: that work is bookkeeping, not the action the entry
// records, which did not happen (a delivery seen before, say).
var errNoEntry = errors.New("no audit entry for this change")

// WithCreateEvent is WithEvent for a change that creates a record: the
// entry names it, so entry(id) makes the entry from the new record's id.
func WithCreateEvent(ctx context.Context, entry func(id int64) Event) context.Context {
	p := &pendingEvent{name: entry}
	p.e = p.refusal()
	return context.WithValue(ctx, eventKey{}, p)
}

// refusal is the entry an *AuditError names. A record that was to be
// created does not exist, so it is named by its kind, not an id. Called
// with p.mu held, or before p is shared.
func (p *pendingEvent) refusal() Event {
	if p.name == nil {
		return p.e
	}
	e := p.name(0)
	kind, _, _ := strings.Cut(e.Object, "/")
	e.Object = "a new " + kind
	return e
}

// created gives the entry ctx carries the id of the record a change made.
func created(ctx context.Context, id int64) {
	if p, _ := ctx.Value(eventKey{}).(*pendingEvent); p != nil {
		p.mu.Lock()
		defer p.mu.Unlock()
		if !p.written && p.name != nil {
			p.e = p.name(id)
		}
	}
}

// AuditError is a change refused because its audit entry could not be
// written; nothing of the change was kept.
type AuditError struct {
	Event Event
	Err   error
}

func (e *AuditError) Error() string {
	fix := "check the disk of ferry's data folder, then try again"
	if isFull(e.Err) {
		fix = "free space on the disk of ferry's data folder, then try again"
	}
	return fmt.Sprintf("%s on %s was not done: its audit entry could not be written: %v; %s", e.Event.Action, e.Event.Object, e.Err, fix)
}

func (e *AuditError) Unwrap() error { return e.Err }

// IsAudit reports whether err is, or wraps, an *AuditError.
func IsAudit(err error) bool {
	var ae *AuditError
	return errors.As(err, &ae)
}

// appendPending writes the entry ctx carries, if any and not written yet,
// in tx. It returns the entry, to be marked written once tx commits.
func appendPending(ctx context.Context, tx *sql.Tx) (*pendingEvent, error) {
	p, _ := ctx.Value(eventKey{}).(*pendingEvent)
	if p == nil {
		return nil, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.written {
		return nil, nil
	}
	p.e.At = orNow(p.e.At)
	res, err := tx.ExecContext(ctx, `INSERT INTO events (at, actor, action, object, detail) VALUES (?, ?, ?, ?, ?)`,
		unixNano(p.e.At), p.e.Actor, p.e.Action, p.e.Object, p.e.Detail)
	if err == nil {
		p.e.ID, err = res.LastInsertId()
	}
	if err != nil {
		return nil, &AuditError{Event: p.refusal(), Err: err}
	}
	return p, nil
}

func (p *pendingEvent) done() Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.written = true
	return p.e
}

// isFull reports whether err is SQLite's "database or disk is full".
func isFull(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && e.Code()&0xff == sqlite3.SQLITE_FULL
}

// AppendEvent adds e to the audit log; At defaults to now. It fails with
// an *AuditError, so that a caller that must not act unrecorded can tell.
func (s *SQLite) AppendEvent(ctx context.Context, e Event) (Event, error) {
	ctx = WithEvent(ctx, e)
	if err := s.write(ctx, func(*sql.Tx) error { return nil }); err != nil {
		return Event{}, err
	}
	return ctx.Value(eventKey{}).(*pendingEvent).done(), nil
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

// IsFull reports whether err is the store refusing a write because the
// disk is full: trying again once there is space succeeds.
func IsFull(err error) bool { return isFull(err) }
