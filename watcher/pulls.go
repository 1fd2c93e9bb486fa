package watcher

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/memory"

	"github.com/ferrycd/ferry/internal/gitauth"
	"github.com/ferrycd/ferry/store"
)

// PullStore is where the watcher keeps the pull requests it saw, so that a
// restart neither announces open ones again nor misses what changed while
// ferry was down; *store.SQLite satisfies it.
type PullStore interface {
	// PullHeads returns the requests of source recorded as open, by
	// number, with their heads, and whether the first listing was taken.
	PullHeads(ctx context.Context, source string) (heads map[int]string, baselined bool, err error)
	// SetPullHead records commit as the head of request number; "" forgets
	// the request.
	SetPullHead(ctx context.Context, source string, number int, commit string) error
	// BaselinePulls records heads as all the open requests, replacing what
	// was recorded, and marks the first listing taken.
	BaselinePulls(ctx context.Context, source string, heads map[int]string) error
	// ForgetPulls forgets the requests and the first listing.
	ForgetPulls(ctx context.Context, source string) error
}

var _ PullStore = (*store.SQLite)(nil)

// pullRefPrefixes are where hosts keep the heads of requests: GitHub's
// pull requests, GitLab's merge requests. Both end in /N/head.
var pullRefPrefixes = []string{"refs/pull/", "refs/merge-requests/"}

// parsePullRef returns the number of a request's head ref; ok false for
// any other ref (refs/pull/N/merge, GitHub's trial merge, among them: it
// is not the author's code but GitHub's, and moves when the base does).
func parsePullRef(name string) (number int, ok bool) {
	for _, p := range pullRefPrefixes {
		rest, found := strings.CutPrefix(name, p)
		if !found {
			continue
		}
		num, found := strings.CutSuffix(rest, "/head")
		if !found {
			return 0, false
		}
		return store.PullNumber(num)
	}
	return 0, false
}

// pullState is what the watcher knows of a source's requests: loaded from
// the PullStore at the first poll, then kept in step with it. Only the
// holder of the mirror's lock reads or changes it.
type pullState struct {
	heads     map[int]string // open requests' heads
	baselined bool
}

// SetPulls implements Watcher.
func (w *watcher) SetPulls(source string, on bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	was := w.pullsOn[source]
	if on {
		w.pullsOn[source] = true
		delete(w.pullsForget, source)
		if !was {
			// why: the first listing should not wait for the next poll;
			// the sooner it is taken, the fewer requests it swallows.
			if s := w.sources[source]; s != nil {
				w.request(s)
			}
		}
		return
	}
	delete(w.pullsOn, source)
	w.pullsForget[source] = true
}

// pullsFlags reports whether polling source's requests is on and whether
// what was seen of them must be forgotten first (taking that request).
func (w *watcher) pullsFlags(source string) (on, forget bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	on, forget = w.pullsOn[source], w.pullsForget[source]
	delete(w.pullsForget, source)
	return on, forget
}

// pollPullsIfOn polls the source's requests after a fetch of its branch,
// when polling them is on; it holds the mirror's lock. Failures are
// logged (once while they stay the same): the branch's status is the
// branch's, and the next poll tries again.
func (w *watcher) pollPullsIfOn(ctx context.Context, s *source, src store.Source, rem *gitauth.Remote) {
	on, forget := w.pullsFlags(src.Name)
	if forget {
		if err := w.cfg.Pulls.ForgetPulls(ctx, src.Name); err != nil {
			w.cfg.Log("watcher: source %s: forgetting its pull requests: %v; ferry tries again at the next fetch", src.Name, err)
			w.mu.Lock()
			if !w.pullsOn[src.Name] {
				w.pullsForget[src.Name] = true
			}
			w.mu.Unlock()
		}
		s.pulls = nil
	}
	if !on {
		return
	}
	pctx, cancel := context.WithTimeout(ctx, w.timeout(src))
	defer cancel()
	err := w.pollPulls(pctx, s, src, rem)
	if ctx.Err() != nil {
		return
	}
	switch began, ended := w.errTurn(w.pullErrs, src.Name, err); {
	case began:
		w.cfg.Log("watcher: source %s: pull requests: %v; ferry tries again at the next fetch", src.Name, err)
	case ended:
		w.cfg.Log("watcher: source %s: pull requests are polled again", src.Name)
	}
}

