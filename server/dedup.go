package server

import (
	"container/list"
	"crypto/sha256"
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

// deliverySet remembers the delivery ids of webhooks that synced, so that a
// replayed delivery is answered without syncing again. Deliveries that
// changed nothing (a ping, a push to another branch) need no remembering.
//
// It lives in memory and does not survive a restart. That is harmless: a
// delivery replayed after a restart only makes the watcher fetch once more,
// and the fetch finds nothing new, because the commit to build always comes
// from Git and never from the payload.
//
// The least recently seen id goes first when the set is full; an id also
// goes once it has not been seen for the TTL. Keys are stored as SHA-256
// digests, so a long delivery id costs no more memory than a short one.
type deliverySet struct {
	max int
	ttl time.Duration
	now func() time.Time

	mu    sync.Mutex
	order *list.List // of *deliveryEntry, most recently seen at the front
	byKey map[[sha256.Size]byte]*list.Element
}

type deliveryEntry struct {
	key  [sha256.Size]byte
	seen time.Time
}

func newDeliverySet(max int, ttl time.Duration, now func() time.Time) *deliverySet {
	return &deliverySet{
		max:   max,
		ttl:   ttl,
		now:   now,
		order: list.New(),
		byKey: make(map[[sha256.Size]byte]*list.Element),
	}
}

// deliveryKey names a delivery within one provider and one source: the ids
// are only unique per sender, and a source may be hooked to several.
func deliveryKey(provider, source, id string) [sha256.Size]byte {
	return sha256.Sum256([]byte(provider + "\x00" + source + "\x00" + id))
}

// firstTime records key as seen now and reports whether it was new, that is
// not seen within the TTL. Checking and recording are one step under the
// lock, so of two identical deliveries arriving at once exactly one is new.
func (s *deliverySet) firstTime(key [sha256.Size]byte) bool {
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
