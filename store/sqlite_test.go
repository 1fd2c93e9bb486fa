package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// openTest opens a store in a folder that does not exist yet.
func openTest(t *testing.T) (*SQLite, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state", "ferry.db")
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func reopen(t *testing.T, s *SQLite, path string) *SQLite {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func check(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func same(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

// isErr checks that err is target and says what it should.
func isErr(t *testing.T, err, target error, msg string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("got %v, want %v", err, target)
	}
	if err.Error() != msg {
		t.Errorf("got %q, want %q", err, msg)
	}
}

func TestOpenCreatesPrivateFile(t *testing.T) {
	_, path := openTest(t)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600: the file holds credentials", fi.Mode().Perm())
	}
}

func TestPragmas(t *testing.T) {
	s, _ := openTest(t)
	for name, db := range map[string]querier{"writer": s.w, "reader": s.r} {
		for pragma, want := range map[string]string{
			"journal_mode": "wal",
			"synchronous":  "2", // FULL
			"foreign_keys": "1",
			"busy_timeout": "5000",
		} {
			var got string
			check(t, db.QueryRowContext(t.Context(), "PRAGMA "+pragma).Scan(&got))
			if got != want {
				t.Errorf("%s: PRAGMA %s = %s, want %s", name, pragma, got, want)
			}
		}
	}
	if _, err := s.r.ExecContext(t.Context(), `INSERT INTO events (actor, action, object, detail) VALUES ('', '', '', '')`); err == nil {
		t.Error("the read pool wrote")
	}
}

func TestMigrationsRecordedOnce(t *testing.T) {
	s, path := openTest(t)
	ms := must[[]migration](t)(migrations())
	type row struct{ version, applied int64 }
	applied := func(s *SQLite) []row {
		return must[[]row](t)(list(t.Context(), s.r, func(sc scanner) (row, error) {
			var r row
			return r, sc.Scan(&r.version, &r.applied)
		}, `SELECT version, applied FROM schema_migrations ORDER BY version`))
	}
	first := applied(s)
	if len(first) != len(ms) {
		t.Fatalf("%d migrations recorded, want %d", len(first), len(ms))
	}
	for i, m := range ms {
		if first[i].version != int64(m.version) {
			t.Errorf("recorded version %d, want %d", first[i].version, m.version)
		}
	}
	s = reopen(t, s, path)
	same(t, "migrations after reopening", applied(s), first)
}

func TestRefusesNewerSchema(t *testing.T) {
	s, path := openTest(t)
	_, err := s.w.ExecContext(t.Context(), `INSERT INTO schema_migrations (version, applied) VALUES (9999, 0)`)
	check(t, err)
	check(t, s.Close())
	_, err = Open(t.Context(), path)
	if err == nil {
		t.Fatal("opened a database of a newer ferry")
	}
	if !strings.Contains(err.Error(), "schema version 9999") || !strings.Contains(err.Error(), "upgrade ferry") {
		t.Errorf("error %q should name the version and say to upgrade ferry", err)
	}
}

func TestTimesRoundTripInUTC(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	paris := time.FixedZone("CEST", 2*60*60)
	started := time.Date(2031, 5, 6, 7, 8, 9, 123456789, paris)
	run, _, err := s.CreateRun(ctx, Run{Source: "demo", Branch: "main", Commit: "c1"}, nil)
	check(t, err)
	run.Status, run.Started = StatusRunning, started
	check(t, s.UpdateRun(ctx, run))
	got := must[Run](t)(s.GetRun(ctx, run.ID))
	if got.Started.Location() != time.UTC || !got.Started.Equal(started) || got.Started.Nanosecond() != 123456789 {
		t.Errorf("Started = %v, want %v in UTC", got.Started, started)
	}
	if !got.Ended.IsZero() {
		t.Errorf("Ended = %v, want the zero time", got.Ended)
	}
	if got.Created.Location() != time.UTC || time.Since(got.Created) > time.Minute {
		t.Errorf("Created = %v, want now in UTC", got.Created)
	}
}

func TestReopenKeepsEverything(t *testing.T) {
	s, path := openTest(t)
	ctx := t.Context()
	src := Source{Name: "demo", URL: "https://example.com/demo.git", Branch: "main", Interval: time.Minute,
		WebhookSecret: "w", Username: "u", Password: "p", SSHKey: "k", FromConfig: true}
	check(t, s.AddSource(ctx, src))
	st := SourceStatus{Source: "demo", LastCommit: "c1", LastFetch: now(), LastError: "", Failures: 0, NextFetch: now().Add(time.Minute)}
	check(t, s.PutSourceStatus(ctx, st))
	ev := must[SourceEvent](t)(s.RecordSourceEvent(ctx, SourceEvent{Source: "demo", Branch: "main", Commit: "c1"}))
	st.LastCommit = "c1"
	run, _, err := s.CreateRun(ctx, Run{Source: "demo", Branch: "main", Commit: "c1"}, []string{"checkout", "build"})
	check(t, err)
	check(t, s.AppendLog(ctx, run.ID, "build", "one", "two"))
	check(t, s.PutBuilds(ctx, []Build{{Source: "demo", Commit: "c1", Function: "hello", Key: "k", Image: "img@sha256:1"}}))
	rel, _, err := s.PutRelease(ctx, Release{ID: "sha256:r1", Source: "demo", Commit: "c1", Ref: "reg/demo@sha256:r1", Manifest: []byte("m"), RunID: run.ID})
	check(t, err)
	dep := must[Deployment](t)(s.RecordDeployment(ctx, Deployment{Environment: "dev", Release: rel.ID, Actor: "ferry", Status: "succeeded"}))
	prom := must[Promotion](t)(s.CreatePromotion(ctx, Promotion{Release: rel.ID, Environment: "prod", Status: "pending", Requester: "ann"}))
	appr := must[Approval](t)(s.AddApproval(ctx, Approval{Promotion: prom.ID, Actor: "bob", Approve: true}))
	audit := must[Event](t)(s.AppendEvent(ctx, Event{Actor: "ann", Action: "source.add", Object: "source/demo"}))

	type snapshot struct {
		Sources  []Source
		Status   SourceStatus
		Events   []SourceEvent
		Run      Run
		Logs     []LogLine
		Builds   []Build
		Releases []Release
		Envs     []Environment
		Deps     []Deployment
		Proms    []Promotion
		Apprs    []Approval
		Audit    []Event
	}
	take := func(s *SQLite) snapshot {
		return snapshot{
			Sources:  must[[]Source](t)(s.ListSources(ctx)),
			Status:   must[SourceStatus](t)(s.GetSourceStatus(ctx, "demo")),
			Events:   must[[]SourceEvent](t)(s.ListSourceEvents(ctx, "demo", Page{})),
			Run:      must[Run](t)(s.GetRun(ctx, run.ID)),
			Logs:     must[[]LogLine](t)(s.Logs(ctx, run.ID, 0, 0)),
			Builds:   must[[]Build](t)(s.ListBuilds(ctx, "demo", "c1")),
			Releases: must[[]Release](t)(s.ListReleases(ctx, "", Page{})),
			Envs:     must[[]Environment](t)(s.ListEnvironments(ctx)),
			Deps:     must[[]Deployment](t)(s.ListDeployments(ctx, "", Page{})),
			Proms:    must[[]Promotion](t)(s.ListPromotions(ctx, "", Page{})),
			Apprs:    must[[]Approval](t)(s.ListApprovals(ctx, prom.ID)),
			Audit:    must[[]Event](t)(s.ListEvents(ctx, "", Page{})),
		}
	}
	before := take(s)
	// Spot-check that the snapshot holds what was written, then that the
	// file gives all of it back.
	src.Created = before.Sources[0].Created
	same(t, "sources", before.Sources, []Source{src})
	same(t, "status", before.Status, st)
	same(t, "source events", before.Events, []SourceEvent{ev})
	same(t, "run", before.Run, run)
	same(t, "releases", before.Releases, []Release{rel})
	same(t, "deployments", before.Deps, []Deployment{dep})
	same(t, "promotions", before.Proms, []Promotion{prom})
	same(t, "approvals", before.Apprs, []Approval{appr})
	same(t, "audit", before.Audit, []Event{audit})
	if len(before.Logs) != 2 || len(before.Builds) != 1 || len(before.Envs) != 1 {
		t.Fatalf("snapshot incomplete: %+v", before)
	}
	same(t, "after reopening", take(reopen(t, s, path)), before)
}

// TestConcurrentWritesAndReads runs 20 goroutines against two stores on one
// file (two stores stand for two processes: they share no pool), each
// writing in transactions that read before they write, and reading. None may
// fail with SQLITE_BUSY, and each commit is run once.
func TestConcurrentWritesAndReads(t *testing.T) {
	a, path := openTest(t)
	b := must[*SQLite](t)(Open(t.Context(), path))
	t.Cleanup(func() { b.Close() })
	ctx := t.Context()

	const workers, rounds = 20, 10
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		errs    []error
		created = map[string]int{}
	)
	for w := range workers {
		s := a
		if w%2 == 1 {
			s = b
		}
		wg.Go(func() {
			fail := func(err error) {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
			for i := range rounds {
				// Every worker races for the same commit of the round.
				commit := fmt.Sprintf("c%d", i)
				run, ok, err := s.CreateRun(ctx, Run{Source: "demo", Branch: "main", Commit: commit}, []string{"build"})
				if err != nil {
					fail(err)
					return
				}
				if ok {
					mu.Lock()
					created[commit]++
					mu.Unlock()
				}
				steps := []func() error{
					func() error { return s.AppendLog(ctx, run.ID, "build", fmt.Sprintf("worker %d", w)) },
					func() error {
						_, err := s.AppendEvent(ctx, Event{Actor: "ferry", Action: "run.start", Object: fmt.Sprintf("run/%d", run.ID)})
						return err
					},
					func() error {
						_, _, err := s.PutRelease(ctx, Release{ID: "sha256:" + commit, Source: "demo", Commit: commit, RunID: run.ID})
						return err
					},
					func() error { _, err := s.GetRun(ctx, run.ID); return err },
					func() error { _, err := s.ListRuns(ctx, "demo", Page{}); return err },
					func() error { _, err := s.Logs(ctx, run.ID, 0, 0); return err },
					func() error { _, err := s.UnfinishedRuns(ctx); return err },
				}
				for _, step := range steps {
					if err := step(); err != nil {
						fail(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d errors, the first: %v", len(errs), errs[0])
	}
	for i := range rounds {
		if n := created[fmt.Sprintf("c%d", i)]; n != 1 {
			t.Errorf("commit c%d: %d runs created, want 1", i, n)
		}
	}
	runs := must[[]Run](t)(a.ListRuns(ctx, "", Page{}))
	rels := must[[]Release](t)(a.ListReleases(ctx, "", Page{}))
	if len(runs) != rounds || len(rels) != rounds {
		t.Errorf("%d runs and %d releases, want %d of each", len(runs), len(rels), rounds)
	}
	if evs := must[[]Event](t)(a.ListEvents(ctx, "", Page{Limit: MaxPageSize})); len(evs) != workers*rounds {
		t.Errorf("%d audit events, want %d", len(evs), workers*rounds)
	}
}

// TestPagingWhileAdding pages through the audit log with records added
// between pages: every record that was there at the start comes exactly
// once, newest first.
func TestPagingWhileAdding(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	add := func(n int) {
		for range n {
			must[Event](t)(s.AppendEvent(ctx, Event{Actor: "ferry", Action: "test", Object: "x"}))
		}
	}
	add(7)
	var got []int64
	page := Page{Limit: 3}
	for {
		evs := must[[]Event](t)(s.ListEvents(ctx, "x", page))
		if len(evs) == 0 {
			break
		}
		for _, e := range evs {
			got = append(got, e.ID)
		}
		page.Before = evs[len(evs)-1].ID
		add(2)
	}
	same(t, "ids paged", got, []int64{7, 6, 5, 4, 3, 2, 1})
}

func TestPageLimits(t *testing.T) {
	for limit, want := range map[int]int{-1: DefaultPageSize, 0: DefaultPageSize, 1: 1, MaxPageSize: MaxPageSize, MaxPageSize + 1: MaxPageSize} {
		if got := (Page{Limit: limit}).limit(); got != want {
			t.Errorf("Page{Limit: %d} gives %d, want %d", limit, got, want)
		}
	}
	s, _ := openTest(t)
	for range DefaultPageSize + 5 {
		must[Event](t)(s.AppendEvent(t.Context(), Event{Action: "test"}))
	}
	if evs := must[[]Event](t)(s.ListEvents(t.Context(), "", Page{})); len(evs) != DefaultPageSize {
		t.Errorf("Limit 0 gave %d, want %d", len(evs), DefaultPageSize)
	}
}

// TestListsPage checks every paged list: newest first, below Before,
// filtered.
func TestListsPage(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	check(t, s.AddSource(ctx, Source{Name: "a"}))
	check(t, s.AddSource(ctx, Source{Name: "b"}))
	for i := range 3 {
		for _, name := range []string{"a", "b"} {
			c := fmt.Sprintf("%s%d", name, i)
			must[SourceEvent](t)(s.RecordSourceEvent(ctx, SourceEvent{Source: name, Commit: c}))
			_, _, err := s.CreateRun(ctx, Run{Source: name, Commit: c}, nil)
			check(t, err)
			_, _, err = s.PutRelease(ctx, Release{ID: c, Source: name, Commit: c})
			check(t, err)
			must[Deployment](t)(s.RecordDeployment(ctx, Deployment{Environment: name, Release: c, Status: "succeeded"}))
			must[Promotion](t)(s.CreatePromotion(ctx, Promotion{Environment: name, Release: c}))
			must[Event](t)(s.AppendEvent(ctx, Event{Object: name, Detail: c}))
		}
	}
	// Ids 1..6 alternate a, b; the page below 6 of "a" is 5, 3 (commits a2, a1).
	page := Page{Limit: 2, Before: 6}
	want := []string{"a2", "a1"}
	commits := func(n int, f func(int) string) []string {
		var out []string
		for i := range n {
			out = append(out, f(i))
		}
		return out
	}
	evs := must[[]SourceEvent](t)(s.ListSourceEvents(ctx, "a", page))
	same(t, "source events", commits(len(evs), func(i int) string { return evs[i].Commit }), want)
	runs := must[[]Run](t)(s.ListRuns(ctx, "a", page))
	same(t, "runs", commits(len(runs), func(i int) string { return runs[i].Commit }), want)
	rels := must[[]Release](t)(s.ListReleases(ctx, "a", page))
	same(t, "releases", commits(len(rels), func(i int) string { return rels[i].Commit }), want)
	deps := must[[]Deployment](t)(s.ListDeployments(ctx, "a", page))
	same(t, "deployments", commits(len(deps), func(i int) string { return deps[i].Release }), want)
	proms := must[[]Promotion](t)(s.ListPromotions(ctx, "a", page))
	same(t, "promotions", commits(len(proms), func(i int) string { return proms[i].Release }), want)
	audit := must[[]Event](t)(s.ListEvents(ctx, "a", page))
	same(t, "audit", commits(len(audit), func(i int) string { return audit[i].Detail }), want)

	if all := must[[]Run](t)(s.ListRuns(ctx, "", Page{})); len(all) != 6 || all[0].Commit != "b2" {
		t.Errorf(`ListRuns("") = %+v, want all 6, newest first`, all)
	}
	if none := must[[]Run](t)(s.ListRuns(ctx, "nope", Page{})); none == nil || len(none) != 0 {
		t.Errorf("an empty list is %#v, want []Run{}", none)
	}
}

// TestFailedTransactionLeavesNothing: a run whose step list repeats a name
// fails at the second step, after its run row was written; none of it stays.
func TestFailedTransactionLeavesNothing(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	r := Run{Source: "demo", Branch: "main", Commit: "c1"}
	if _, _, err := s.CreateRun(ctx, r, []string{"build", "test", "build"}); err == nil {
		t.Fatal("CreateRun took a repeated step")
	}
	if runs := must[[]Run](t)(s.ListRuns(ctx, "", Page{})); len(runs) != 0 {
		t.Fatalf("the failed CreateRun left %+v", runs)
	}
	var steps int
	check(t, s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM steps`).Scan(&steps))
	if steps != 0 {
		t.Errorf("the failed CreateRun left %d steps", steps)
	}
	if _, created, err := s.CreateRun(ctx, r, []string{"build", "test"}); err != nil || !created {
		t.Errorf("CreateRun after the failure: created %v, %v", created, err)
	}
}

func TestAudit(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	at := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	e1 := must[Event](t)(s.AppendEvent(ctx, Event{At: at, Actor: "ann", Action: "source.add", Object: "source/demo", Detail: "d"}))
	e2 := must[Event](t)(s.AppendEvent(ctx, Event{Actor: "ferry", Action: "run.start", Object: "run/1"}))
	if e1.ID == 0 || e2.ID <= e1.ID || !e1.At.Equal(at) || e2.At.IsZero() {
		t.Errorf("appended %+v and %+v: want increasing ids, At kept or set", e1, e2)
	}
	same(t, "all events", must[[]Event](t)(s.ListEvents(ctx, "", Page{})), []Event{e2, e1})
	same(t, "events of source/demo", must[[]Event](t)(s.ListEvents(ctx, "source/demo", Page{})), []Event{e1})

	// Append-only holds in the file too, not only in the API.
	for _, q := range []string{`UPDATE events SET actor = 'eve'`, `DELETE FROM events`} {
		if _, err := s.w.ExecContext(ctx, q); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: got %v, want the append-only error", q, err)
		}
	}
}
