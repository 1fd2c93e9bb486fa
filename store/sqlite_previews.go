package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

var _ Previews = (*SQLite)(nil)

const previewCols = `source, number, environment, head_commit, state, reason, fork, approved, author, title, web_url, release_id, ttl_ns, created, activity, torn_down, torn_reason`

func scanPreview(sc scanner) (Preview, error) {
	var p Preview
	var ttl int64
	err := sc.Scan(&p.Source, &p.Number, &p.Environment, &p.Head, &p.State, &p.Reason, &p.Fork, &p.Approved,
		&p.Author, &p.Title, &p.WebURL, &p.Release, &ttl, at(&p.Created), at(&p.Activity), at(&p.TornDown), &p.TornReason)
	p.TTL = time.Duration(ttl)
	return p, err
}

// PutPreview implements Previews.
func (s *SQLite) PutPreview(ctx context.Context, p Preview) error {
	if p.Source == "" || p.Number <= 0 || p.Environment == "" || p.State == "" {
		return fmt.Errorf("preview %s #%d: a preview needs a source, a number, an environment and a state", p.Source, p.Number)
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO previews (`+previewCols+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			p.Source, p.Number, p.Environment, p.Head, p.State, p.Reason, p.Fork, p.Approved,
			p.Author, p.Title, p.WebURL, p.Release, int64(p.TTL), unixNano(orNow(p.Created)), unixNano(orNow(p.Activity)),
			unixNano(p.TornDown), p.TornReason)
		return err
	})
	if err != nil {
		return fmt.Errorf("record preview %s of %s #%d: %w", p.Environment, p.Source, p.Number, err)
	}
	return nil
}

// GetPreview implements Previews.
func (s *SQLite) GetPreview(ctx context.Context, source string, number int) (Preview, error) {
	p, err := scanPreview(s.r.QueryRowContext(ctx, `SELECT `+previewCols+` FROM previews WHERE source = ? AND number = ?`, source, number))
	if errors.Is(err, sql.ErrNoRows) {
		return Preview{}, fmt.Errorf("preview of %s #%d: %w", source, number, ErrNotFound)
	}
	if err != nil {
		return Preview{}, fmt.Errorf("get preview of %s #%d: %w", source, number, err)
	}
	return p, nil
}

// ListPreviews implements Previews.
func (s *SQLite) ListPreviews(ctx context.Context) ([]Preview, error) {
	ps, err := list(ctx, s.r, scanPreview, `SELECT `+previewCols+` FROM previews ORDER BY source, number`)
	if err != nil {
		return nil, fmt.Errorf("list previews: %w", err)
	}
	return ps, nil
}
