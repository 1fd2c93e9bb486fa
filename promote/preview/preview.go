package preview

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ferrycd/ferry/manifests"
	"github.com/ferrycd/ferry/store"
)

// Store is what the manager keeps in the store: *store.SQLite.
type Store interface {
	PutPreview(ctx context.Context, p store.Preview) error
	GetPreview(ctx context.Context, source string, number int) (store.Preview, error)
	ListPreviews(ctx context.Context) ([]store.Preview, error)
}

var _ Store = (*store.SQLite)(nil)

// Defaults of a Config.
const (
	// DefaultMax previews at once: each runs the functions of a release,
	// so the cap bounds what pull requests can make a server run.
	DefaultMax = 10
	// DefaultLabel is the label that approves a fork's head.
	DefaultLabel = "ferry/preview"
	// DefaultInterval between garbage collections: a ttl is hours, so a
	// minute late is nothing.
	DefaultInterval = time.Minute
)

// Config wires a Manager.
type Config struct {
	// Store keeps the previews. Required.
	Store Store
	// Enabled reports whether source's Pipeline, read at the source's
	// branch head, enables previews, and their ttl. Required.
	Enabled func(ctx context.Context, source string) (on bool, ttl time.Duration, err error)
	// Fetch fetches pull request number's head into source's mirror and
	// returns its commit, and whether the request is open. Required.
	Fetch func(ctx context.Context, source string, number int) (commit string, open bool, err error)
	// Enqueue queues a pipeline run of commit for the request, which
	// deploys to its preview. It must be idempotent, yet deploy again a
	// run done whose release the preview no longer runs (it was made
	// again): pipeline.Executor's EnqueuePull does. Required.
	Enqueue func(ctx context.Context, source string, number int, commit string) error
	// Make makes environment env (its target; the promoter and the API
	// learn of it). It must be idempotent: it is called again for every
	// preview not torn down when Run starts. Required.
	Make func(ctx context.Context, env string) error
	// Remove tears environment env down and forgets it, for reason
	// (ReasonClosed, ReasonTTL, an eviction); an environment that is not
	// there (its Make failed) is no error. Required.
	Remove func(ctx context.Context, env, reason string) error
	// Tell hears each preview's change (building, ready, failed, torn
	// down). It must not block. Optional.
	Tell func(Event)
	// URL returns where env's gateway serves it (GATEWAY/pr-N-SOURCE),
	// for Ready events. Optional.
	URL func(env string) string
	// Open, when set, asks the Git host whether request number of source
	// is still open (known false: it cannot tell, as for a source on no
	// host it has an API for). Collect tears down those it says closed:
	// without webhooks a closed request is otherwise noticed only when
	// its ref goes, which GitHub never does, or by the ttl.
	Open func(ctx context.Context, source string, number int) (open, known bool, err error)
	// Max is the cap on previews at once, over every source (default
	// DefaultMax).
	Max int
	// Forks: build forks' pull requests without the label.
	Forks bool
	// Label approves a fork's head when an allowed user adds it (default
	// DefaultLabel).
	Label string
	// Labelers are the logins whose label counts; empty: anyone the Git
	// host lets label (on GitHub that needs triage access). Logins are
	// compared without case, as GitHub does.
	Labelers []string
	// Interval between garbage collections in Run (default
	// DefaultInterval).
	Interval time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Log hears what goes wrong in Run. Optional.
	Log func(format string, args ...any)
}

// EventKind names a preview's change.
type EventKind string

// The changes a Manager tells.
const (
	EventBuilding EventKind = "building"
	EventReady    EventKind = "ready"
	EventFailed   EventKind = "failed"
	EventTornDown EventKind = "torn down"
	// EventWaiting: a fork's head waits for the label before it is
	// built. Preview.Head is that head; the preview (if any) still runs
	// the head approved before.
	EventWaiting EventKind = "waiting for the label"
)

// Event is a preview's change, for the server to tell the pull request
// and chat.
type Event struct {
	Kind EventKind
	// Preview is the record as it is after the change.
	Preview store.Preview
	// URL is where the preview answers (EventReady, when Config.URL is
	// set).
	URL string
	// Functions maps each function to its image digest (EventReady).
	Functions map[string]string
	// Reason says why it failed or was torn down.
	Reason string
}

// Reasons a preview is torn down.
const (
	ReasonClosed = "closed"
	ReasonTTL    = "ttl"
)