// loadPulls reads what was seen of the source's requests, once.
func (w *watcher) loadPulls(ctx context.Context, s *source, name string) error {
	if s.pulls != nil {
		return nil
	}
	heads, base, err := w.cfg.Pulls.PullHeads(ctx, name)
	if err != nil {
		return fmt.Errorf("reading the pull requests seen before: %w", err)
	}
	if heads == nil {
		heads = map[int]string{}
	}
	s.pulls = &pullState{heads: heads, baselined: base}
	return nil
}

// pollPulls lists the remote's refs, fetches the heads of requests that
// are new or moved into the mirror, under the same names, and records and
// announces each change: opened, updated, closed (its ref is gone). The
// first listing records the requests it finds and announces none: GitHub
// keeps the refs of closed requests, so a repository with thousands of
// them would otherwise open thousands of previews. Each change is recorded
// before OnPull hears it, so a restart announces it no second time.
func (w *watcher) pollPulls(ctx context.Context, s *source, src store.Source, rem *gitauth.Remote) error {
	if err := w.openSourceMirror(s, src, rem); err != nil {
		return err
	}
	if err := w.loadPulls(ctx, s, src.Name); err != nil {
		return err
	}
	listed, err := w.listPulls(ctx, rem, w.timeout(src))
	if err != nil {
		return err
	}
	if !s.pulls.baselined {
		heads := make(map[int]string, len(listed))
		for n, ref := range listed {
			heads[n] = ref.Hash().String()
		}
		if err := w.cfg.Pulls.BaselinePulls(ctx, src.Name, heads); err != nil {
			return fmt.Errorf("recording the first listing: %w", err)
		}
		s.pulls.heads, s.pulls.baselined = heads, true
		w.cfg.Log("watcher: source %s: %d pull requests open at the first listing; ferry acts on them from their next change", src.Name, len(heads))
		return nil
	}

	var refs []plumbing.ReferenceName
	for n, ref := range listed {
		if s.pulls.heads[n] != ref.Hash().String() {
			refs = append(refs, ref.Name())
		}
	}
	if err := w.fetchPullRefs(ctx, s.repo, rem, refs, w.timeout(src)); err != nil {
		return err
	}

	numbers := make([]int, 0, len(listed)+len(s.pulls.heads))
	for n := range listed {
		numbers = append(numbers, n)
	}
	for n := range s.pulls.heads {
		if _, ok := listed[n]; !ok {
			numbers = append(numbers, n)
		}
	}
	slices.Sort(numbers)
	for _, n := range numbers {
		ref, open := listed[n]
		old, known := s.pulls.heads[n]
		ev := store.PullEvent{Source: src.Name, Number: n}
		switch {
		case open && !known:
			ev.Action = store.PullOpened
		case open && old != ref.Hash().String():
			ev.Action = store.PullUpdated
		case !open && known:
			ev.Action = store.PullClosed
		default:
			continue
		}
		if open {
			// The mirror's ref, not the listing: the head may have moved
			// between the two, and the fetched one is what the mirror has.
			local, err := s.repo.Reference(ref.Name(), true)
			if err != nil {
				return fmt.Errorf("request #%d is not in the mirror after the fetch: %w; delete the mirror folder and ferry makes it again", n, err)
			}
			ev.Commit = local.Hash().String()
		}
		if err := w.notePull(ctx, s, src.Name, n, ev.Commit); err != nil {
			return fmt.Errorf("recording request #%d: %w", n, err)
		}
		if open {
			w.cfg.Log("watcher: source %s: request #%d %s at %s", src.Name, n, ev.Action, ev.Commit)
		} else {
			w.cfg.Log("watcher: source %s: request #%d %s", src.Name, n, ev.Action)
		}
		if w.cfg.OnPull != nil {
			w.cfg.OnPull(ev)
		}
	}
	return nil
}

