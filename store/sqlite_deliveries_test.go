package store

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func TestRememberDeliveryAcrossReopen(t *testing.T) {
	s, path := openTest(t)
	ctx := context.Background()
	day := 24 * time.Hour
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

	if first, err := s.RememberDelivery(ctx, "k1", t0, day); err != nil || !first {
		t.Fatalf("a new key: %v %v", first, err)
	}
	if first, _ := s.RememberDelivery(ctx, "k1", t0.Add(time.Minute), day); first {
		t.Error("a key seen a minute ago is new")
	}
	// A restart: the store still knows it.
	s.Close()
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if first, _ := s.RememberDelivery(ctx, "k1", t0.Add(23*time.Hour), day); first {
		t.Error("after a reopen, a key seen 23 h ago is new")
	}
	// Seen again at 23 h, so it stays until 47 h.
	if first, _ := s.RememberDelivery(ctx, "k1", t0.Add(46*time.Hour), day); first {
		t.Error("a key seen again 23 h ago is new")
	}
	if first, _ := s.RememberDelivery(ctx, "k1", t0.Add(71*time.Hour), day); !first {
		t.Error("a key not seen for 25 h is still remembered")
	}
}

func TestRememberDeliveryPrunes(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	day := 24 * time.Hour
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for i := range 50 {
		if _, err := s.RememberDelivery(ctx, fmt.Sprint("old-", i), t0, day); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.RememberDelivery(ctx, "recent", t0.Add(day), day); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM webhook_deliveries`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("%d deliveries kept a day later, want only the recent one", n)
	}
}
