package store

import (
	"testing"
	"time"
)

func TestSources(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	created := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	demo := Source{Name: "demo", URL: "/srv/demo", Branch: "main", Interval: 30 * time.Second, Timeout: 2 * time.Second, Created: created}
	check(t, s.AddSource(ctx, demo))
	isErr(t, s.AddSource(ctx, demo), ErrConflict, `source "demo" exists already: conflict`)
	same(t, "GetSource", must[Source](t)(s.GetSource(ctx, "demo")), demo)
	_, err := s.GetSource(ctx, "nope")
	isErr(t, err, ErrNotFound, `source "nope": not found`)

	// PutSource replaces all but Created, and adds a new name.
	check(t, s.PutSourceStatus(ctx, SourceStatus{Source: "demo", LastCommit: "c1"}))
	changed := demo
	changed.URL, changed.Branch, changed.Password, changed.FromConfig, changed.Timeout, changed.Created = "/srv/other", "dev", "secret", true, 90*time.Second, time.Time{}
	check(t, s.PutSource(ctx, changed))
	changed.Created = created
	same(t, "replaced source", must[Source](t)(s.GetSource(ctx, "demo")), changed)
	if st := must[SourceStatus](t)(s.GetSourceStatus(ctx, "demo")); st.LastCommit != "c1" {
		t.Errorf("replacing a source lost its status: %+v", st)
	}
	check(t, s.PutSource(ctx, Source{Name: "abc"}))
	srcs := must[[]Source](t)(s.ListSources(ctx))
	if len(srcs) != 2 || srcs[0].Name != "abc" || srcs[1].Name != "demo" || srcs[0].Created.IsZero() {
		t.Errorf("ListSources = %+v, want abc (Created set) then demo", srcs)
	}

	// Deleting a source takes its status and leaves its events and runs.
	must[SourceEvent](t)(s.RecordSourceEvent(ctx, SourceEvent{Source: "demo", Branch: "dev", Commit: "c2"}))
	_, _, err = s.CreateRun(ctx, Run{Source: "demo", Branch: "dev", Commit: "c2"}, nil)
	check(t, err)
	check(t, s.DeleteSource(ctx, "demo"))
	_, err = s.GetSource(ctx, "demo")
	isErr(t, err, ErrNotFound, `source "demo": not found`)
	_, err = s.GetSourceStatus(ctx, "demo")
	isErr(t, err, ErrNotFound, `status of source "demo": not found`)
	if evs := must[[]SourceEvent](t)(s.ListSourceEvents(ctx, "demo", Page{})); len(evs) != 1 {
		t.Errorf("events after delete: %+v, want the one", evs)
	}
	if runs := must[[]Run](t)(s.ListRuns(ctx, "demo", Page{})); len(runs) != 1 {
		t.Errorf("runs after delete: %+v, want the one", runs)
	}
	isErr(t, s.DeleteSource(ctx, "demo"), ErrNotFound, `source "demo": not found`)
}

func TestSourceStatus(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	isErr(t, s.PutSourceStatus(ctx, SourceStatus{Source: "demo"}), ErrNotFound, `source "demo": not found`)
	check(t, s.AddSource(ctx, Source{Name: "demo"}))
	_, err := s.GetSourceStatus(ctx, "demo")
	isErr(t, err, ErrNotFound, `status of source "demo": not found`)

	st := SourceStatus{Source: "demo", LastCommit: "c1", LastFetch: now(), LastError: "dial: refused", Failures: 3, NextFetch: now().Add(time.Minute)}
	check(t, s.PutSourceStatus(ctx, st))
	same(t, "status", must[SourceStatus](t)(s.GetSourceStatus(ctx, "demo")), st)
	st = SourceStatus{Source: "demo", LastCommit: "c2"}
	check(t, s.PutSourceStatus(ctx, st))
	same(t, "status replaced", must[SourceStatus](t)(s.GetSourceStatus(ctx, "demo")), st)
}

func TestRecordSourceEvent(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	_, err := s.RecordSourceEvent(ctx, SourceEvent{Source: "demo", Commit: "c1"})
	isErr(t, err, ErrNotFound, `source "demo": not found`)
	if evs := must[[]SourceEvent](t)(s.ListSourceEvents(ctx, "", Page{})); len(evs) != 0 {
		t.Fatalf("a failed RecordSourceEvent stored %+v", evs)
	}

	check(t, s.AddSource(ctx, Source{Name: "demo"}))
	// The first event creates the status.
	e1 := must[SourceEvent](t)(s.RecordSourceEvent(ctx, SourceEvent{Source: "demo", Branch: "main", Commit: "c1"}))
	if e1.ID == 0 || e1.At.IsZero() {
		t.Errorf("RecordSourceEvent = %+v, want ID and At set", e1)
	}
	same(t, "status made by an event", must[SourceStatus](t)(s.GetSourceStatus(ctx, "demo")), SourceStatus{Source: "demo", LastCommit: "c1"})

	// A later one sets LastCommit and leaves the rest.
	fetched := now()
	check(t, s.PutSourceStatus(ctx, SourceStatus{Source: "demo", LastCommit: "c1", LastFetch: fetched, Failures: 1}))
	e2 := must[SourceEvent](t)(s.RecordSourceEvent(ctx, SourceEvent{Source: "demo", Branch: "main", Previous: "c1", Commit: "c0", Forced: true}))
	same(t, "status after a force-push", must[SourceStatus](t)(s.GetSourceStatus(ctx, "demo")),
		SourceStatus{Source: "demo", LastCommit: "c0", LastFetch: fetched, Failures: 1})
	same(t, "events", must[[]SourceEvent](t)(s.ListSourceEvents(ctx, "demo", Page{})), []SourceEvent{e2, e1})
	same(t, "events of another source", must[[]SourceEvent](t)(s.ListSourceEvents(ctx, "other", Page{})), []SourceEvent{})
}
