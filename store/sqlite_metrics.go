package store

import (
	"context"
	"errors"
	"maps"
	"runtime"
	"strings"
	"sync"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Figures for ferry's metrics, read when they are scraped: counting what
// the tables hold, rather than counting changes as they happen, gives the
// same answer after a restart.

// CountRuns returns how many runs the store holds in each status.
func (s *SQLite) CountRuns(ctx context.Context) (map[RunStatus]int, error) {
	out := map[RunStatus]int{}
	err := s.countBy(ctx, `SELECT status, count(*) FROM runs GROUP BY status`, func(k string, n int) { out[RunStatus(k)] = n })
	return out, err
}

// CountPromotions returns how many promotions the store holds in each
// status.
func (s *SQLite) CountPromotions(ctx context.Context) (map[string]int, error) {
	out := map[string]int{}
	err := s.countBy(ctx, `SELECT status, count(*) FROM promotions GROUP BY status`, func(k string, n int) { out[k] = n })
	return out, err
}

func (s *SQLite) countBy(ctx context.Context, query string, add func(string, int)) error {
	rows, err := s.r.QueryContext(ctx, query)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		var n int
		if err := rows.Scan(&k, &n); err != nil {
			return err
		}
		add(k, n)
	}
	return rows.Err()
}

// WriteErrors returns how many writes failed since Open, by operation:
// the Store method that wrote (UpdateStep, AppendEvent…). Only failures
// of the database count (a full disk, an I/O error, a lock held too
// long); a write refused by a rule of the schema (ErrConflict,
// ErrNotFound) or cut short by its context does not.
func (s *SQLite) WriteErrors() map[string]uint64 {
	return s.writeErrors.snapshot()
}

// writeErrors counts failed writes by operation.
type writeErrors struct {
	mu   sync.Mutex
	byOp map[string]uint64
}

// count counts err, returned by write, under the name of write's caller.
func (w *writeErrors) count(err error) {
	var e *sqlite.Error
	if !errors.As(err, &e) || e.Code()&0xff == sqlite3.SQLITE_CONSTRAINT {
		return
	}
	op := writer()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.byOp == nil {
		w.byOp = map[string]uint64{}
	}
	w.byOp[op]++
}

func (w *writeErrors) snapshot() map[string]uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return maps.Clone(w.byOp)
}

// writer names the Store method that called write, from the call stack.
// why: the twenty-odd callers of write then need no change, and the name
// cannot drift from the method's; the stack is read only on a failure.
func writer() string {
	pcs := make([]uintptr, 16)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(2, pcs)])
	seenWrite := false
	for {
		f, more := frames.Next()
		name := f.Function[strings.LastIndexByte(f.Function, '/')+1:]
		if seenWrite && !strings.HasPrefix(name, "store.(*SQLite).write") {
			// store.(*SQLite).UpdateStep, or a helper's name (store.updateDeployment).
			name = strings.TrimPrefix(name, "store.")
			name = strings.TrimPrefix(name, "(*SQLite).")
			name, _, _ = strings.Cut(name, ".func")
			return name
		}
		if strings.HasPrefix(name, "store.(*SQLite).write") {
			seenWrite = true
		}
		if !more {
			return "unknown"
		}
	}
}
