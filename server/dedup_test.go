package server

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a clock tests move by hand; safe for concurrent use.
type fakeClock struct{ offset atomic.Int64 }

var clockStart = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func (c *fakeClock) now() time.Time          { return clockStart.Add(time.Duration(c.offset.Load())) }
func (c *fakeClock) advance(d time.Duration) { c.offset.Add(int64(d)) }

func TestDeliverySetRemembersWithinTTL(t *testing.T) {
	var clock fakeClock
	s := newDeliverySet(10, time.Hour, clock.now)
	k := deliveryKey("github", "app", "72d3162e-cc78-11e3-81ab-4c9367dc0958")

	if !s.firstTime(k) {
		t.Fatal("a new id is not new")
	}
	clock.advance(59 * time.Minute)
	if s.firstTime(k) {
		t.Fatal("an id seen 59 minutes ago is new again with a TTL of an hour")
	}
	// Seeing it again kept it: an hour after the first sighting it is still
	// remembered, because a sender that retries it is still retrying.
	clock.advance(59 * time.Minute)
	if s.firstTime(k) {
		t.Fatal("an id seen again 59 minutes ago is new again")
	}
	clock.advance(time.Hour)
	if !s.firstTime(k) {
		t.Fatal("an id not seen for an hour is still remembered with a TTL of an hour")
	}
}

func TestDeliverySetKeysAreScoped(t *testing.T) {
	var clock fakeClock
	s := newDeliverySet(10, time.Hour, clock.now)
	for _, k := range [][3]string{
		{"github", "app", "1"},
		{"github", "other", "1"}, // another source
		{"gitlab", "app", "1"},   // another provider
		{"github", "app\x001", ""},
	} {
		if !s.firstTime(deliveryKey(k[0], k[1], k[2])) {
			t.Errorf("%q collides with an earlier key", k)
		}
	}
}

func TestDeliverySetEvictsLeastRecentlySeen(t *testing.T) {
	var clock fakeClock
	s := newDeliverySet(3, time.Hour, clock.now)
	key := func(i int) string { return deliveryKey("generic", "app", fmt.Sprint(i)) }
	for i := range 3 {
		s.firstTime(key(i))
		clock.advance(time.Second)
	}
	s.firstTime(key(0)) // 0 is now the most recently seen; 1 the least
	s.firstTime(key(3)) // full: evicts 1

	if s.len() != 3 {
		t.Fatalf("len = %d, want 3", s.len())
	}
	// The remembered ones first: asking about a new one inserts it.
	for _, i := range []int{0, 2, 3} {
		if s.firstTime(key(i)) {
			t.Errorf("id %d was evicted; the least recently seen, 1, should have gone", i)
		}
	}
	if !s.firstTime(key(1)) {
		t.Error("id 1, the least recently seen, is still remembered")
	}
}

func TestDeliverySetStaysBounded(t *testing.T) {
	var clock fakeClock
	s := newDeliverySet(defaultDeliveryMax, defaultDeliveryTTL, clock.now)
	for i := range 3 * defaultDeliveryMax {
		s.firstTime(deliveryKey("github", "app", fmt.Sprint(i)))
	}
	if s.len() != defaultDeliveryMax {
		t.Fatalf("len = %d after %d ids, want the bound %d", s.len(), 3*defaultDeliveryMax, defaultDeliveryMax)
	}
	clock.advance(defaultDeliveryTTL)
	s.firstTime(deliveryKey("github", "app", "after a day"))
	if s.len() != 1 {
		t.Fatalf("len = %d a day later, want 1: expired ids must go", s.len())
	}
}

func TestDeliverySetConcurrentFirstTime(t *testing.T) {
	s := newDeliverySet(100, time.Hour, time.Now)
	k := deliveryKey("github", "app", "same")
	var wg sync.WaitGroup
	var news atomic.Int32
	start := make(chan struct{})
	for range 50 {
		wg.Go(func() {
			<-start
			if s.firstTime(k) {
				news.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	if news.Load() != 1 {
		t.Fatalf("%d of 50 concurrent calls saw the id as new, want exactly 1", news.Load())
	}
}
