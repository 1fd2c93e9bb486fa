package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// SQLite is the Store in one SQLite file.
//
// Writes go through a pool of one connection, so they are serialised in
// process (waiting for it honours ctx, which a mutex would not), and each
// begins IMMEDIATE: a transaction that reads and then writes takes the write
// lock up front, waiting up to busyTimeout for another process, instead of
// failing with SQLITE_BUSY when it upgrades. Reads use their own pool and, in
// WAL mode, run concurrently with each other and with the writer.
type SQLite struct {
	w *sql.DB // the one writer
	r *sql.DB // readers, query_only
	// writeErrors counts failed writes by operation (sqlite_metrics.go).
	writeErrors writeErrors
}

var _ Store = (*SQLite)(nil)

const (
	// busyTimeout is how long a statement waits for a lock another process
	// holds: ferry's transactions take milliseconds, so this only runs out
	// when something is stuck.
	busyTimeout = 5 * time.Second
	// maxReaders bounds the read pool; each connection has its own cache.
	maxReaders = 8
)

// migrationFiles are the schema's versions, NNNN_what.sql, applied in order.
// A change to the schema is a new file: one that has shipped is never
// edited, since databases out there have applied it already.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// Open opens the store at path, creating the file and its folder when
// missing, and brings the schema up to date.
func Open(ctx context.Context, path string) (*SQLite, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	// The file holds source credentials: create it readable by ferry alone
	// (SQLite gives the -wal and -shm files the same mode).
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	f.Close()

	s := &SQLite{}
	if s.w, err = sql.Open("sqlite", dsn(path, "_txlock=immediate")); err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	s.w.SetMaxOpenConns(1)
	if err := s.migrate(ctx); err != nil {
		s.w.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if s.r, err = sql.Open("sqlite", dsn(path, "_pragma=query_only(1)")); err != nil {
		s.w.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	s.r.SetMaxOpenConns(maxReaders)
	s.r.SetMaxIdleConns(maxReaders)
	if err := s.r.PingContext(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return s, nil
}

// dsn names the file and the pragmas every connection needs: WAL so reads
// do not wait for the writer, synchronous FULL so a commit survives a power
// cut, foreign keys, which SQLite leaves off unless asked, and
// secure_delete, so that a value overwritten or deleted (a secret an older
// ferry kept in the clear) is zeroed rather than left in a free page.
func dsn(path, extra string) string {
	return path + "?_pragma=busy_timeout(" + strconv.FormatInt(busyTimeout.Milliseconds(), 10) + ")" +
		"&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)&_pragma=secure_delete(1)&" + extra
}

// Close closes the database.
func (s *SQLite) Close() error {
	var err error
	if s.r != nil {
		err = s.r.Close()
	}
	return errors.Join(err, s.w.Close())
}

// ---- migrations ----------------------------------------------------------------

type migration struct {
	version int
	name    string
	sql     string
}

// migrations reads the embedded migrations/NNNN_name.sql files in order.
func migrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range entries {
		num, _, _ := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: the name must start with a positive version number", e.Name())
		}
		b, err := migrationFiles.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(b)})
	}
	slices.SortFunc(ms, func(a, b migration) int { return a.version - b.version })
	return ms, nil
}

// migrate applies the migrations the database lacks, each in a transaction
// with the row that records it, so a crash never leaves one half applied.
// Each transaction reads the version again: another process may have
// migrated in the meantime.
func (s *SQLite) migrate(ctx context.Context) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	if _, err := s.w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY,
		applied INTEGER NOT NULL
	) STRICT`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	latest := ms[len(ms)-1].version
	for _, m := range ms {
		err := s.write(ctx, func(tx *sql.Tx) error {
			var have int
			if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
				return err
			}
			if have > latest {
				return fmt.Errorf("the database has schema version %d but this ferry knows versions up to %d: upgrade ferry", have, latest)
			}
			if have >= m.version {
				return nil
			}
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return fmt.Errorf("migration %s: %w", m.name, err)
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied) VALUES (?, ?)`, m.version, now().UnixNano())
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// ---- transactions --------------------------------------------------------------