// evictedReason is the reason of a preview evicted at the cap of max.
func evictedReason(max int) string {
	return fmt.Sprintf("evicted: the cap of %d previews was reached; the longest idle one goes", max)
}

// Manager keeps the previews.
type Manager struct {
	cfg Config
	// keys serialises the events of one pull request, fetch included, so
	// that an older head fetched first is not recorded after a newer one.
	keysMu sync.Mutex
	keys   map[key]*keyLock
	// mu guards every read-and-write of the records, and the cap.
	mu sync.Mutex
}

type key struct {
	source string
	number int
}

type keyLock struct {
	mu   sync.Mutex
	refs int
}

// New returns a Manager of cfg.
func New(cfg Config) (*Manager, error) {
	var missing []string
	for name, set := range map[string]bool{"Store": cfg.Store != nil, "Enabled": cfg.Enabled != nil, "Fetch": cfg.Fetch != nil,
		"Enqueue": cfg.Enqueue != nil, "Make": cfg.Make != nil, "Remove": cfg.Remove != nil} {
		if !set {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return nil, fmt.Errorf("preview: the manager needs %v in its Config", missing)
	}
	if cfg.Max < 0 {
		return nil, fmt.Errorf("preview: Max must not be negative, not %d; 0 is the default %d", cfg.Max, DefaultMax)
	}
	if cfg.Max == 0 {
		cfg.Max = DefaultMax
	}
	if cfg.Label == "" {
		cfg.Label = DefaultLabel
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Tell == nil {
		cfg.Tell = func(Event) {}
	}
	if cfg.Log == nil {
		cfg.Log = func(string, ...any) {}
	}
	return &Manager{cfg: cfg, keys: map[key]*keyLock{}}, nil
}

// lock takes the lock of one pull request; the func it returns frees it.
func (m *Manager) lock(source string, number int) func() {
	k := key{source, number}
	m.keysMu.Lock()
	l := m.keys[k]
	if l == nil {
		l = &keyLock{}
		m.keys[k] = l
	}
	l.refs++
	m.keysMu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		m.keysMu.Lock()
		if l.refs--; l.refs == 0 {
			delete(m.keys, k)
		}
		m.keysMu.Unlock()
	}
}

// Handle acts on a change of a pull request and returns what it did, in
// a sentence for the webhook's answer and the log. Opened, updated and
// labelled requests of a source with previews get their head built into
// their preview, made if new; a closed one's preview is torn down.
func (m *Manager) Handle(ctx context.Context, ev store.PullEvent) (string, error) {
	if ev.Source == "" || ev.Number <= 0 {
		return "", fmt.Errorf("preview: a pull request event needs a source and a positive number (got %q, %d)", ev.Source, ev.Number)
	}
	defer m.lock(ev.Source, ev.Number)()
	switch ev.Action {
	case store.PullClosed:
		return m.closed(ctx, ev.Source, ev.Number)
	case store.PullOpened, store.PullUpdated, store.PullLabeled:
		return m.open(ctx, ev)
	}
	return "", fmt.Errorf("preview: pull request %d of %s: unknown action %q (want opened, updated, closed or labeled)", ev.Number, ev.Source, ev.Action)
}

// closed tears the request's preview down.
func (m *Manager) closed(ctx context.Context, source string, number int) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, err := m.cfg.Store.GetPreview(ctx, source, number)
	if errors.Is(err, store.ErrNotFound) || err == nil && p.State == store.PreviewTornDown {
		return fmt.Sprintf("pull request %d of %s is closed; it has no preview", number, source), nil
	}
	if err != nil {
		return "", fmt.Errorf("preview: %w", err)
	}
	if err := m.tearDown(ctx, p, ReasonClosed); err != nil {
		return "", err
	}
	return fmt.Sprintf("pull request %d of %s is closed; preview %s is torn down", number, source, p.Environment), nil
}

