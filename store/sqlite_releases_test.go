package store

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestBuilds(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	at := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	check(t, s.PutBuilds(ctx, []Build{
		{Source: "demo", Commit: "c1", Function: "zeta", Key: "k1", Image: "reg/zeta@sha256:1", At: at},
		{Source: "demo", Commit: "c1", Function: "alpha", Key: "k2", Image: "reg/alpha@sha256:2", Cached: true},
		{Source: "demo", Commit: "c2", Function: "alpha", Key: "k3", Image: "reg/alpha@sha256:3"},
	}))
	// Built again: the new record replaces the old.
	check(t, s.PutBuilds(ctx, []Build{{Source: "demo", Commit: "c1", Function: "zeta", Key: "k4", Image: "reg/zeta@sha256:4", At: at}}))
	got := must[[]Build](t)(s.ListBuilds(ctx, "demo", "c1"))
	if len(got) != 2 || got[0].At.IsZero() {
		t.Fatalf("ListBuilds = %+v, want two, At set", got)
	}
	same(t, "builds", got, []Build{
		{Source: "demo", Commit: "c1", Function: "alpha", Key: "k2", Image: "reg/alpha@sha256:2", Cached: true, At: got[0].At},
		{Source: "demo", Commit: "c1", Function: "zeta", Key: "k4", Image: "reg/zeta@sha256:4", At: at},
	})
	same(t, "builds of no commit", must[[]Build](t)(s.ListBuilds(ctx, "demo", "c9")), []Build{})

	// By digest: any repository and commit of the source, only that
	// source, only that whole digest.
	check(t, s.PutBuilds(ctx, []Build{
		{Source: "demo", Commit: "c3", Function: "beta", Key: "k5", Image: "other/beta@sha256:3", At: at.Add(time.Hour)},
		{Source: "shop", Commit: "c1", Function: "alpha", Key: "k6", Image: "reg/alpha@sha256:3"},
		{Source: "demo", Commit: "c4", Function: "alpha", Key: "k7", Image: "reg/alpha@sha256:33"},
	}))
	var images []string
	for _, b := range must[[]Build](t)(s.BuildsWithDigest(ctx, "demo", "sha256:3")) {
		images = append(images, b.Commit+" "+b.Image)
	}
	same(t, "builds of demo with sha256:3", images, []string{"c3 other/beta@sha256:3", "c2 reg/alpha@sha256:3"})
	same(t, "builds with no such digest", must[[]Build](t)(s.BuildsWithDigest(ctx, "demo", "sha256:9")), []Build{})
	for _, bad := range []string{"sha256:%", "sha256:_", "3", ""} {
		if _, err := s.BuildsWithDigest(ctx, "demo", bad); err == nil {
			t.Errorf("BuildsWithDigest(%q) took a digest that is a pattern or none", bad)
		}
	}
}

func TestReleases(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	r1 := Release{ID: "sha256:r1", Source: "demo", Commit: "c1", Ref: "reg/demo@sha256:r1", Manifest: []byte("kind: x"), RunID: 7}
	stored, created, err := s.PutRelease(ctx, r1)
	check(t, err)
	if !created || stored.Seq == 0 || stored.Created.IsZero() {
		t.Fatalf("PutRelease = %+v, %v: want a new release, Seq and Created set", stored, created)
	}
	r1 = stored
	same(t, "GetRelease", must[Release](t)(s.GetRelease(ctx, r1.ID)), r1)
	same(t, "ReleaseForCommit", must[Release](t)(s.ReleaseForCommit(ctx, "demo", "c1")), r1)

	// The same ID, or the same commit: the stored one, and no second row.
	for _, dup := range []Release{
		{ID: r1.ID, Source: "demo", Commit: "c9"},
		{ID: "sha256:other", Source: "demo", Commit: "c1"},
	} {
		got, created, err := s.PutRelease(ctx, dup)
		check(t, err)
		if created {
			t.Errorf("PutRelease(%+v) created a release", dup)
		}
		same(t, "duplicate release", got, r1)
	}
	r2, _, err := s.PutRelease(ctx, Release{ID: "sha256:r2", Source: "demo", Commit: "c2"})
	check(t, err)
	r3, _, err := s.PutRelease(ctx, Release{ID: "sha256:r3", Source: "other", Commit: "c1"})
	check(t, err)
	same(t, "ListReleases", must[[]Release](t)(s.ListReleases(ctx, "", Page{})), []Release{r3, r2, r1})
	same(t, "ListReleases of demo", must[[]Release](t)(s.ListReleases(ctx, "demo", Page{Before: r2.Seq})), []Release{r1})

	_, err = s.GetRelease(ctx, "sha256:nope")
	isErr(t, err, ErrNotFound, `release "sha256:nope": not found`)
	_, err = s.ReleaseForCommit(ctx, "demo", "c9")
	isErr(t, err, ErrNotFound, "release of demo at c9: not found")
}

// A release put with an entry keeps the entry when it creates the
// release, and writes none when the store held the release already.
func TestPutReleaseWritesItsEntryOnlyWhenItCreates(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	rel := Release{ID: "sha256:" + strings.Repeat("ab", 32), Source: "demo", Commit: strings.Repeat("c", 40), Ref: "reg/ferry@x"}
	for i := range 2 {
		ev := Event{Actor: "ferry", Action: "release.create", Object: "release/" + rel.ID, Detail: fmt.Sprintf("put %d", i)}
		if _, created, err := s.PutRelease(WithEvent(ctx, ev), rel); err != nil || created != (i == 0) {
			t.Fatalf("put %d: created %v, %v", i, created, err)
		}
	}
	evs, err := s.ListEvents(ctx, "release/"+rel.ID, Page{})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Detail != "put 0" {
		t.Errorf("entries %+v, want the first put's only", evs)
	}
}