// removePullRefs deletes the mirror's refs of request n. Its objects stay
// until the mirror is made again: a preview being torn down may still
// read its commit.
func removePullRefs(repo *git.Repository, n int) {
	for _, p := range pullRefPrefixes {
		_ = repo.Storer.RemoveReference(plumbing.ReferenceName(p + strconv.Itoa(n) + "/head"))
	}
}

// listPulls lists the remote's refs (one round trip, as `git ls-remote`)
// and returns the requests' heads by number.
func (w *watcher) listPulls(ctx context.Context, rem *gitauth.Remote, timeout time.Duration) (map[int]*plumbing.Reference, error) {
	auth, err := rem.Auth(w.hostKeys)
	if err != nil {
		return nil, &fetchError{url: rem.URL(), reason: err.Error(), err: err}
	}
	bound, release := rem.Bound(ctx)
	defer release()
	r := git.NewRemote(memory.NewStorage(), &config.RemoteConfig{Name: originName, URLs: []string{rem.URL()}})
	refs, err := r.ListContext(ctx, &git.ListOptions{Auth: auth, ProxyOptions: bound})
	if errors.Is(err, transport.ErrEmptyRemoteRepository) {
		return map[int]*plumbing.Reference{}, nil
	}
	if err != nil {
		return nil, explainPulls(ctx, err, rem, timeout)
	}
	out := map[int]*plumbing.Reference{}
	for _, ref := range refs {
		if n, ok := parsePullRef(ref.Name().String()); ok && ref.Type() == plumbing.HashReference {
			out[n] = ref
		}
	}
	return out, nil
}

// fetchPullRefs fetches refs into the same names, forced (a request's
// head is force-pushed as often as not). Only these refspecs are given,
// and nothing is pruned, so the branch's ref is left as it is, as the
// branch's fetch leaves these.
func (w *watcher) fetchPullRefs(ctx context.Context, repo *git.Repository, rem *gitauth.Remote, refs []plumbing.ReferenceName, timeout time.Duration) error {
	if len(refs) == 0 {
		return nil
	}
	specs := make([]config.RefSpec, len(refs))
	for i, r := range refs {
		specs[i] = config.RefSpec("+" + r.String() + ":" + r.String())
	}
	return w.fetchRefs(ctx, repo, rem, specs, func(err error) error {
		return explainPulls(ctx, err, rem, timeout)
	})
}

// explainPulls says what a failed listing or fetch of requests means.
func explainPulls(ctx context.Context, err error, rem *gitauth.Remote, timeout time.Duration) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return &timeoutError{url: rem.URL(), timeout: timeout, err: err}
	}
	fe := &fetchError{url: rem.URL(), err: err}
	if errors.Is(err, git.NoMatchingRefSpecError{}) {
		fe.reason = "a pull request's head was deleted while it was fetched"
		return fe
	}
	fe.reason, fe.advice, _ = rem.Explain(err)
	return fe
}

// FetchPull implements Watcher.
func (w *watcher) FetchPull(ctx context.Context, source string, number int) (string, bool, error) {
	if number <= 0 {
		return "", false, fmt.Errorf("source %s: request number %d: give a positive number", source, number)
	}
	w.mu.Lock()
	s, err := w.lookup(source)
	var src store.Source
	var rem *gitauth.Remote
	if err == nil {
		src, rem = s.src, s.rem
	}
	w.mu.Unlock()
	if err != nil {
		return "", false, err
	}
	unlock, err := w.lockMirror(ctx, source)
	if err != nil {
		return "", false, fmt.Errorf("source %s: waiting for its fetch to end: %w", source, err)
	}
	defer unlock()
	w.mu.Lock()
	removed := s.removed
	w.mu.Unlock()
	if removed {
		return "", false, fmt.Errorf("source %s was removed: %w", source, store.ErrNotFound)
	}
	fctx, cancel := context.WithTimeout(ctx, w.timeout(src))
	defer cancel()
	commit, open, err := w.fetchPull(fctx, s, src, rem, number)
	if err != nil {
		return "", false, fmt.Errorf("source %s: request #%d: %w", source, number, err)
	}
	return commit, open, nil
}

