package server

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"time"
)

// Bounds of the set of remembered webhook deliveries. GitHub and GitLab
// retry a failed delivery for hours and let a person redeliver one by hand,
// so a day covers the replays that happen; 10 000 ids is far more than a
// day of pushes to the sources of one ferry and bounds the memory (a couple
// of MiB) whatever a sender does.
const (
	defaultDeliveryMax = 10_000
	defaultDeliveryTTL = 24 * time.Hour
)

// DeliveryLog remembers the webhook deliveries that synced, so that a
// replayed delivery is answered without syncing again. Deliveries that
// changed nothing (a ping, a push to another branch) need no remembering.
// ferry serve keeps them in its store (store.SQLite.RememberDelivery), so
// that a replay after a restart is still a duplicate.
type DeliveryLog interface {
	// RememberDelivery records key as seen at now and reports whether it
	// is new, that is not seen within ttl; keys older than ttl are
	// forgotten. Checking and recording are one step: of two identical
	// deliveries at once, exactly one is new.
	RememberDelivery(ctx context.Context, key string, now time.Time, ttl time.Duration) (bool, error)
	// ForgetDelivery forgets key: the delivery failed after it was
	// remembered, and the sender's redelivery must act.
	ForgetDelivery(ctx context.Context, key string) error
}

// deliverySet is a DeliveryLog in memory, for a receiver without a store
// (tests, or ferry used as a library). It does not survive a restart.
//
// The least recently seen id goes first when the set is full; an id also
// goes once it has not been seen for the TTL. Keys are SHA-256 digests
// (deliveryKey), so a long delivery id costs no more memory than a short one.
type deliverySet struct {
	max int
	ttl time.Duration
	now func() time.Time

	mu    sync.Mutex
	order *list.List // of *deliveryEntry, most recently seen at the front
	byKey map[string]*list.Element
}

type deliveryEntry struct {
	key  string
	seen time.Time
}

func newDeliverySet(max int, ttl time.Duration, now func() time.Time) *deliverySet {
	return &deliverySet{
		max:   max,
		ttl:   ttl,
		now:   now,
		order: list.New(),
		byKey: make(map[string]*list.Element),
	}
}

// deliveryKey names a delivery within one provider and one source: the ids
// are only unique per sender, and a source may be hooked to several. It is
// a SHA-256 digest in hex, so a long id costs no more room than a short one.
func deliveryKey(provider, source, id string) string {
	sum := sha256.Sum256([]byte(provider + "\x00" + source + "\x00" + id))
	return hex.EncodeToString(sum[:])
}

// RememberDelivery implements DeliveryLog; the set's own TTL applies.
func (s *deliverySet) RememberDelivery(_ context.Context, key string, _ time.Time, _ time.Duration) (bool, error) {
	return s.firstTime(key), nil
}

// ForgetDelivery implements DeliveryLog.
func (s *deliverySet) ForgetDelivery(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if el, ok := s.byKey[key]; ok {
		s.order.Remove(el)
		delete(s.byKey, key)
	}
	return nil
}

// firstTime records key as seen now and reports whether it was new, that is
// not seen within the TTL. Checking and recording are one step under the
// lock, so of two identical deliveries arriving at once exactly one is new.
func (s *deliverySet) firstTime(key string) bool {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()

	s.expire(now)
	if el, ok := s.byKey[key]; ok {
		// Seen again: a sender is still retrying it, keep it longer.
		el.Value.(*deliveryEntry).seen = now
		s.order.MoveToFront(el)
		return false
	}
	for s.order.Len() >= s.max && s.order.Len() > 0 {
		s.remove(s.order.Back())
	}
	s.byKey[key] = s.order.PushFront(&deliveryEntry{key: key, seen: now})
	return true
}

// expire drops the entries not seen within the TTL. The list is ordered by
// when each entry was last seen, so they are all at the back.
func (s *deliverySet) expire(now time.Time) {
	for el := s.order.Back(); el != nil; el = s.order.Back() {
		if now.Sub(el.Value.(*deliveryEntry).seen) < s.ttl {
			return
		}
		s.remove(el)
	}
}

func (s *deliverySet) remove(el *list.Element) {
	delete(s.byKey, el.Value.(*deliveryEntry).key)
	s.order.Remove(el)
}

// len is the number of ids remembered, for tests.
func (s *deliverySet) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.order.Len()
}
