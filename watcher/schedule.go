package watcher

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"

	"github.com/ferrycd/ferry/internal/gitauth"
	"github.com/ferrycd/ferry/store"
)

// jitterFraction spreads fetches by ±10 % of their delay, so that sources
// added together (200 at start-up, say) do not fetch in lockstep.
const jitterFraction = 0.1

// runState is where the watcher's Run is.
type runState int

const (
	idle    runState = iota // Run not called yet: sources wait
	running                 // fetches happen
	stopped                 // Run ended: nothing fetches again
)

// errStopped answers a Sync when Run has ended.
var errStopped = errors.New("the watcher has stopped")

// watcher is the Watcher. One goroutine (Run's) keeps a heap of sources
// by next fetch and starts each fetch on its own goroutine when it is due;
// a semaphore bounds the fetches running at once. A source is never
// fetched twice at once: it leaves the heap while it fetches.
type watcher struct {
	cfg      Config
	hostKeys *gitauth.HostKeys
	sem      chan struct{}

	mu      sync.Mutex
	sources map[string]*source
	queue   sourceHeap
	wake    chan struct{} // tells Run that the heap's head may have changed
	state   runState
	ctx     context.Context // Run's, while it runs
	fetches sync.WaitGroup
	// mirrors holds a lock per mirror (a channel of one, so that waiting
	// for it can end with a context): a fetch and Remove's deletion hold
	// it. An entry outlives its source, so that a source removed and
	// added again never has two fetches in one folder.
	mirrors map[string]chan struct{}
	// saveErrs is the last error saving each source's status was logged
	// with: a full disk is said once, not at every poll, and its end too.
	saveMu   sync.Mutex
	saveErrs map[string]string
	// pullErrs is the last error polling each source's requests was
	// logged with (under saveMu), for the same reason.
	pullErrs map[string]string
	// pullsOn holds the sources whose requests are polled (SetPulls), and
	// pullsForget those whose requests' record is to be forgotten at their
	// next fetch. Keyed by name, so that SetPulls may come before Add.
	pullsOn     map[string]bool
	pullsForget map[string]bool
}

// source is a watched source.
type source struct {
	src    store.Source
	rem    *gitauth.Remote
	status store.SourceStatus

	next  time.Time // the next poll, while queued
	index int       // in the heap; -1 when not queued

	fetching bool
	again    bool         // a fetch was asked for while one ran
	waiters  []chan error // Syncs waiting for the next fetch to start
	removed  bool

	// repo is the open mirror, and mirrorURL and mirrorBranch what its
	// remote records; only the fetch of this source (which holds the
	// mirror's lock) uses them.
	repo                    *git.Repository
	mirrorURL, mirrorBranch string
	// pulls is what was seen of the source's requests; nil until read
	// from Config.Pulls. Only the holder of the mirror's lock uses it.
	pulls *pullState
}

var _ Watcher = (*watcher)(nil)

func newWatcher(cfg Config) *watcher {
	logHostKey := func(format string, args ...any) { cfg.Log("watcher: "+format, args...) }
	return &watcher{
		cfg:      cfg,
		hostKeys: gitauth.NewHostKeys(cfg.KnownHosts, logHostKey),
		sem:      make(chan struct{}, cfg.Parallel),
		sources:  map[string]*source{},
		wake:     make(chan struct{}, 1),
		mirrors:  map[string]chan struct{}{},
		saveErrs: map[string]string{},
		pullErrs: map[string]string{},

		pullsOn:     map[string]bool{},
		pullsForget: map[string]bool{},
	}
}

// Run implements Watcher.
func (w *watcher) Run(ctx context.Context) error {
	w.mu.Lock()
	if w.state != idle {
		w.mu.Unlock()
		return errors.New("watcher: Run may be called once")
	}
	w.state, w.ctx = running, ctx
	w.mu.Unlock()

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		w.mu.Lock()
		now := time.Now()
		for len(w.queue) > 0 && !w.queue[0].next.After(now) {
			w.start(heap.Pop(&w.queue).(*source))
		}
		wait := time.Hour
		if len(w.queue) > 0 {
			wait = w.queue[0].next.Sub(now)
		}
		w.mu.Unlock()
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			w.mu.Lock()
			w.state = stopped
			w.mu.Unlock()
			w.fetches.Wait()
			w.mu.Lock()
			for _, s := range w.sources {
				for _, c := range s.waiters {
					c <- errStopped
				}
				s.waiters = nil
			}
			w.mu.Unlock()
			return nil
		case <-w.wake:
		case <-timer.C:
		}
	}
}