// open builds the request's head into its preview, when the source has
// previews and the fork rule lets it.
func (m *Manager) open(ctx context.Context, ev store.PullEvent) (string, error) {
	env := store.PreviewName(ev.Source, ev.Number)
	on, ttl, err := m.cfg.Enabled(ctx, ev.Source)
	if err != nil {
		return "", fmt.Errorf("preview: reading whether %s has previews: %w", ev.Source, err)
	}
	if !on {
		return fmt.Sprintf("previews are off for source %s (enable them in the repository's Pipeline: previews: {enabled: true})", ev.Source), nil
	}
	if ev.Action == store.PullLabeled && ev.Label != m.cfg.Label {
		return fmt.Sprintf("label %q is not the preview label %q; nothing to do", ev.Label, m.cfg.Label), nil
	}
	labelled := ev.Action == store.PullLabeled && m.mayLabel(ev.Sender)
	if ev.Action == store.PullLabeled && !labelled {
		return fmt.Sprintf("%s added %q but is not one of previews.labelers; pull request %d of %s is not approved by it", ev.Sender, ev.Label, ev.Number, ev.Source), nil
	}

	// why Git and not the payload: a payload's sha can name any commit;
	// the ref fetched from the host is the request's head. A polled
	// change was fetched by the watcher already.
	commit, open := ev.Commit, true
	if ev.FromWebhook || commit == "" {
		if commit, open, err = m.cfg.Fetch(ctx, ev.Source, ev.Number); err != nil {
			return "", fmt.Errorf("preview: fetching the head of pull request %d of %s: %w", ev.Number, ev.Source, err)
		}
	}
	if !open {
		return m.closed(ctx, ev.Source, ev.Number)
	}
	if commit == "" {
		return "", fmt.Errorf("preview: pull request %d of %s has no head commit in the mirror", ev.Number, ev.Source)
	}
	if labelled && ev.LabeledHead != "" && !strings.EqualFold(ev.LabeledHead, commit) {
		// why: a label approves the code its giver saw; a push after it
		// (a fork racing the label) is not approved by it.
		labelled = false
		if found, err := m.cfg.Store.GetPreview(ctx, ev.Source, ev.Number); err != nil || found.Head != commit || found.Approved == "" {
			return fmt.Sprintf("pull request %d of %s was labelled at commit %s but its head is %s now; label it again to build that",
				ev.Number, ev.Source, store.Short(ev.LabeledHead), store.Short(commit)), nil
		}
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	prev, err := m.cfg.Store.GetPreview(ctx, ev.Source, ev.Number)
	found := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return "", fmt.Errorf("preview: %w", err)
	}
	fresh := !found || prev.State == store.PreviewTornDown

	// A request's origin cannot change: once a webhook said it is not a
	// fork, a polled change of it is not taken for one.
	fork := true
	switch {
	case ev.FromWebhook:
		fork = ev.Fork
	case found:
		fork = prev.Fork
	}
	approved := ""
	if found && prev.Head == commit {
		approved = prev.Approved // the label approves one head
	}
	if labelled {
		approved = ev.Sender
	}
	if fork && !m.cfg.Forks && approved == "" {
		msg := fmt.Sprintf("pull request %d of %s comes from a fork (or ferry cannot tell its origin): it is built when a permitted user adds the label %q, again after each push",
			ev.Number, ev.Source, m.cfg.Label)
		// why told: the pull request shows that its newest commit waits,
		// rather than a preview that looks current.
		if !found || prev.Head != commit || prev.State == store.PreviewTornDown {
			w := prev
			if fresh {
				w = store.Preview{Source: ev.Source, Number: ev.Number, Environment: env, Fork: true}
			}
			w.Head = commit
			m.cfg.Tell(Event{Kind: EventWaiting, Preview: w, Reason: fmt.Sprintf("commit %s waits for a permitted user to add the label %s", store.Short(commit), m.cfg.Label)})
		}
		return msg, nil
	}
	if !fresh && prev.Head == commit && prev.State != store.PreviewBuilding {
		return fmt.Sprintf("preview %s is at commit %s already (%s)", env, store.Short(commit), prev.State), nil
	}

	now := m.cfg.Now()
	p := prev
	if fresh {
		// why a new record on reopening: a torn-down preview's history is
		// not its next life's.
		p = store.Preview{Source: ev.Source, Number: ev.Number, Environment: env, TTL: ttl, Created: now}
	}
	p.Head, p.State, p.Reason, p.Fork, p.Approved, p.Activity = commit, store.PreviewBuilding, "", fork, approved, now
	if ev.Author != "" {
		p.Author = ev.Author
	}
	if ev.Title != "" {
		p.Title = ev.Title
	}
	if ev.WebURL != "" {
		p.WebURL = ev.WebURL
	}
	if fresh {
		if err := m.makeRoom(ctx, p); err != nil {
			return "", err
		}
	}
	// why recorded before Make and Enqueue: a crash in between leaves a
	// preview building, which Run makes and queues again at start.
	if err := m.cfg.Store.PutPreview(ctx, p); err != nil {
		return "", fmt.Errorf("preview: %w", err)
	}
	if fresh {
		if err := m.cfg.Make(ctx, env); err != nil {
			reason := fmt.Sprintf("making environment %s: %v", env, err)
			if ferr := m.fail(ctx, p, reason); ferr != nil {
				return "", ferr
			}
			return "", fmt.Errorf("preview: %s", reason)
		}
	}
	m.cfg.Tell(Event{Kind: EventBuilding, Preview: p})
	if err := m.cfg.Enqueue(ctx, ev.Source, ev.Number, commit); err != nil {
		return "", fmt.Errorf("preview: queueing a run of commit %s for %s: %w", store.Short(commit), env, err)
	}
	verb := "updated"
	if fresh {
		verb = "opened"
	}
	return fmt.Sprintf("preview %s %s: commit %s is building", env, verb, store.Short(commit)), nil
}