// write runs fn in a write transaction: all of it is committed or none.
func (s *SQLite) write(ctx context.Context, fn func(*sql.Tx) error) (err error) {
	defer func() {
		if err != nil {
			s.writeErrors.count(err)
		}
	}()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return auditFailed(ctx, err)
	}
	var ev *pendingEvent
	err = fn(tx)
	switch {
	case errors.Is(err, errNoEntry):
		err = nil
	case err == nil:
		ev, err = appendPending(ctx, tx)
	}
	if err != nil {
		tx.Rollback()
		if isFull(err) {
			return auditFailed(ctx, err)
		}
		return err
	}
	if err := tx.Commit(); err != nil {
		return auditFailed(ctx, err)
	}
	if ev != nil {
		ev.done()
	}
	return nil
}

// auditFailed is err of a change that was not made; when the change
// carried an audit entry, the entry was not written either, and the
// caller learns it from an *AuditError.
func auditFailed(ctx context.Context, err error) error {
	var ae *AuditError
	if errors.As(err, &ae) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		// why: a caller that gave up is told so, not to free space.
		return err
	}
	if p, _ := ctx.Value(eventKey{}).(*pendingEvent); p != nil {
		p.mu.Lock()
		defer p.mu.Unlock()
		if !p.written {
			return &AuditError{Event: p.refusal(), Err: err}
		}
	}
	return err
}

// read runs fn in a read transaction, so that what it reads is one snapshot.
func (s *SQLite) read(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer tx.Rollback()
	return fn(tx)
}

// querier is a *sql.DB or a *sql.Tx.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

type scanner interface{ Scan(dest ...any) error }

// list runs query and scans every row. It returns an empty slice, not nil,
// when there are none, so that a list encodes as [] rather than null.
func list[T any](ctx context.Context, q querier, scan func(scanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// isForeignKey reports whether err broke a REFERENCES rule: the row
// referred to does not exist.
func isForeignKey(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && e.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
}

// isUnique reports whether err broke a UNIQUE rule.
func isUnique(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && (e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || e.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY)
}

// where joins conditions with AND; none gives "".
func where(conds []string) string {
	if len(conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(conds, " AND ")
}

// filter gathers the conditions of a Find query and their arguments.
type filter struct {
	conds []string
	args  []any
}

// eq adds "col = v" when v is not its type's zero value.
func eq[T comparable](f *filter, col string, v T) {
	var zero T
	if v != zero {
		f.conds = append(f.conds, col+" = ?")
		f.args = append(f.args, v)
	}
}

// in adds "col IN (vs…)" when vs is not empty.
func in(f *filter, col string, vs []string) {
	if len(vs) == 0 {
		return
	}
	f.conds = append(f.conds, col+" IN (?"+strings.Repeat(", ?", len(vs)-1)+")")
	for _, v := range vs {
		f.args = append(f.args, v)
	}
}

func (f *filter) where() string { return where(f.conds) }

// ---- times -----------------------------------------------------------------------

// now is the current time in UTC, without the monotonic reading, so it is
// equal to what reading it back gives.
func now() time.Time { return time.Now().UTC() }

// orNow is t in UTC, or now when t is zero.
func orNow(t time.Time) time.Time {
	if t.IsZero() {
		return now()
	}
	return t.UTC()
}

// utc is t in UTC; the zero time stays zero.
func utc(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC()
}

// unixNano is how a time is stored: nanoseconds since 1970 UTC, or NULL for
// the zero time, which int64 nanoseconds cannot express.
func unixNano(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixNano()
}

// timeCol scans a column that unixNano wrote.
type timeCol struct{ t *time.Time }

func at(t *time.Time) timeCol { return timeCol{t} }

func (c timeCol) Scan(v any) error {
	switch v := v.(type) {
	case nil:
		*c.t = time.Time{}
	case int64:
		*c.t = time.Unix(0, v).UTC()
	default:
		return fmt.Errorf("a time column holds %T", v)
	}
	return nil
}

// ---- paging ----------------------------------------------------------------------

func (p Page) limit() int {
	switch {
	case p.Limit <= 0:
		return DefaultPageSize
	case p.Limit > MaxPageSize:
		return MaxPageSize
	}
	return p.Limit
}

// paged completes the SELECT query for one page of a table whose key is
// idCol, newest first: rows whose col equals val (every row when val is
// "") with a key below p.Before.
func paged(query, idCol, col, val string, p Page) (string, []any) {
	before := p.Before
	if before <= 0 {
		before = math.MaxInt64
	}
	query += " WHERE " + idCol + " < ?"
	args := []any{before}
	if val != "" {
		query += " AND " + col + " = ?"
		args = append(args, val)
	}
	return query + " ORDER BY " + idCol + " DESC LIMIT ?", append(args, p.limit())
}
