package server

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/ferrycd/ferry/store"
)

// Short ids: the tables print 12 hex characters of release ids and image
// digests, so every endpoint that takes one takes any unique prefix of
// it (at least store.MinPrefix characters, "sha256:" optional). A prefix
// that names more than one answers 409 with the candidates, one that
// names none 404; a whole id, or a HOST/REPO@sha256:… reference, is
// passed on as given (a rollback may pull a release the store does not
// hold).

// maxCandidates bounds the candidates an ambiguous prefix lists.
const maxCandidates = 10

// hexPart returns s without "sha256:" when the rest is lower-case hex,
// and whether it is a whole digest (64 characters).
func hexPart(s string) (hex string, whole, ok bool) {
	hex = strings.TrimPrefix(s, "sha256:")
	if hex == "" || len(hex) > 64 || strings.Trim(hex, "0123456789abcdef") != "" {
		return "", false, false
	}
	return hex, len(hex) == 64, true
}

// resolveRelease turns what a caller gave for a release into its id.
func (a *api) resolveRelease(ctx context.Context, s string) (string, error) {
	if s == "" || strings.Contains(s, "@") {
		return s, nil
	}
	hex, whole, ok := hexPart(s)
	if !ok {
		return "", badRequest("release %q: give its id (sha256:… or a prefix of its hex, as ferry releases prints it)", s)
	}
	if whole {
		return "sha256:" + hex, nil
	}
	if len(hex) < store.MinPrefix {
		return "", badRequest("release %q: give at least %d hex characters of its id", s, store.MinPrefix)
	}
	rels, err := a.cfg.Store.ReleasesByPrefix(ctx, hex, maxCandidates+1)
	if err != nil {
		return "", err
	}
	switch len(rels) {
	case 0:
		return "", &apiError{http.StatusNotFound, fmt.Sprintf("no release id starts with %s (ferry releases lists them)", hex)}
	case 1:
		return rels[0].ID, nil
	}
	var lines []string
	for _, r := range rels[:min(len(rels), maxCandidates)] {
		lines = append(lines, fmt.Sprintf("  %s  %s at %s", strings.TrimPrefix(r.ID, "sha256:"), r.Source, store.Short(r.Commit)))
	}
	return "", ambiguous("release", hex, lines, len(rels) > maxCandidates)
}

// resolveImage turns what a caller gave for function's image in env into
// sha256:…: a prefix is looked up among the images ferry built for the
// source of env's live release (the only ones a rollback may pin).
func (a *api) resolveImage(ctx context.Context, env, function, s string) (string, error) {
	if s == "" || strings.Contains(s, "@") {
		return s, nil
	}
	hex, whole, ok := hexPart(s)
	if !ok {
		return "", badRequest("image %q is not an image by digest (a tag can move); give its digest (sha256:…, a prefix of its hex, or HOST/REPO@sha256:…)", s)
	}
	if whole {
		return "sha256:" + hex, nil
	}
	if len(hex) < store.MinPrefix {
		return "", badRequest("image %q: give at least %d hex characters of its digest", s, store.MinPrefix)
	}
	e, err := a.cfg.Store.GetEnvironment(ctx, env)
	if err != nil {
		return "", err
	}
	if e.Release == "" {
		return "", &apiError{http.StatusConflict, fmt.Sprintf("%s runs no release yet, so there is no function %s to pin", env, function)}
	}
	rel, err := a.cfg.Store.GetRelease(ctx, e.Release)
	if err != nil {
		return "", err
	}
	builds, err := a.cfg.Store.BuildsByPrefix(ctx, rel.Source, function, hex, 100)
	if err != nil {
		return "", err
	}
	var digests, lines []string
	for _, b := range builds {
		_, d, _ := strings.Cut(b.Image, "@")
		if !slices.Contains(digests, d) {
			digests = append(digests, d)
			lines = append(lines, fmt.Sprintf("  %s  built at %s", strings.TrimPrefix(d, "sha256:"), store.Short(b.Commit)))
		}
	}
	switch len(digests) {
	case 0:
		return "", &apiError{http.StatusNotFound, fmt.Sprintf("ferry built no image of %s (source %s) whose digest starts with %s", function, rel.Source, hex)}
	case 1:
		return digests[0], nil
	}
	return "", ambiguous("image of "+function, hex, lines[:min(len(lines), maxCandidates)], len(lines) > maxCandidates)
}

func ambiguous(what, hex string, lines []string, more bool) error {
	msg := fmt.Sprintf("%s prefix %s is ambiguous; give more characters of one of:\n%s", what, hex, strings.Join(lines, "\n"))
	if more {
		msg += "\n  …"
	}
	return &apiError{http.StatusConflict, msg}
}
