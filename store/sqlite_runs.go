package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

const runCols = `id, source, branch, commit_id, status, reason, release_id, created, started, ended, store_failed, pull_request`

func scanRun(sc scanner) (Run, error) {
	var r Run
	err := sc.Scan(&r.ID, &r.Source, &r.Branch, &r.Commit, &r.Status, &r.Reason, &r.Release, at(&r.Created), at(&r.Started), at(&r.Ended), &r.InfraFailed, &r.PullRequest)
	return r, err
}

const stepCols = `run, name, position, status, reason, started, ended`

func scanStep(sc scanner) (Step, error) {
	var s Step
	err := sc.Scan(&s.RunID, &s.Name, &s.Index, &s.Status, &s.Reason, at(&s.Started), at(&s.Ended))
	return s, err
}

// loadRun reads run id with its steps.
func loadRun(ctx context.Context, q querier, id int64) (Run, error) {
	r, err := scanRun(q.QueryRowContext(ctx, `SELECT `+runCols+` FROM runs WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Run{}, fmt.Errorf("run %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Run{}, fmt.Errorf("get run %d: %w", id, err)
	}
	if r.Steps, err = loadSteps(ctx, q, id); err != nil {
		return Run{}, err
	}
	return r, nil
}

func loadSteps(ctx context.Context, q querier, run int64) ([]Step, error) {
	steps, err := list(ctx, q, scanStep, `SELECT `+stepCols+` FROM steps WHERE run = ? ORDER BY position`, run)
	if err != nil {
		return nil, fmt.Errorf("get steps of run %d: %w", run, err)
	}
	return steps, nil
}

// CreateRun records a queued run with its steps, or returns the run of that
// commit, with created false, when there is one.
func (s *SQLite) CreateRun(ctx context.Context, r Run, steps []string) (Run, bool, error) {
	var run Run
	var created bool
	err := s.write(ctx, func(tx *sql.Tx) error {
		var id int64
		err := tx.QueryRowContext(ctx, `SELECT id FROM runs WHERE source = ? AND branch = ? AND commit_id = ?`,
			r.Source, r.Branch, r.Commit).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			id, err = insertRun(ctx, tx, r, steps)
			created = true
		}
		if err != nil {
			return fmt.Errorf("create run of %s %s at %s: %w", r.Source, r.Branch, r.Commit, err)
		}
		run, err = loadRun(ctx, tx, id)
		return err
	})
	if err != nil {
		return Run{}, false, err
	}
	return run, created, nil
}

func insertRun(ctx context.Context, tx *sql.Tx, r Run, steps []string) (int64, error) {
	res, err := tx.ExecContext(ctx, `INSERT INTO runs (source, branch, commit_id, status, reason, release_id, created, pull_request)
		VALUES (?, ?, ?, ?, '', '', ?, ?)`, r.Source, r.Branch, r.Commit, StatusQueued, unixNano(orNow(r.Created)), r.PullRequest)
	if err != nil {
		return 0, err
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, err
	}
	for i, name := range steps {
		if _, err := tx.ExecContext(ctx, `INSERT INTO steps (run, name, position, status, reason) VALUES (?, ?, ?, ?, '')`,
			id, name, i, StatusQueued); err != nil {
			return 0, fmt.Errorf("step %q: %w", name, err)
		}
	}
	return id, nil
}

// GetRun returns a run with its steps in order.
func (s *SQLite) GetRun(ctx context.Context, id int64) (Run, error) {
	var run Run
	err := s.read(ctx, func(tx *sql.Tx) (err error) {
		run, err = loadRun(ctx, tx, id)
		return err
	})
	return run, err
}

// ListRuns lists runs newest first, without their steps; source "" lists
// every source's.
func (s *SQLite) ListRuns(ctx context.Context, source string, page Page) ([]Run, error) {
	q, args := paged(`SELECT `+runCols+` FROM runs`, "id", "source", source, page)
	runs, err := list(ctx, s.r, scanRun, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list runs of %q: %w", source, err)
	}
	return runs, nil
}

// UnfinishedRuns lists runs queued or running, oldest first, with their
// steps, which is what resuming them needs.
func (s *SQLite) UnfinishedRuns(ctx context.Context) ([]Run, error) {
	var runs []Run
	err := s.read(ctx, func(tx *sql.Tx) (err error) {
		runs, err = list(ctx, tx, scanRun, `SELECT `+runCols+` FROM runs WHERE status IN (?, ?) ORDER BY id`, StatusQueued, StatusRunning)
		if err != nil {
			return fmt.Errorf("list unfinished runs: %w", err)
		}
		for i := range runs {
			if runs[i].Steps, err = loadSteps(ctx, tx, runs[i].ID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return runs, nil
}

// UpdateRun sets a run's status, reason, release and times.
func (s *SQLite) UpdateRun(ctx context.Context, r Run) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE runs SET status = ?, reason = ?, release_id = ?, started = ?, ended = ?, store_failed = ? WHERE id = ?`,
			r.Status, r.Reason, r.Release, unixNano(r.Started), unixNano(r.Ended), r.InfraFailed, r.ID)
		if err != nil {
			return fmt.Errorf("update run %d: %w", r.ID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("run %d: %w", r.ID, ErrNotFound)
		}
		return nil
	})
}

// UpdateStep sets a step's status, reason and times.
func (s *SQLite) UpdateStep(ctx context.Context, st Step) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE steps SET status = ?, reason = ?, started = ?, ended = ? WHERE run = ? AND name = ?`,
			st.Status, st.Reason, unixNano(st.Started), unixNano(st.Ended), st.RunID, st.Name)
		if err != nil {
			return fmt.Errorf("update step %q of run %d: %w", st.Name, st.RunID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("step %q of run %d: %w", st.Name, st.RunID, ErrNotFound)
		}
		return nil
	})
}

// AppendLog adds lines to a step's log, all at the current time; ErrNotFound
// when there is no such run.
func (s *SQLite) AppendLog(ctx context.Context, runID int64, step string, lines ...string) error {
	t := unixNano(now())
	return s.write(ctx, func(tx *sql.Tx) error {
		for _, line := range lines {
			_, err := tx.ExecContext(ctx, `INSERT INTO logs (run, step, at, line) VALUES (?, ?, ?, ?)`, runID, step, t, line)
			if isForeignKey(err) {
				return fmt.Errorf("run %d: %w", runID, ErrNotFound)
			}
			if err != nil {
				return fmt.Errorf("append to log of run %d: %w", runID, err)
			}
		}
		return nil
	})
}

// Logs returns the run's lines with Seq > after, at most limit (0: all).
func (s *SQLite) Logs(ctx context.Context, runID int64, after int64, limit int) ([]LogLine, error) {
	if limit <= 0 {
		limit = -1 // SQLite's "no limit"
	}
	lines, err := list(ctx, s.r, func(sc scanner) (LogLine, error) {
		var l LogLine
		err := sc.Scan(&l.Seq, &l.Step, at(&l.At), &l.Text)
		return l, err
	}, `SELECT seq, step, at, line FROM logs WHERE run = ? AND seq > ? ORDER BY seq LIMIT ?`, runID, after, limit)
	if err != nil {
		return nil, fmt.Errorf("logs of run %d: %w", runID, err)
	}
	return lines, nil
}
