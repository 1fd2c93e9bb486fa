package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

const sourceCols = `name, url, branch, interval_ns, webhook_secret, username, password, ssh_key, from_config, created, timeout_ns`

func sourceArgs(s Source) []any {
	return []any{s.Name, s.URL, s.Branch, int64(s.Interval), s.WebhookSecret, s.Username, s.Password, s.SSHKey, s.FromConfig, unixNano(s.Created), int64(s.Timeout)}
}

func scanSource(sc scanner) (Source, error) {
	var s Source
	var interval, timeout int64
	err := sc.Scan(&s.Name, &s.URL, &s.Branch, &interval, &s.WebhookSecret, &s.Username, &s.Password, &s.SSHKey, &s.FromConfig, at(&s.Created), &timeout)
	s.Interval, s.Timeout = time.Duration(interval), time.Duration(timeout)
	return s, err
}

// PutSource adds a source or replaces the one of that name. A replaced
// source keeps its Created time and its status.
func (s *SQLite) PutSource(ctx context.Context, src Source) error {
	src.Created = orNow(src.Created)
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO sources (`+sourceCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET url = excluded.url, branch = excluded.branch,
				interval_ns = excluded.interval_ns, webhook_secret = excluded.webhook_secret,
				username = excluded.username, password = excluded.password, ssh_key = excluded.ssh_key,
				from_config = excluded.from_config, timeout_ns = excluded.timeout_ns`, sourceArgs(src)...)
		if err != nil {
			return fmt.Errorf("put source %q: %w", src.Name, err)
		}
		return nil
	})
}

// AddSource adds a source; ErrConflict when the name is taken.
func (s *SQLite) AddSource(ctx context.Context, src Source) error {
	src.Created = orNow(src.Created)
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO sources (`+sourceCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (name) DO NOTHING`, sourceArgs(src)...)
		if err != nil {
			return fmt.Errorf("add source %q: %w", src.Name, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("source %q exists already: %w", src.Name, ErrConflict)
		}
		return nil
	})
}

func (s *SQLite) GetSource(ctx context.Context, name string) (Source, error) {
	src, err := scanSource(s.r.QueryRowContext(ctx, `SELECT `+sourceCols+` FROM sources WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return Source{}, fmt.Errorf("source %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return Source{}, fmt.Errorf("get source %q: %w", name, err)
	}
	return src, nil
}

// ListSources lists sources by name.
func (s *SQLite) ListSources(ctx context.Context) ([]Source, error) {
	srcs, err := list(ctx, s.r, scanSource, `SELECT `+sourceCols+` FROM sources ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list sources: %w", err)
	}
	return srcs, nil
}

// DeleteSource removes a source and, by ON DELETE CASCADE, its status.
func (s *SQLite) DeleteSource(ctx context.Context, name string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM sources WHERE name = ?`, name)
		if err != nil {
			return fmt.Errorf("delete source %q: %w", name, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("source %q: %w", name, ErrNotFound)
		}
		return nil
	})
}

const statusCols = `source, last_commit, last_fetch, last_error, failures, next_fetch`

func scanStatus(sc scanner) (SourceStatus, error) {
	var st SourceStatus
	err := sc.Scan(&st.Source, &st.LastCommit, at(&st.LastFetch), &st.LastError, &st.Failures, at(&st.NextFetch))
	return st, err
}

// PutSourceStatus sets a source's status; ErrNotFound when there is no
// such source.
func (s *SQLite) PutSourceStatus(ctx context.Context, st SourceStatus) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO source_status (`+statusCols+`) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (source) DO UPDATE SET last_commit = excluded.last_commit, last_fetch = excluded.last_fetch,
				last_error = excluded.last_error, failures = excluded.failures, next_fetch = excluded.next_fetch`,
			st.Source, st.LastCommit, unixNano(st.LastFetch), st.LastError, st.Failures, unixNano(st.NextFetch))
		if isForeignKey(err) {
			return fmt.Errorf("source %q: %w", st.Source, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("put status of source %q: %w", st.Source, err)
		}
		return nil
	})
}

// GetSourceStatus returns a source's status; ErrNotFound when none was
// recorded yet.
func (s *SQLite) GetSourceStatus(ctx context.Context, name string) (SourceStatus, error) {
	st, err := scanStatus(s.r.QueryRowContext(ctx, `SELECT `+statusCols+` FROM source_status WHERE source = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return SourceStatus{}, fmt.Errorf("status of source %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return SourceStatus{}, fmt.Errorf("get status of source %q: %w", name, err)
	}
	return st, nil
}

const sourceEventCols = `id, source, branch, previous, commit_id, forced, at`

func scanSourceEvent(sc scanner) (SourceEvent, error) {
	var ev SourceEvent
	err := sc.Scan(&ev.ID, &ev.Source, &ev.Branch, &ev.Previous, &ev.Commit, &ev.Forced, at(&ev.At))
	return ev, err
}

// RecordSourceEvent stores ev and sets the source's LastCommit, creating
// its status when there is none; ErrNotFound when there is no such source.
func (s *SQLite) RecordSourceEvent(ctx context.Context, ev SourceEvent) (SourceEvent, error) {
	ev.At = orNow(ev.At)
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO source_status (source, last_commit) VALUES (?, ?)
			ON CONFLICT (source) DO UPDATE SET last_commit = excluded.last_commit`, ev.Source, ev.Commit)
		if isForeignKey(err) {
			return fmt.Errorf("source %q: %w", ev.Source, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("record event of source %q: %w", ev.Source, err)
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO source_events (source, branch, previous, commit_id, forced, at) VALUES (?, ?, ?, ?, ?, ?)`,
			ev.Source, ev.Branch, ev.Previous, ev.Commit, ev.Forced, unixNano(ev.At))
		if err != nil {
			return fmt.Errorf("record event of source %q: %w", ev.Source, err)
		}
		ev.ID, err = res.LastInsertId()
		return err
	})
	if err != nil {
		return SourceEvent{}, err
	}
	return ev, nil
}

// ListSourceEvents lists a source's events newest first; source "" lists
// every source's.
func (s *SQLite) ListSourceEvents(ctx context.Context, source string, page Page) ([]SourceEvent, error) {
	q, args := paged(`SELECT `+sourceEventCols+` FROM source_events`, "id", "source", source, page)
	evs, err := list(ctx, s.r, scanSourceEvent, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list events of source %q: %w", source, err)
	}
	return evs, nil
}
