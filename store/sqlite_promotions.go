package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

const promotionCols = `id, release_id, environment, status, requester, reason, pinned, created, updated`

func scanPromotion(sc scanner) (Promotion, error) {
	var p Promotion
	err := sc.Scan(&p.ID, &p.Release, &p.Environment, &p.Status, &p.Requester, &p.Reason, &p.Pinned, at(&p.Created), at(&p.Updated))
	return p, err
}

// CreatePromotion records p; Created defaults to now, Updated to Created.
func (s *SQLite) CreatePromotion(ctx context.Context, p Promotion) (Promotion, error) {
	p.Created = orNow(p.Created)
	if p.Updated.IsZero() {
		p.Updated = p.Created
	}
	p.Updated = p.Updated.UTC()
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO promotions (release_id, environment, status, requester, reason, pinned, created, updated)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			p.Release, p.Environment, p.Status, p.Requester, p.Reason, p.Pinned, unixNano(p.Created), unixNano(p.Updated))
		if err != nil {
			return err
		}
		p.ID, err = res.LastInsertId()
		return err
	})
	if err != nil {
		return Promotion{}, fmt.Errorf("create promotion of %s to %q: %w", p.Release, p.Environment, err)
	}
	return p, nil
}

func (s *SQLite) GetPromotion(ctx context.Context, id int64) (Promotion, error) {
	p, err := scanPromotion(s.r.QueryRowContext(ctx, `SELECT `+promotionCols+` FROM promotions WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Promotion{}, fmt.Errorf("promotion %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Promotion{}, fmt.Errorf("get promotion %d: %w", id, err)
	}
	return p, nil
}

// UpdatePromotion sets p's status and reason, and Updated to now, when its
// status is still from; ErrConflict when someone changed it first.
func (s *SQLite) UpdatePromotion(ctx context.Context, p Promotion, from string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		var status string
		err := tx.QueryRowContext(ctx, `SELECT status FROM promotions WHERE id = ?`, p.ID).Scan(&status)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("promotion %d: %w", p.ID, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("update promotion %d: %w", p.ID, err)
		}
		if status != from {
			return fmt.Errorf("promotion %d is %s, not %s: %w", p.ID, status, from, ErrConflict)
		}
		_, err = tx.ExecContext(ctx, `UPDATE promotions SET status = ?, reason = ?, updated = ? WHERE id = ?`,
			p.Status, p.Reason, unixNano(now()), p.ID)
		if err != nil {
			return fmt.Errorf("update promotion %d: %w", p.ID, err)
		}
		return nil
	})
}

// ListPromotions lists promotions newest first; env "" lists every
// environment's.
func (s *SQLite) ListPromotions(ctx context.Context, env string, page Page) ([]Promotion, error) {
	q, args := paged(`SELECT `+promotionCols+` FROM promotions`, "id", "environment", env, page)
	ps, err := list(ctx, s.r, scanPromotion, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list promotions of %q: %w", env, err)
	}
	return ps, nil
}

const approvalCols = `id, promotion, actor, approve, comment, at`

func scanApproval(sc scanner) (Approval, error) {
	var a Approval
	err := sc.Scan(&a.ID, &a.Promotion, &a.Actor, &a.Approve, &a.Comment, at(&a.At))
	return a, err
}

// AddApproval records a; ErrNotFound when there is no such promotion.
func (s *SQLite) AddApproval(ctx context.Context, a Approval) (Approval, error) {
	a.At = orNow(a.At)
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO approvals (promotion, actor, approve, comment, at) VALUES (?, ?, ?, ?, ?)`,
			a.Promotion, a.Actor, a.Approve, a.Comment, unixNano(a.At))
		if isForeignKey(err) {
			return fmt.Errorf("promotion %d: %w", a.Promotion, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("add approval to promotion %d: %w", a.Promotion, err)
		}
		a.ID, err = res.LastInsertId()
		return err
	})
	if err != nil {
		return Approval{}, err
	}
	return a, nil
}

// ListApprovals lists a promotion's approvals oldest first.
func (s *SQLite) ListApprovals(ctx context.Context, promotion int64) ([]Approval, error) {
	as, err := list(ctx, s.r, scanApproval, `SELECT `+approvalCols+` FROM approvals WHERE promotion = ? ORDER BY id`, promotion)
	if err != nil {
		return nil, fmt.Errorf("list approvals of promotion %d: %w", promotion, err)
	}
	return as, nil
}
