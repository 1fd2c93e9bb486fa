package store

import (
	"strconv"
	"strings"
	"testing"
)

func TestCountRunsAndPromotions(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	for _, c := range []string{"c1", "c2", "c3"} {
		must[Run](t)(func() (Run, error) {
			r, _, err := s.CreateRun(ctx, Run{Source: "demo", Branch: "main", Commit: c, Status: StatusQueued}, []string{"build"})
			return r, err
		}())
	}
	r := must[Run](t)(s.GetRun(ctx, 1))
	r.Status = StatusSucceeded
	check(t, s.UpdateRun(ctx, r))
	same(t, "CountRuns", must[map[RunStatus]int](t)(s.CountRuns(ctx)), map[RunStatus]int{StatusQueued: 2, StatusSucceeded: 1})

	must[Promotion](t)(s.CreatePromotion(ctx, Promotion{Release: "sha256:r1", Environment: "prod", Status: "pending"}))
	must[Promotion](t)(s.CreatePromotion(ctx, Promotion{Release: "sha256:r2", Environment: "prod", Status: "pending"}))
	same(t, "CountPromotions", must[map[string]int](t)(s.CountPromotions(ctx)), map[string]int{"pending": 2})
}

// A write the database cannot take is counted under the method that
// tried it; a write a rule of the schema refuses is not.
func TestWriteErrorsByOperation(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	check(t, s.AddSource(ctx, Source{Name: "demo", URL: "https://example.com/demo.git", Branch: "main"}))
	if err := s.AddSource(ctx, Source{Name: "demo", URL: "https://example.com/demo.git", Branch: "main"}); err == nil {
		t.Fatal("adding a source twice succeeded")
	}
	if got := s.WriteErrors(); len(got) != 0 {
		t.Fatalf("WriteErrors after a refused duplicate = %v, want none", got)
	}

	// why: a page limit at the current size makes SQLite answer as a full
	// disk would, on the one writer connection this pragma stays with.
	var pages int
	if err := s.w.QueryRowContext(ctx, `PRAGMA page_count`).Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.ExecContext(ctx, `PRAGMA max_page_count = `+strconv.Itoa(pages)); err != nil {
		t.Fatal(err)
	}
	detail := strings.Repeat("x", 64<<10)
	var failed int
	for range 3 {
		if _, err := s.AppendEvent(ctx, Event{Actor: "ann", Action: "test", Object: "x", Detail: detail}); err != nil {
			failed++
		}
	}
	if failed == 0 {
		t.Fatal("no write failed with the page limit in place")
	}
	same(t, "WriteErrors", s.WriteErrors(), map[string]uint64{"AppendEvent": uint64(failed)})
}
