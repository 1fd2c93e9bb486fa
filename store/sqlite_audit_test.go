package store

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// fullDisk makes s's file unable to grow, as a full disk does, until the
// returned function is called.
func fullDisk(t *testing.T, s *SQLite) func() {
	t.Helper()
	ctx := t.Context()
	var pages, free int64
	check(t, s.w.QueryRowContext(ctx, `PRAGMA freelist_count`).Scan(&free))
	if free > 4 {
		t.Fatalf("the new file has %d free pages; an entry could fit in them", free)
	}
	check(t, s.w.QueryRowContext(ctx, `PRAGMA page_count`).Scan(&pages))
	if _, err := s.w.ExecContext(ctx, fmt.Sprintf(`PRAGMA max_page_count = %d`, pages)); err != nil {
		t.Fatal(err)
	}
	return func() {
		t.Helper()
		if _, err := s.w.ExecContext(ctx, `PRAGMA max_page_count = 1073741823`); err != nil {
			t.Fatal(err)
		}
	}
}

func TestWithEventWritesTheEntryWithTheChange(t *testing.T) {
	s, _ := openTest(t)
	ctx := WithEvent(t.Context(), Event{Actor: "ann", Action: "source.add", Object: "source/demo", Detail: "file:///demo"})
	check(t, s.AddSource(ctx, Source{Name: "demo", URL: "file:///demo", Branch: "main"}))
	// The same context makes a second change: the entry is not repeated.
	check(t, s.AddSource(ctx, Source{Name: "other", URL: "file:///other", Branch: "main"}))
	evs := must[[]Event](t)(s.ListEvents(t.Context(), "", Page{}))
	if len(evs) != 1 || evs[0].Action != "source.add" || evs[0].Object != "source/demo" || evs[0].Actor != "ann" {
		t.Fatalf("events: %+v, want the one source.add", evs)
	}
}

func TestWithEventRefusedChangeLeavesNoEntry(t *testing.T) {
	s, _ := openTest(t)
	check(t, s.AddSource(t.Context(), Source{Name: "demo", URL: "file:///demo", Branch: "main"}))
	ctx := WithEvent(t.Context(), Event{Actor: "ann", Action: "source.add", Object: "source/demo"})
	err := s.AddSource(ctx, Source{Name: "demo", URL: "file:///demo", Branch: "main"})
	if !errors.Is(err, ErrConflict) || IsAudit(err) {
		t.Fatalf("adding demo twice: %v, want a conflict that is not an audit failure", err)
	}
	if evs := must[[]Event](t)(s.ListEvents(t.Context(), "", Page{})); len(evs) != 0 {
		t.Errorf("the refused change left %+v", evs)
	}
}

func TestFullDiskRefusesChangeAndEntryTogether(t *testing.T) {
	s, _ := openTest(t)
	give := fullDisk(t, s)
	// why: an entry this long needs pages the file cannot get.
	long := strings.Repeat("x", 64<<10)
	ev := Event{Actor: "ann", Action: "source.add", Object: "source/demo", Detail: long}
	err := s.AddSource(WithEvent(t.Context(), ev), Source{Name: "demo", URL: "file:///demo", Branch: "main"})
	var ae *AuditError
	if !errors.As(err, &ae) || ae.Event.Action != "source.add" {
		t.Fatalf("adding a source on a full disk: %v, want an *AuditError naming source.add", err)
	}
	for _, want := range []string{"source.add on source/demo was not done", "full", "free space on the disk of ferry's data folder"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	_, err = s.AppendEvent(t.Context(), Event{Actor: "ann", Action: "source.sync", Object: "source/demo", Detail: long})
	if !IsAudit(err) {
		t.Errorf("appending on a full disk: %v, want an *AuditError", err)
	}

	_, err = s.CreatePromotion(WithCreateEvent(t.Context(), func(id int64) Event {
		return Event{Actor: "ferry", Action: "promotion.create", Object: fmt.Sprintf("promotion/%d", id), Detail: long}
	}), Promotion{Release: "r1", Environment: "prod", Status: "pending"})
	if !IsAudit(err) || !strings.Contains(err.Error(), "promotion.create on a new promotion was not done") {
		t.Errorf("creating a promotion on a full disk: %v, want an *AuditError naming a new promotion", err)
	}

	give()
	if _, err := s.GetSource(t.Context(), "demo"); !errors.Is(err, ErrNotFound) {
		t.Errorf("the source refused on a full disk is there: %v", err)
	}
	if evs := must[[]Event](t)(s.ListEvents(t.Context(), "", Page{})); len(evs) != 0 {
		t.Errorf("the full disk left entries %+v", evs)
	}
	check(t, s.AddSource(WithEvent(t.Context(), ev), Source{Name: "demo", URL: "file:///demo", Branch: "main"}))
	if evs := must[[]Event](t)(s.ListEvents(t.Context(), "", Page{})); len(evs) != 1 {
		t.Errorf("after the space came back: %+v, want one entry", evs)
	}
}

func TestWithCreateEventNamesTheNewRecord(t *testing.T) {
	s, _ := openTest(t)
	ctx := WithCreateEvent(t.Context(), func(id int64) Event {
		return Event{Actor: "ferry", Action: "promotion.create", Object: fmt.Sprintf("promotion/%d", id)}
	})
	p := must[Promotion](t)(s.CreatePromotion(ctx, Promotion{Release: "r1", Environment: "prod", Status: "pending"}))
	if !EventWritten(ctx) {
		t.Fatal("the entry is not written after the promotion was")
	}
	evs := must[[]Event](t)(s.ListEvents(t.Context(), "", Page{}))
	if want := fmt.Sprintf("promotion/%d", p.ID); len(evs) != 1 || evs[0].Object != want {
		t.Errorf("events %+v, want one on %s", evs, want)
	}
}

func TestReplayedDeliveryLeavesNoEntry(t *testing.T) {
	s, _ := openTest(t)
	now := time.Now()
	for i, wantFirst := range []bool{true, false} {
		ctx := WithEvent(t.Context(), Event{Actor: "webhook", Action: "source.sync", Object: "source/demo"})
		first := must[bool](t)(s.RememberDelivery(ctx, "github/demo/d1", now, time.Hour))
		if first != wantFirst || EventWritten(ctx) != wantFirst {
			t.Errorf("delivery %d: first %v, entry written %v; want %v for both", i, first, EventWritten(ctx), wantFirst)
		}
	}
	if evs := must[[]Event](t)(s.ListEvents(t.Context(), "", Page{})); len(evs) != 1 {
		t.Errorf("events %+v, want the first delivery's only", evs)
	}
}
