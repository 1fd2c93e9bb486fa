package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestOutboxReplacesByKeyAndKeepsNewerBody(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	a, err := s.Enqueue(ctx, OutboxItem{Sink: "github", Key: "status/c1/build", Body: []byte("pending")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Enqueue(ctx, OutboxItem{Sink: "github", Body: []byte("no key")}); err != nil {
		t.Fatal(err)
	}
	due, err := s.Due(ctx, "github", time.Now(), 10)
	if err != nil || len(due) != 2 || string(due[0].Body) != "pending" {
		t.Fatalf("due = %+v, %v; want the keyed item first, then the other", due, err)
	}
	// A newer notice for the key arrives while "pending" is delivered.
	b, err := s.Enqueue(ctx, OutboxItem{Sink: "github", Key: "status/c1/build", Body: []byte("success")})
	if err != nil || b.ID != a.ID || b.Version != 2 {
		t.Fatalf("replacement = %+v, %v; want item %d at version 2", b, err, a.ID)
	}
	if err := s.OutboxDone(ctx, a.ID, a.Version); err != nil {
		t.Fatal(err)
	}
	due, _ = s.Due(ctx, "github", time.Now(), 10)
	if len(due) != 2 || string(due[0].Body) != "success" {
		t.Fatalf("after delivering the older body, due = %+v; want the newer body still there", due)
	}
	if err := s.OutboxDone(ctx, b.ID, b.Version); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.Pending(ctx); n["github"] != 1 {
		t.Fatalf("pending = %v; want 1 left", n)
	}
}

func TestOutboxRetryWaits(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	it, err := s.Enqueue(ctx, OutboxItem{Sink: "slack", Body: []byte("{}")})
	if err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Hour)
	if err := s.OutboxRetry(ctx, it.ID, later, "502 Bad Gateway"); err != nil {
		t.Fatal(err)
	}
	if due, _ := s.Due(ctx, "slack", time.Now(), 10); len(due) != 0 {
		t.Fatalf("due now = %+v; want none before the retry time", due)
	}
	due, _ := s.Due(ctx, "slack", later, 10)
	if len(due) != 1 || due[0].Attempts != 1 || due[0].LastError != "502 Bad Gateway" {
		t.Fatalf("due later = %+v; want one item with 1 attempt and its error", due)
	}
	if !due[0].NextAt.Equal(time.Unix(0, later.UnixNano())) {
		t.Fatalf("due later: NextAt = %v; want %v", due[0].NextAt, later)
	}
	if due, _ := s.Due(ctx, "github", later, 10); len(due) != 0 {
		t.Fatalf("due of a sink with nothing queued = %+v; want none", due)
	}
}

func TestMemos(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	if _, err := s.GetMemo(ctx, "comment/app/42"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetMemo of nothing: %v; want ErrNotFound", err)
	}
	for _, v := range []string{"1", "2"} {
		if err := s.PutMemo(ctx, "comment/app/42", v); err != nil {
			t.Fatal(err)
		}
	}
	if v, err := s.GetMemo(ctx, "comment/app/42"); err != nil || v != "2" {
		t.Fatalf("GetMemo = %q, %v; want 2", v, err)
	}
}