// mayLabel reports whether login's label counts.
func (m *Manager) mayLabel(login string) bool {
	if login == "" {
		return false
	}
	if len(m.cfg.Labelers) == 0 {
		return true
	}
	return slices.ContainsFunc(m.cfg.Labelers, func(l string) bool { return strings.EqualFold(l, login) })
}

// makeRoom tears down the longest idle previews until p fits under the
// cap. m.mu is held.
func (m *Manager) makeRoom(ctx context.Context, p store.Preview) error {
	for {
		all, err := m.cfg.Store.ListPreviews(ctx)
		if err != nil {
			return fmt.Errorf("preview: %w", err)
		}
		var live []store.Preview
		for _, q := range all {
			if q.State != store.PreviewTornDown && (q.Source != p.Source || q.Number != p.Number) {
				live = append(live, q)
			}
		}
		if len(live) < m.cfg.Max {
			return nil
		}
		idlest := slices.MinFunc(live, func(a, b store.Preview) int {
			if c := a.Activity.Compare(b.Activity); c != 0 {
				return c
			}
			return strings.Compare(a.Environment, b.Environment)
		})
		if err := m.tearDown(ctx, idlest, evictedReason(m.cfg.Max)); err != nil {
			return fmt.Errorf("%w; %s cannot open until it is", err, p.Environment)
		}
	}
}

// tearDown removes p's environment and records it torn down for reason.
// m.mu is held.
func (m *Manager) tearDown(ctx context.Context, p store.Preview, reason string) error {
	if err := m.cfg.Remove(ctx, p.Environment, reason); err != nil {
		return fmt.Errorf("preview: tearing down %s (%s): %w", p.Environment, reason, err)
	}
	p.State, p.TornDown, p.TornReason = store.PreviewTornDown, m.cfg.Now(), reason
	if err := m.cfg.Store.PutPreview(ctx, p); err != nil {
		return fmt.Errorf("preview: %w", err)
	}
	m.cfg.Tell(Event{Kind: EventTornDown, Preview: p, Reason: reason})
	return nil
}

// fail records p failed for reason and tells it. m.mu is held.
func (m *Manager) fail(ctx context.Context, p store.Preview, reason string) error {
	p.State, p.Reason = store.PreviewFailed, reason
	if err := m.cfg.Store.PutPreview(ctx, p); err != nil {
		return fmt.Errorf("preview: %s failed (%s), and recording it: %w", p.Environment, reason, err)
	}
	m.cfg.Tell(Event{Kind: EventFailed, Preview: p, Reason: reason})
	return nil
}

// current reads the preview of env for a run's outcome of commit: ok
// false when env is no preview ferry keeps, or commit is not its head (an
// older run that finished late). m.mu is held.
func (m *Manager) current(ctx context.Context, env, commit string) (store.Preview, bool, error) {
	source, number, ok := store.ParsePreviewName(env)
	if !ok {
		return store.Preview{}, false, fmt.Errorf("preview: %q is not a preview's name (pr-N-SOURCE)", env)
	}
	p, err := m.cfg.Store.GetPreview(ctx, source, number)
	if errors.Is(err, store.ErrNotFound) {
		return p, false, nil
	}
	if err != nil {
		return p, false, fmt.Errorf("preview: %w", err)
	}
	return p, p.State != store.PreviewTornDown && p.Head == commit, nil
}

