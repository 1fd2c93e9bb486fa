package watcher

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/ferrycd/ferry/store"
)

// Watcher keeps a bare mirror of every watched Source, fetches its branch
// on a jittered interval (and when asked), and records each new head.
type Watcher interface {
	// Run polls every source until ctx ends, then waits for the fetches in
	// progress to stop and returns nil. Fetches happen only while Run
	// runs; it may be called once.
	Run(ctx context.Context) error
	// Add starts watching src, or updates the watched source of that name:
	// a new URL, branch or credentials fetch at once, a new interval
	// applies from the next fetch. A source that is not valid is refused
	// with an error saying what to change, and nothing changes. The
	// source's status is read from the StateStore, so a source watched
	// before a restart carries on from the head it had seen.
	Add(ctx context.Context, src store.Source) error
	// Remove stops watching a source, waits for a fetch of it in progress
	// to end and deletes its mirror. Its status and events stay in the
	// store: call Remove before deleting the source there, since once
	// Remove returns the watcher writes nothing more for it.
	Remove(ctx context.Context, name string) error
	// Sync fetches the source now and returns after that fetch, with its
	// error. The fetch starts after Sync is called, so a push made before
	// is seen: when a fetch is already running, one more follows it, and
	// every Sync made meanwhile shares that one. The commit always comes
	// from Git, never from the caller.
	Sync(ctx context.Context, name string) error
	// Nudge asks for a fetch now, as Sync does, without waiting for it:
	// what a webhook receiver calls.
	Nudge(name string) error
	// Status is what the watcher last saw of a source; an error satisfying
	// store.ErrNotFound when it is not watched.
	Status(name string) (store.SourceStatus, error)
	// Tree returns the tree of commit (a full hash) from the source's
	// mirror, read straight from Git's objects without a checkout. It
	// implements fs.ReadDirFS, fs.ReadFileFS, fs.StatFS and fs.ReadLinkFS,
	// follows symlinks only inside the tree, and is safe for concurrent
	// use. The source need not be watched at the moment, only mirrored: a
	// run resumed at start-up may ask before its source is added again.
	Tree(ctx context.Context, source, commit string) (fs.FS, error)
	// CommitTime returns the committer time of commit, from the mirror:
	// what a reproducible build stamps its files with.
	CommitTime(ctx context.Context, source, commit string) (time.Time, error)
	// CommitAuthor is commit's author (name and email), from the mirror.
	CommitAuthor(ctx context.Context, source, commit string) (name, email string, err error)
	// IsAncestor reports whether commit ancestor is descendant or one of
	// its ancestors, from the mirror: which of two commits of a branch is
	// the newer is Git's answer, not their times'. A commit that is not in
	// the mirror is an error.
	IsAncestor(ctx context.Context, source, ancestor, descendant string) (bool, error)
	// SetPulls turns polling of the source's pull (merge) requests on or
	// off; off by default. When on, each poll of the source, after its
	// branch is fetched, lists the remote's refs once, fetches the heads
	// of requests that are new or moved into the mirror (as
	// refs/pull/N/head or refs/merge-requests/N/head), records them in
	// Config.Pulls and tells Config.OnPull: opened, updated, or closed
	// when the ref is gone. The first listing after polling is turned on
	// for a source records the requests it finds and tells nothing of
	// them (GitHub keeps the refs of closed requests, and thousands of
	// old ones must not open thousands of previews): ferry acts on those
	// from their next change. What was seen outlives a restart, so that
	// requests known before are not opened again and changes made while
	// ferry was down are told. Turning it off forgets what was seen (at
	// the source's next fetch): turned on again, the first listing is
	// taken anew. So call it off only for a source whose previews are
	// known to be off, not at start-up before that is known. SetPulls may
	// come before Add.
	SetPulls(source string, on bool)
	// FetchPull fetches the head of the source's request number now
	// (a webhook asked), bounded by the source's timeout, and returns its
	// commit; open is false when the remote has no such request's ref.
	// The head is recorded as seen, so the next poll does not tell it
	// again: the caller acts on what FetchPull returns. The commit is
	// then in the mirror for Tree and the others.
	FetchPull(ctx context.Context, source string, number int) (commit string, open bool, err error)
}

// StateStore is where the watcher keeps what it saw; store.Sources
// satisfies it.
type StateStore interface {
	PutSourceStatus(ctx context.Context, st store.SourceStatus) error
	// GetSourceStatus returns an error satisfying store.ErrNotFound for a
	// source that has none yet.
	GetSourceStatus(ctx context.Context, name string) (store.SourceStatus, error)
	// RecordSourceEvent stores ev and sets the source's LastCommit to
	// ev.Commit, in one transaction.
	RecordSourceEvent(ctx context.Context, ev store.SourceEvent) (store.SourceEvent, error)
}

var _ StateStore = store.Sources(nil)

