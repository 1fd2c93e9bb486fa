package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
)

const promotionCols = `id, release_id, environment, status, requester, reason, pinned, created, updated, run, parent, deployment`

func scanPromotion(sc scanner) (Promotion, error) {
	var p Promotion
	err := sc.Scan(&p.ID, &p.Release, &p.Environment, &p.Status, &p.Requester, &p.Reason, &p.Pinned, at(&p.Created), at(&p.Updated),
		&p.RunID, &p.Parent, &p.Deployment)
	return p, err
}

// errActive is what breaking the one-active-promotion rule says.
func errActive(env string) error {
	return fmt.Errorf("another promotion is deploying to %q: %w", env, ErrConflict)
}

// CreatePromotion records p; Created defaults to now, Updated to Created.
// ErrConflict when p is deploying or verifying and another promotion of
// its environment is too.
func (s *SQLite) CreatePromotion(ctx context.Context, p Promotion) (Promotion, error) {
	p.Created = orNow(p.Created)
	if p.Updated.IsZero() {
		p.Updated = p.Created
	}
	p.Updated = p.Updated.UTC()
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO promotions (release_id, environment, status, requester, reason, pinned, created, updated, run, parent, deployment)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			p.Release, p.Environment, p.Status, p.Requester, p.Reason, p.Pinned, unixNano(p.Created), unixNano(p.Updated),
			p.RunID, p.Parent, p.Deployment)
		if isUnique(err) {
			return errActive(p.Environment)
		}
		if err != nil {
			return err
		}
		p.ID, err = res.LastInsertId()
		created(ctx, p.ID)
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
// status is still from; ErrConflict when someone changed it first, or when
// p would deploy while another promotion of its environment does.
func (s *SQLite) UpdatePromotion(ctx context.Context, p Promotion, from string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := setPromotion(ctx, tx, p, []string{from})
		return err
	})
}

// setPromotion sets p's status and reason, and its deployment when p has
// one, when its status is one of from, and returns the stored row.
func setPromotion(ctx context.Context, tx *sql.Tx, p Promotion, from []string) (Promotion, error) {
	cur, err := scanPromotion(tx.QueryRowContext(ctx, `SELECT `+promotionCols+` FROM promotions WHERE id = ?`, p.ID))
	if errors.Is(err, sql.ErrNoRows) {
		return Promotion{}, fmt.Errorf("promotion %d: %w", p.ID, ErrNotFound)
	}
	if err != nil {
		return Promotion{}, fmt.Errorf("update promotion %d: %w", p.ID, err)
	}
	if !slices.Contains(from, cur.Status) {
		return Promotion{}, fmt.Errorf("promotion %d is %s, not %s: %w", p.ID, cur.Status, strings.Join(from, " or "), ErrConflict)
	}
	cur.Status, cur.Reason, cur.Updated = p.Status, p.Reason, now()
	if p.Deployment != 0 {
		cur.Deployment = p.Deployment
	}
	_, err = tx.ExecContext(ctx, `UPDATE promotions SET status = ?, reason = ?, deployment = ?, updated = ? WHERE id = ?`,
		cur.Status, cur.Reason, cur.Deployment, unixNano(cur.Updated), p.ID)
	if isUnique(err) {
		return Promotion{}, fmt.Errorf("promotion %d: %w", p.ID, errActive(cur.Environment))
	}
	if err != nil {
		return Promotion{}, fmt.Errorf("update promotion %d: %w", p.ID, err)
	}
	return cur, nil
}

// ChangePromotion moves a promotion on with what it did, in one
// transaction.
func (s *SQLite) ChangePromotion(ctx context.Context, c PromotionChange) (Promotion, Deployment, error) {
	var p Promotion
	var rec Deployment
	err := s.write(ctx, func(tx *sql.Tx) error {
		p = c.Promotion
		var err error
		if c.Record != nil {
			if rec, err = recordDeployment(ctx, tx, *c.Record); err != nil {
				return fmt.Errorf("record deployment of %s to %q: %w", c.Record.Release, c.Record.Environment, err)
			}
			if p.Deployment == 0 {
				p.Deployment = rec.ID
			}
		}
		if c.Update != nil {
			if err := updateDeployment(ctx, tx, *c.Update); err != nil {
				return fmt.Errorf("update deployment %d: %w", c.Update.ID, err)
			}
		}
		p, err = setPromotion(ctx, tx, p, []string{c.From})
		return err
	})
	if err != nil {
		return Promotion{}, Deployment{}, err
	}
	return p, rec, nil
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

// FindPromotions lists the promotions q selects, oldest first.
func (s *SQLite) FindPromotions(ctx context.Context, q PromotionQuery) ([]Promotion, error) {
	var f filter
	eq(&f, "environment", q.Environment)
	eq(&f, "release_id", q.Release)
	eq(&f, "run", q.RunID)
	eq(&f, "parent", q.Parent)
	in(&f, "status", q.Statuses)
	ps, err := list(ctx, s.r, scanPromotion, `SELECT `+promotionCols+` FROM promotions`+f.where()+` ORDER BY id`, f.args...)
	if err != nil {
		return nil, fmt.Errorf("find promotions %+v: %w", q, err)
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
		var err error
		a.ID, err = insertApproval(ctx, tx, a)
		return err
	})
	if err != nil {
		return Approval{}, err
	}
	return a, nil
}

func insertApproval(ctx context.Context, tx *sql.Tx, a Approval) (int64, error) {
	res, err := tx.ExecContext(ctx, `INSERT INTO approvals (promotion, actor, approve, comment, at) VALUES (?, ?, ?, ?, ?)`,
		a.Promotion, a.Actor, a.Approve, a.Comment, unixNano(a.At))
	if isForeignKey(err) {
		return 0, fmt.Errorf("promotion %d: %w", a.Promotion, ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("add approval to promotion %d: %w", a.Promotion, err)
	}
	return res.LastInsertId()
}

// Decide records a when its promotion's status is one of from and, when
// status is not "", sets the promotion's status and reason, in one
// transaction. At defaults to now.
func (s *SQLite) Decide(ctx context.Context, a Approval, from []string, status, reason string) (Approval, error) {
	a.At = orNow(a.At)
	err := s.write(ctx, func(tx *sql.Tx) error {
		var cur string
		err := tx.QueryRowContext(ctx, `SELECT status FROM promotions WHERE id = ?`, a.Promotion).Scan(&cur)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("promotion %d: %w", a.Promotion, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("decide on promotion %d: %w", a.Promotion, err)
		}
		if !slices.Contains(from, cur) {
			return fmt.Errorf("promotion %d is %s, not %s: %w", a.Promotion, cur, strings.Join(from, " or "), ErrConflict)
		}
		if a.ID, err = insertApproval(ctx, tx, a); err != nil {
			return err
		}
		if status == "" {
			return nil
		}
		_, err = tx.ExecContext(ctx, `UPDATE promotions SET status = ?, reason = ?, updated = ? WHERE id = ?`,
			status, reason, unixNano(now()), a.Promotion)
		if err != nil {
			return fmt.Errorf("decide on promotion %d: %w", a.Promotion, err)
		}
		return nil
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
