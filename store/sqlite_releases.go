package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

const buildCols = `source, commit_id, function, cache_key, image, cached, at`

func scanBuild(sc scanner) (Build, error) {
	var b Build
	err := sc.Scan(&b.Source, &b.Commit, &b.Function, &b.Key, &b.Image, &b.Cached, at(&b.At))
	return b, err
}

// PutBuilds records builds in one transaction. A function built again at
// the same commit (a run resumed after a restart) replaces its record.
func (s *SQLite) PutBuilds(ctx context.Context, builds []Build) error {
	t := now()
	return s.write(ctx, func(tx *sql.Tx) error {
		for _, b := range builds {
			if b.At.IsZero() {
				b.At = t
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO builds (`+buildCols+`) VALUES (?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (source, commit_id, function) DO UPDATE SET cache_key = excluded.cache_key,
					image = excluded.image, cached = excluded.cached, at = excluded.at`,
				b.Source, b.Commit, b.Function, b.Key, b.Image, b.Cached, unixNano(b.At))
			if err != nil {
				return fmt.Errorf("put build of %s at %s: %w", b.Function, b.Commit, err)
			}
		}
		return nil
	})
}

// ListBuilds lists the builds of a commit by function name.
func (s *SQLite) ListBuilds(ctx context.Context, source, commit string) ([]Build, error) {
	builds, err := list(ctx, s.r, scanBuild, `SELECT `+buildCols+` FROM builds WHERE source = ? AND commit_id = ? ORDER BY function`, source, commit)
	if err != nil {
		return nil, fmt.Errorf("list builds of %s at %s: %w", source, commit, err)
	}
	return builds, nil
}

// BuildsWithDigest lists the builds of source whose image ends in
// @digest, newest first. The primary key's source prefix finds the
// source's builds; a source has a few per commit.
func (s *SQLite) BuildsWithDigest(ctx context.Context, source, digest string) ([]Build, error) {
	if !strings.HasPrefix(digest, "sha256:") || strings.ContainsAny(digest, "%_") {
		// why: the digest goes into a LIKE pattern, where % and _ match
		// anything.
		return nil, fmt.Errorf("builds of %s with digest %q: not a sha256:… digest", source, digest)
	}
	builds, err := list(ctx, s.r, scanBuild, `SELECT `+buildCols+` FROM builds WHERE source = ? AND image LIKE ? ORDER BY at DESC`, source, "%@"+digest)
	if err != nil {
		return nil, fmt.Errorf("list builds of %s with digest %s: %w", source, digest, err)
	}
	return builds, nil
}

const releaseCols = `seq, id, source, commit_id, ref, manifest, run, created, kind, based_on`

func scanRelease(sc scanner) (Release, error) {
	var r Release
	err := sc.Scan(&r.Seq, &r.ID, &r.Source, &r.Commit, &r.Ref, &r.Manifest, &r.RunID, at(&r.Created), &r.Kind, &r.BasedOn)
	return r, err
}

// PutRelease records rel, or returns the release of that ID, or for a
// pipeline release the pipeline release of that (source, commit), with
// created false, when there is one. Kind "" is ReleasePipeline.
func (s *SQLite) PutRelease(ctx context.Context, rel Release) (Release, bool, error) {
	rel.Created = orNow(rel.Created)
	if rel.Kind == "" {
		rel.Kind = ReleasePipeline
	}
	var stored Release
	var created bool
	err := s.write(ctx, func(tx *sql.Tx) error {
		var err error
		stored, err = scanRelease(tx.QueryRowContext(ctx, `SELECT `+releaseCols+` FROM releases
			WHERE id = ? OR (? AND kind = ? AND source = ? AND commit_id = ?) ORDER BY seq LIMIT 1`,
			rel.ID, rel.Kind == ReleasePipeline, ReleasePipeline, rel.Source, rel.Commit))
		if err == nil {
			// why: the entry ctx carries records a creation; a release
			// kept before has its own already.
			return errNoEntry
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO releases (id, source, commit_id, ref, manifest, run, created, kind, based_on)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			rel.ID, rel.Source, rel.Commit, rel.Ref, rel.Manifest, rel.RunID, unixNano(rel.Created), rel.Kind, rel.BasedOn)
		if err != nil {
			return err
		}
		rel.Seq, err = res.LastInsertId()
		stored, created = rel, true
		return err
	})
	if err != nil {
		return Release{}, false, fmt.Errorf("put release %s: %w", rel.ID, err)
	}
	return stored, created, nil
}

func (s *SQLite) GetRelease(ctx context.Context, id string) (Release, error) {
	rel, err := scanRelease(s.r.QueryRowContext(ctx, `SELECT `+releaseCols+` FROM releases WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Release{}, fmt.Errorf("release %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return Release{}, fmt.Errorf("get release %q: %w", id, err)
	}
	return rel, nil
}

// ReleaseForCommit returns the pipeline release made for a commit;
// ErrNotFound when none was.
func (s *SQLite) ReleaseForCommit(ctx context.Context, source, commit string) (Release, error) {
	rel, err := scanRelease(s.r.QueryRowContext(ctx, `SELECT `+releaseCols+` FROM releases WHERE kind = ? AND source = ? AND commit_id = ?`,
		ReleasePipeline, source, commit))
	if errors.Is(err, sql.ErrNoRows) {
		return Release{}, fmt.Errorf("release of %s at %s: %w", source, commit, ErrNotFound)
	}
	if err != nil {
		return Release{}, fmt.Errorf("get release of %s at %s: %w", source, commit, err)
	}
	return rel, nil
}

// ListReleases lists releases newest first, paged by Seq; source "" lists
// every source's.
func (s *SQLite) ListReleases(ctx context.Context, source string, page Page) ([]Release, error) {
	q, args := paged(`SELECT `+releaseCols+` FROM releases`, "seq", "source", source, page)
	rels, err := list(ctx, s.r, scanRelease, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list releases of %q: %w", source, err)
	}
	return rels, nil
}
