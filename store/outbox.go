package store

import (
	"context"
	"time"
)

// OutboxItem is one notice waiting to be delivered to a sink outside ferry
// (GitHub, a chat, a webhook).
type OutboxItem struct {
	ID   int64
	Sink string
	// Key, when not "", names what the notice is about; a newer notice for
	// the same sink and key replaces one not yet delivered.
	Key  string
	Body []byte
	// Version grows each time the body is replaced: OutboxDone deletes the
	// item only at the version delivered.
	Version   int64
	Attempts  int
	NextAt    time.Time
	LastError string
	Created   time.Time
}

// Outbox keeps notices until they are delivered, so that an outage of the
// receiver or a restart of ferry loses none (at-least-once delivery).
type Outbox interface {
	// Enqueue adds it (Sink, Key, Body; NextAt zero means now). With a
	// Key, a pending item of the same sink and key gets the new body
	// instead, keeping its place and its back-off; the item is returned.
	Enqueue(ctx context.Context, it OutboxItem) (OutboxItem, error)
	// Due lists at most n items of sink due at now, oldest first.
	Due(ctx context.Context, sink string, now time.Time, n int) ([]OutboxItem, error)
	// OutboxDone deletes a delivered item, unless its body was replaced
	// since version (then the newer body is still to deliver).
	OutboxDone(ctx context.Context, id, version int64) error
	// OutboxRetry records a failed attempt: one more attempt, the error,
	// and when to try again.
	OutboxRetry(ctx context.Context, id int64, next time.Time, lastError string) error
	// Pending counts the items of each sink not yet delivered.
	Pending(ctx context.Context) (map[string]int, error)

	// PutMemo and GetMemo keep what a sink learned and needs again (a
	// comment's id, say). GetMemo returns ErrNotFound for none.
	PutMemo(ctx context.Context, key, value string) error
	GetMemo(ctx context.Context, key string) (string, error)
}