// signal wakes Run to look at the heap again.
func (w *watcher) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// start begins a fetch of s, which is not queued. Called with w.mu held,
// while running.
func (w *watcher) start(s *source) {
	s.fetching, s.again = true, false
	waiters := s.waiters
	s.waiters = nil
	src, rem, status := s.src, s.rem, s.status
	ctx := w.ctx
	w.fetches.Add(1)
	go func() {
		defer w.fetches.Done()
		st, err := w.fetch(ctx, s, src, rem, status)
		w.mu.Lock()
		if err == nil || ctx.Err() == nil {
			s.status = st
		}
		s.fetching = false
		if !s.removed && w.state == running {
			if s.again || len(s.waiters) > 0 {
				w.start(s)
			} else {
				s.next = st.NextFetch
				heap.Push(&w.queue, s)
				w.signal()
			}
		}
		w.mu.Unlock()
		for _, c := range waiters {
			c <- err
		}
	}()
}

// lockMirror takes the lock of the named mirror; the returned function
// gives it back.
func (w *watcher) lockMirror(ctx context.Context, name string) (func(), error) {
	w.mu.Lock()
	l := w.mirrors[name]
	if l == nil {
		l = make(chan struct{}, 1)
		w.mirrors[name] = l
	}
	w.mu.Unlock()
	select {
	case l <- struct{}{}:
		return func() { <-l }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// fetch fetches the source once, records a new head, and returns the
// status to keep, which it has saved; the error names the source. When ctx
// ends (Run stops) nothing is recorded.
func (w *watcher) fetch(ctx context.Context, s *source, src store.Source, rem *gitauth.Remote, st store.SourceStatus) (store.SourceStatus, error) {
	select {
	case w.sem <- struct{}{}:
		defer func() { <-w.sem }()
	case <-ctx.Done():
		return st, fmt.Errorf("source %s: %w", src.Name, errStopped)
	}
	unlock, err := w.lockMirror(ctx, src.Name)
	if err != nil {
		return st, fmt.Errorf("source %s: %w", src.Name, errStopped)
	}
	defer unlock()
	w.mu.Lock()
	removed := s.removed
	w.mu.Unlock()
	if removed {
		return st, fmt.Errorf("source %s was removed", src.Name)
	}

	fctx, cancel := context.WithTimeout(ctx, w.timeout(src))
	defer cancel()
	head, err := w.timedFetch(fctx, s, src, rem, st.LastCommit)
	if err == nil && ctx.Err() == nil {
		w.pollPullsIfOn(ctx, s, src, rem)
	}
	if ctx.Err() != nil {
		// Stopping: a fetch cut short is no failure of the source.
		return st, fmt.Errorf("source %s: %w", src.Name, errStopped)
	}
	now := time.Now()
	st.Source = src.Name
	if err != nil {
		st.Failures++
		st.LastError = err.Error()
		delay := backoff(src.Interval, st.Failures, w.cfg.MaxBackoff)
		st.NextFetch = now.Add(jitter(delay))
		w.cfg.Log("watcher: source %s: %v (failure %d in a row; next try in %v)", src.Name, err, st.Failures, delay.Round(time.Millisecond))
		err = fmt.Errorf("source %s: %w", src.Name, err)
	} else {
		if st.Failures > 0 {
			w.cfg.Log("watcher: source %s: fetching again after %d failures", src.Name, st.Failures)
		}
		st.LastCommit = head
		st.LastFetch = now
		st.LastError = ""
		st.Failures = 0
		st.NextFetch = now.Add(jitter(src.Interval))
	}
	perr := w.cfg.State.PutSourceStatus(ctx, st)
	// The status is kept in memory all the same; the store catches up at
	// the next fetch.
	switch began, ended := w.errTurn(w.saveErrs, src.Name, perr); {
	case began:
		w.cfg.Log("watcher: source %s: saving its status: %v; it is kept in memory and saved once the store takes it", src.Name, perr)
	case ended:
		w.cfg.Log("watcher: source %s: its status is saved again", src.Name)
	}
	return st, err
}

// errTurn records err as source's last error in errs (under saveMu) and
// reports whether it is a new one or the end of one: what is logged, so
// that an error is said once while it stays the same.
func (w *watcher) errTurn(errs map[string]string, source string, err error) (began, ended bool) {
	w.saveMu.Lock()
	defer w.saveMu.Unlock()
	last := errs[source]
	switch {
	case err != nil && err.Error() != last:
		errs[source] = err.Error()
		return true, false
	case err == nil && last != "":
		delete(errs, source)
		return false, true
	}
	return false, false
}

// timeout is what bounds one fetch of src: its own timeout, else the
// watcher's.
func (w *watcher) timeout(src store.Source) time.Duration {
	if src.Timeout > 0 {
		return src.Timeout
	}
	return w.cfg.FetchTimeout
}

// fetchAndRecord fetches the branch and, when its head is not last, records
// the event and calls OnEvent. It returns the head.
func (w *watcher) fetchAndRecord(ctx context.Context, s *source, src store.Source, rem *gitauth.Remote, last string) (string, error) {
	if err := w.openSourceMirror(s, src, rem); err != nil {
		return "", err
	}
	repo := s.repo
	if s.mirrorBranch != "" && s.mirrorBranch != src.Branch {
		// The source watches another branch now: its first head there
		// is new, not a move of the old branch.
		last = ""
	}
	head, err := w.fetchBranch(ctx, repo, rem, src.Branch, w.timeout(src))
	if err != nil {
		return "", err
	}
	if head.String() != last {
		ev := Event{Source: src.Name, Branch: src.Branch, Previous: last, Commit: head.String(), At: time.Now().UTC()}
		if last != "" {
			forced, err := isForced(repo, plumbing.NewHash(last), head)
			if err != nil {
				return "", fmt.Errorf("comparing %s with the previous head %s: %w; delete the mirror folder %s and ferry makes it again", head, last, err, w.mirrorPath(src.Name))
			}
			ev.Forced = forced
		}
		stored, err := w.cfg.State.RecordSourceEvent(ctx, ev)
		if err != nil {
			return "", fmt.Errorf("recording the new head %s: %w; ferry tries again at the next fetch", head, err)
		}
		how := "new head"
		if stored.Forced {
			how = "force-pushed"
		}
		w.cfg.Log("watcher: source %s: branch %s %s %s (was %q)", src.Name, src.Branch, how, stored.Commit, stored.Previous)
		if w.cfg.OnEvent != nil {
			w.cfg.OnEvent(stored)
		}
	}
	// Recorded after the event, so that the branch it names is the one
	// LastCommit belongs to.
	if s.mirrorURL != rem.URL() || s.mirrorBranch != src.Branch {
		if err := setRemote(repo, rem.URL(), src.Branch); err != nil {
			w.cfg.Log("watcher: source %s: updating the mirror's remote: %v", src.Name, err)
		} else {
			s.mirrorURL, s.mirrorBranch = rem.URL(), src.Branch
		}
	}
	return head.String(), nil
}

// openSourceMirror opens the source's mirror into s.repo, once; the
// caller holds the mirror's lock.
func (w *watcher) openSourceMirror(s *source, src store.Source, rem *gitauth.Remote) error {
	if s.repo != nil {
		return nil
	}
	repo, err := openMirror(w.mirrorPath(src.Name), rem.URL(), src.Branch)
	if err != nil {
		return err
	}
	s.repo = repo
	s.mirrorURL, s.mirrorBranch = mirroredRemote(repo)
	return nil
}

// backoff is the wait after failures fetches failed in a row: the
// interval doubled each time, at most maxDelay (but never less than the
// interval).
func backoff(interval time.Duration, failures int, maxDelay time.Duration) time.Duration {
	d := interval
	for i := 0; i < failures && d < maxDelay; i++ {
		d *= 2
	}
	return max(interval, min(d, maxDelay))
}

// jitter returns d moved randomly by up to ±jitterFraction.
func jitter(d time.Duration) time.Duration {
	return d + time.Duration((rand.Float64()*2-1)*jitterFraction*float64(d))
}

// Add implements Watcher.
func (w *watcher) Add(ctx context.Context, src store.Source) error {
	rem, err := checkSource(src)
	if err != nil {
		return err
	}
	w.mu.Lock()
	_, known := w.sources[src.Name]
	w.mu.Unlock()
	var st store.SourceStatus
	if !known {
		st, err = w.cfg.State.GetSourceStatus(ctx, src.Name)
		if errors.Is(err, store.ErrNotFound) {
			st, err = store.SourceStatus{}, nil
		}
		if err != nil {
			return fmt.Errorf("source %s: reading its status: %w", src.Name, err)
		}
		st.Source = src.Name
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	if w.state == stopped {
		return fmt.Errorf("source %s: %w", src.Name, errStopped)
	}
	now := time.Now()
	if s := w.sources[src.Name]; s != nil {
		same := s.rem.SameAccess(rem) && s.src.Branch == src.Branch
		intervalChanged := s.src.Interval != src.Interval
		s.src, s.rem = src, rem
		switch {
		case !same:
			w.request(s)
		case intervalChanged && s.index >= 0 && s.status.Failures == 0:
			if next := now.Add(jitter(src.Interval)); next.Before(s.next) {
				s.next = next
				heap.Fix(&w.queue, s.index)
				w.signal()
			}
		}
		return nil
	}
	s := &source{src: src, rem: rem, status: st, index: -1, next: now}
	// A source that was backing off before a restart keeps its wait
	// (Sync skips it); one whose poll is simply due fetches at once.
	if st.Failures > 0 && st.NextFetch.After(now) {
		s.next = minTime(st.NextFetch, now.Add(backoff(src.Interval, st.Failures, w.cfg.MaxBackoff)))
	}
	w.sources[src.Name] = s
	heap.Push(&w.queue, s)
	w.signal()
	return nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// request asks for a fetch of s as soon as possible. Called with w.mu
// held.
func (w *watcher) request(s *source) {
	switch {
	case s.fetching:
		s.again = true
	case s.index >= 0:
		s.next = time.Now()
		heap.Fix(&w.queue, s.index)
		w.signal()
	}
}

// lookup returns the watched source of that name. Called with w.mu held.
func (w *watcher) lookup(name string) (*source, error) {
	s := w.sources[name]
	if s == nil {
		return nil, fmt.Errorf("source %s is not watched: %w", name, store.ErrNotFound)
	}
	return s, nil
}

// Remove implements Watcher.
func (w *watcher) Remove(ctx context.Context, name string) error {
	w.mu.Lock()
	s, err := w.lookup(name)
	if err != nil {
		w.mu.Unlock()
		return err
	}
	s.removed = true
	delete(w.sources, name)
	if s.index >= 0 {
		heap.Remove(&w.queue, s.index)
	}
	waiters := s.waiters
	s.waiters = nil
	w.mu.Unlock()
	for _, c := range waiters {
		c <- fmt.Errorf("source %s was removed", name)
	}

	// The lock waits for a fetch in progress to end.
	unlock, err := w.lockMirror(ctx, name)
	if err != nil {
		return fmt.Errorf("source %s: waiting for its fetch to end before deleting its mirror: %w", name, err)
	}
	defer unlock()
	w.mu.Lock()
	_, again := w.sources[name]
	w.mu.Unlock()
	if again {
		// Added again meanwhile: the mirror is its.
		return nil
	}
	if err := os.RemoveAll(w.mirrorPath(name)); err != nil {
		return fmt.Errorf("source %s: deleting its mirror: %w", name, err)
	}
	return nil
}

// Sync implements Watcher.
func (w *watcher) Sync(ctx context.Context, name string) error {
	c := make(chan error, 1)
	w.mu.Lock()
	s, err := w.lookup(name)
	if err == nil && w.state == stopped {
		err = fmt.Errorf("source %s: %w", name, errStopped)
	}
	if err != nil {
		w.mu.Unlock()
		return err
	}
	s.waiters = append(s.waiters, c)
	w.request(s)
	w.mu.Unlock()
	select {
	case err := <-c:
		return err
	case <-ctx.Done():
		return fmt.Errorf("source %s: waiting for the fetch: %w", name, ctx.Err())
	}
}

// Nudge implements Watcher.
func (w *watcher) Nudge(name string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	s, err := w.lookup(name)
	if err != nil {
		return err
	}
	w.request(s)
	return nil
}

// Status implements Watcher.
func (w *watcher) Status(name string) (store.SourceStatus, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	s, err := w.lookup(name)
	if err != nil {
		return store.SourceStatus{}, err
	}
	return s.status, nil
}

// sourceHeap orders queued sources by their next poll.
type sourceHeap []*source

func (h sourceHeap) Len() int           { return len(h) }
func (h sourceHeap) Less(i, j int) bool { return h[i].next.Before(h[j].next) }
func (h sourceHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *sourceHeap) Push(x any) {
	s := x.(*source)
	s.index = len(*h)
	*h = append(*h, s)
}
func (h *sourceHeap) Pop() any {
	old := *h
	s := old[len(old)-1]
	old[len(old)-1] = nil
	s.index = -1
	*h = old[:len(old)-1]
	return s
}