// Event is a new head of a source's branch, as recorded: a new commit, or
// a force-push when Forced is set. Previous is "" for the first head seen.
type Event = store.SourceEvent

// Config wires a watcher.
type Config struct {
	// Dir holds the mirrors, one bare repository per source at
	// Dir/<source>.git, and the known_hosts file. Required; created when
	// missing.
	Dir string
	// State keeps every source's status and events. Required.
	State StateStore
	// OnEvent, when set, is called for each new head after it is recorded,
	// from the goroutine of the source's fetch: it should hand the event
	// on (to a queue, say) and return, since the source is not fetched
	// again meanwhile (so it must not wait for a Sync of it). An event
	// recorded just before a crash may never reach OnEvent; read the store
	// at start-up to catch up.
	OnEvent func(Event)
	// OnPull, when set, hears each change of a pull (merge) request of a
	// source whose requests are polled (Watcher.SetPulls), after it is
	// recorded, from the goroutine of the source's fetch: like OnEvent it
	// should hand the event on and return. FromWebhook is false and the
	// Commit comes from the mirror.
	OnPull func(store.PullEvent)
	// Pulls keeps what was seen of sources' requests. Default: State when
	// it is a PullStore (as *store.SQLite is), else memory, forgotten on
	// exit.
	Pulls PullStore
	// Log hears what happens to sources: new heads, failed fetches, new
	// SSH host keys. Default: nothing.
	Log func(format string, args ...any)
	// MaxBackoff caps the wait after failed fetches (default
	// DefaultMaxBackoff).
	MaxBackoff time.Duration
	// Parallel bounds the fetches running at once, over all sources
	// (default DefaultParallel).
	Parallel int
	// FetchTimeout bounds one fetch of a source that has no Timeout of
	// its own (default DefaultFetchTimeout).
	FetchTimeout time.Duration
	// KnownHosts is the known_hosts file that pins SSH servers' host keys
	// (default Dir/known_hosts). A host it does not list is trusted on
	// first use and added; a host whose key differs from the one listed is
	// refused. Put a server's keys in it beforehand (ssh-keyscan HOST) to
	// trust nothing on first use.
	KnownHosts string
	// OnFetch, when set, hears how long each fetch took and its error (nil
	// for a success), from the fetch's goroutine; it must not block. A
	// fetch cut short by Run's end is not told.
	OnFetch func(source string, took time.Duration, err error)
}

// Defaults of a Config.
const (
	// DefaultMaxBackoff: a server that is down is asked at most every five
	// minutes, which a Git host's rate limits tolerate, and ferry notices
	// its return soon enough.
	DefaultMaxBackoff = 5 * time.Minute
	// DefaultParallel: fetches mostly wait on the network; four at once
	// keep 200 sources polled every 30 s on time without a burst of
	// connections to one Git host.
	DefaultParallel = 4
	// DefaultFetchTimeout: what Flux gives a GitRepository. Enough for
	// the first fetch of most repositories; a hung server shows as failing
	// within a minute instead of looking healthy. A very large repository
	// gets a longer Timeout of its own.
	DefaultFetchTimeout = 60 * time.Second
)

// New returns a watcher with no sources; Add them, then Run it.
func New(cfg Config) (Watcher, error) {
	if cfg.Dir == "" {
		return nil, errors.New("watcher: Config.Dir is required: the folder where the mirrors live")
	}
	if cfg.State == nil {
		return nil, errors.New("watcher: Config.State is required: the store that keeps sources' status and events")
	}
	if cfg.MaxBackoff < 0 || cfg.Parallel < 0 || cfg.FetchTimeout < 0 {
		return nil, errors.New("watcher: MaxBackoff, Parallel and FetchTimeout must not be negative (0 means the default)")
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.Parallel == 0 {
		cfg.Parallel = DefaultParallel
	}
	if cfg.FetchTimeout == 0 {
		cfg.FetchTimeout = DefaultFetchTimeout
	}
	if cfg.Log == nil {
		cfg.Log = func(string, ...any) {}
	}
	if cfg.Pulls == nil {
		if ps, ok := cfg.State.(PullStore); ok {
			cfg.Pulls = ps
		} else {
			cfg.Pulls = newMemPulls()
		}
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("watcher: mirror folder %s: %w", cfg.Dir, err)
	}
	cfg.Dir = dir
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("watcher: creating the mirror folder: %w; give a folder ferry may write", err)
	}
	// Mirrors are made aside and renamed into place; a crash may have left
	// one half made.
	if stale, err := filepath.Glob(filepath.Join(dir, ".*.git-*")); err == nil {
		for _, p := range stale {
			os.RemoveAll(p)
		}
	}
	if cfg.KnownHosts == "" {
		cfg.KnownHosts = filepath.Join(dir, "known_hosts")
	}
	return newWatcher(cfg), nil
}