// Deployed records that a pull request's run deployed rel to its preview
// env: the preview is live, and told ready with its URL and each
// function's digest. A release of an older head than the preview's is
// not told (the newer head's run follows).
func (m *Manager) Deployed(ctx context.Context, env string, rel store.Release) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok, err := m.current(ctx, env, rel.Commit)
	if err != nil || !ok {
		return err
	}
	fns := map[string]string{}
	if set, err := manifests.LoadRelease(ctx, rel.Manifest); err == nil {
		for _, f := range set.Functions {
			_, digest, _ := strings.Cut(f.Spec.Image, "@")
			fns[f.Name] = digest
		}
	}
	p.State, p.Reason, p.Release, p.Activity = store.PreviewLive, "", rel.ID, m.cfg.Now()
	if err := m.cfg.Store.PutPreview(ctx, p); err != nil {
		return fmt.Errorf("preview: %w", err)
	}
	ev := Event{Kind: EventReady, Preview: p, Functions: fns}
	if m.cfg.URL != nil {
		ev.URL = m.cfg.URL(env)
	}
	m.cfg.Tell(ev)
	return nil
}

// Failed records that the run of commit for preview env failed, for
// reason. A failure of an older head than the preview's is not told.
func (m *Manager) Failed(ctx context.Context, env, commit, reason string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok, err := m.current(ctx, env, commit)
	if err != nil || !ok {
		return err
	}
	return m.fail(ctx, p, reason)
}

// List returns every preview, torn down ones too, by source and number.
func (m *Manager) List(ctx context.Context) ([]store.Preview, error) {
	return m.cfg.Store.ListPreviews(ctx)
}

// Collect tears down every preview idle longer than its ttl (idle since
// its last push or deploy). Run calls it every Interval.
func (m *Manager) Collect(ctx context.Context) error {
	// why asked before the lock: the host may be slow or down, and a
	// pull request's webhook must not wait for it.
	closed := map[string]bool{}
	if m.cfg.Open != nil {
		all, err := m.cfg.Store.ListPreviews(ctx)
		if err != nil {
			return fmt.Errorf("preview: %w", err)
		}
		for _, p := range all {
			if p.State == store.PreviewTornDown {
				continue
			}
			open, known, err := m.cfg.Open(ctx, p.Source, p.Number)
			switch {
			case err != nil:
				// why not an error of Collect: the host being down must
				// not tear anything down; the next round asks again.
				m.cfg.Log("preview %s: asking whether pull request %d is open: %v", p.Environment, p.Number, err)
			case known && !open:
				closed[p.Environment] = true
			}
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	all, err := m.cfg.Store.ListPreviews(ctx)
	if err != nil {
		return fmt.Errorf("preview: %w", err)
	}
	now := m.cfg.Now()
	var errs []error
	for _, p := range all {
		switch {
		case p.State == store.PreviewTornDown:
		case p.TTL > 0 && now.Sub(p.Activity) > p.TTL:
			errs = append(errs, m.tearDown(ctx, p, ReasonTTL))
		case closed[p.Environment]:
			errs = append(errs, m.tearDown(ctx, p, ReasonClosed))
		}
	}
	return errors.Join(errs...)
}

// Run makes every preview's environment again (a restart forgot them),
// queues their heads again (Enqueue is idempotent), then collects idle previews
// every Interval until ctx ends.
func (m *Manager) Run(ctx context.Context) error {
	if err := m.resume(ctx); err != nil {
		m.cfg.Log("%v", err)
	}
	t := time.NewTicker(m.cfg.Interval)
	defer t.Stop()
	for {
		if err := m.Collect(ctx); err != nil && ctx.Err() == nil {
			m.cfg.Log("%v", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// resume is Run's start.
func (m *Manager) resume(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	all, err := m.cfg.Store.ListPreviews(ctx)
	if err != nil {
		return fmt.Errorf("preview: %w", err)
	}
	var errs []error
	for _, p := range all {
		if p.State == store.PreviewTornDown {
			continue
		}
		if err := m.cfg.Make(ctx, p.Environment); err != nil {
			errs = append(errs, fmt.Errorf("preview: making %s again: %w", p.Environment, err))
			continue
		}
		// why every one, live too: a run queued before the stop is
		// queued again, and one done deploys again to an environment made
		// again empty (Enqueue is idempotent: it does nothing else).
		if err := m.cfg.Enqueue(ctx, p.Source, p.Number, p.Head); err != nil {
			errs = append(errs, fmt.Errorf("preview: queueing commit %s for %s again: %w", store.Short(p.Head), p.Environment, err))
		}
	}
	return errors.Join(errs...)
}