// fetchPull is FetchPull with the mirror locked and the timeout set.
func (w *watcher) fetchPull(ctx context.Context, s *source, src store.Source, rem *gitauth.Remote, number int) (string, bool, error) {
	if err := w.openSourceMirror(s, src, rem); err != nil {
		return "", false, err
	}
	if err := w.loadPulls(ctx, s, src.Name); err != nil {
		return "", false, err
	}
	// The listing says whether the request is GitHub's or GitLab's, and
	// whether it is open at all: a fetch of a ref that is gone is an error
	// that says less.
	listed, err := w.listPulls(ctx, rem, w.timeout(src))
	if err != nil {
		return "", false, err
	}
	ref, open := listed[number]
	if !open {
		if _, known := s.pulls.heads[number]; known {
			if err := w.notePull(ctx, s, src.Name, number, ""); err != nil {
				return "", false, fmt.Errorf("recording it closed: %w", err)
			}
		}
		return "", false, nil
	}
	if err := w.fetchPullRefs(ctx, s.repo, rem, []plumbing.ReferenceName{ref.Name()}, w.timeout(src)); err != nil {
		return "", false, err
	}
	local, err := s.repo.Reference(ref.Name(), true)
	if err != nil {
		return "", false, fmt.Errorf("not in the mirror after the fetch: %w; delete the mirror folder and ferry makes it again", err)
	}
	commit := local.Hash().String()
	if err := w.notePull(ctx, s, src.Name, number, commit); err != nil {
		return "", false, fmt.Errorf("recording its head: %w", err)
	}
	return commit, true, nil
}

// notePull records commit as the head of request n, in Config.Pulls and
// then in s.pulls; a commit of "" records it closed, and its refs leave
// the mirror. The caller holds the mirror's lock.
func (w *watcher) notePull(ctx context.Context, s *source, source string, n int, commit string) error {
	if err := w.cfg.Pulls.SetPullHead(ctx, source, n, commit); err != nil {
		return err
	}
	if commit == "" {
		delete(s.pulls.heads, n)
		removePullRefs(s.repo, n)
	} else {
		s.pulls.heads[n] = commit
	}
	return nil
}

// memPulls is a PullStore in memory, for a watcher whose State keeps no
// pull requests: forgotten on exit, so that a restart takes a first
// listing again.
type memPulls struct {
	mu    sync.Mutex
	heads map[string]map[int]string
	base  map[string]bool
}

func newMemPulls() *memPulls {
	return &memPulls{heads: map[string]map[int]string{}, base: map[string]bool{}}
}

func (m *memPulls) PullHeads(_ context.Context, source string) (map[int]string, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[int]string{}
	for n, c := range m.heads[source] {
		out[n] = c
	}
	return out, m.base[source], nil
}

func (m *memPulls) SetPullHead(_ context.Context, source string, number int, commit string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if commit == "" {
		delete(m.heads[source], number)
		return nil
	}
	if m.heads[source] == nil {
		m.heads[source] = map[int]string{}
	}
	m.heads[source][number] = commit
	return nil
}

func (m *memPulls) BaselinePulls(_ context.Context, source string, heads map[int]string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	cp := make(map[int]string, len(heads))
	for n, c := range heads {
		cp[n] = c
	}
	m.heads[source], m.base[source] = cp, true
	return nil
}

func (m *memPulls) ForgetPulls(_ context.Context, source string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.heads, source)
	delete(m.base, source)
	return nil
}
