package store

import (
	"context"
	"fmt"
	"strings"
)

// Short ids: the tables print 12 hex characters of a release id or an
// image digest, and every command that takes one accepts any unique
// prefix of it. These queries find the candidates.

// MinPrefix is the fewest hex characters a prefix may have: fewer would
// match half the store and name nothing.
const MinPrefix = 4

// checkPrefix refuses what is not lower-case hex of at least MinPrefix
// characters, so that a prefix can never be a pattern.
func checkPrefix(hex string) error {
	if len(hex) < MinPrefix || len(hex) > 64 {
		return fmt.Errorf("prefix %q: give %d to 64 hex characters", hex, MinPrefix)
	}
	for _, c := range hex {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return fmt.Errorf("prefix %q: only 0-9 and a-f are hex", hex)
		}
	}
	return nil
}

// ReleasesByPrefix lists at most limit releases whose id starts with
// sha256:hex, oldest first. A range on id (which has a unique index)
// finds them without a scan.
func (s *SQLite) ReleasesByPrefix(ctx context.Context, hex string, limit int) ([]Release, error) {
	if err := checkPrefix(hex); err != nil {
		return nil, err
	}
	// why: every id below sha256:<hex>g and at or above sha256:<hex> starts
	// with it, as 'g' sorts after every hex digit.
	lo := "sha256:" + hex
	rels, err := list(ctx, s.r, scanRelease, `SELECT `+releaseCols+` FROM releases WHERE id >= ? AND id < ? ORDER BY seq LIMIT ?`, lo, lo+"g", limit)
	if err != nil {
		return nil, fmt.Errorf("releases starting with %s: %w", hex, err)
	}
	return rels, nil
}

// BuildsByPrefix lists at most limit builds of source's function whose
// image digest starts with sha256:hex, newest first, one per image (its
// newest build). The primary key's (source) prefix narrows the rows; the
// digest is matched within them.
func (s *SQLite) BuildsByPrefix(ctx context.Context, source, function, hex string, limit int) ([]Build, error) {
	if err := checkPrefix(hex); err != nil {
		return nil, err
	}
	pattern := "%@sha256:" + escapeLike(hex) + "%"
	// why: a function that does not change has one build per commit, all
	// of one image; limit rows of it would hide an older image the prefix
	// also names, and an ambiguous prefix would name one image. With max(),
	// SQLite takes the other columns from the newest row of each image.
	builds, err := list(ctx, s.r, scanBuild, `SELECT source, commit_id, function, cache_key, image, cached, max(at) FROM builds
		WHERE source = ? AND function = ? AND image LIKE ? ESCAPE '\' GROUP BY image ORDER BY max(at) DESC LIMIT ?`,
		source, function, pattern, limit)
	if err != nil {
		return nil, fmt.Errorf("builds of %s's %s starting with %s: %w", source, function, hex, err)
	}
	return builds, nil
}

// escapeLike makes s match itself in a LIKE pattern with ESCAPE '\'.
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}
