package server

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ferrycd/ferry/pipeline"
	"github.com/ferrycd/ferry/promote/preview"
	"github.com/ferrycd/ferry/server/github"
	"github.com/ferrycd/ferry/server/notify"
	"github.com/ferrycd/ferry/store"
	"github.com/ferrycd/ferry/watcher"
)

// webhookAnswerWait is how long a pull request's webhook waits for the
// preview manager's answer before it answers "accepted": GitHub gives a
// delivery 10 s, and fetching a large request's head may take longer.
const webhookAnswerWait = 5 * time.Second

// previews joins the preview manager to the watcher (which polls the
// requests of sources with previews), the pipeline (which runs their
// heads), the environment set (which makes and removes pr-N-SOURCE), the
// webhooks and the notices.
type previews struct {
	m     *preview.Manager
	st    *store.SQLite
	w     watcher.Watcher
	exec  func() pipeline.Executor
	tell  *notices
	log   func(format string, args ...any)
	ctx   context.Context // ferry serve's: work a webhook started outlives its request
	mu    sync.Mutex
	pulls map[string]bool // whether SetPulls turned a source's polling on
	runs  sync.Map        // env → its head's run (headRun), for the notices' links; one per preview

	// polled holds the watcher's events until drain hands them to the
	// manager, in order. why: the watcher tells them holding the source's
	// mirror lock, while a webhook's event holds the request's lock in the
	// manager and waits for that mirror lock (FetchPull): handled in
	// place, a poll that saw a request a delivery was opening at that
	// moment stopped the source for good.
	qmu    sync.Mutex
	polled []store.PullEvent
	wake   chan struct{}
}

func newPreviews(ctx context.Context, cfg *Config, st *store.SQLite, gh *github.Client, w watcher.Watcher, exec func() pipeline.Executor,
	envs *envSet, tell *notices, gatewayURL string, logf func(string, ...any)) (*previews, error) {
	p := &previews{st: st, w: w, exec: exec, tell: tell, log: logf, ctx: ctx, pulls: map[string]bool{},
		wake: make(chan struct{}, 1)}
	open := pullOpen(cfg, st, gh)
	m, err := preview.New(preview.Config{
		Open:    open,
		Store:   st,
		Enabled: p.enabled,
		Fetch:   w.FetchPull,
		Enqueue: p.enqueue,
		Make:    envs.Make,
		Remove: func(ctx context.Context, env, reason string) error {
			return envs.RemoveBecause(ctx, env, removedWhy(reason))
		},
		Tell:     p.told,
		URL:      func(env string) string { return gatewayURL + "/" + env + "/" },
		Max:      cfg.maxPreviews(),
		Forks:    cfg.Previews.Forks,
		Label:    cfg.Previews.Label,
		Labelers: cfg.Previews.Labelers,
		Log:      logf,
	})
	if err != nil {
		return nil, err
	}
	p.m = m
	go p.drain()
	return p, nil
}

// pullOpen is preview.Config.Open with a github: block (cl, Serve's one
// client): GitHub says whether a request is open, which its refs do not.
func pullOpen(cfg *Config, st *store.SQLite, cl *github.Client) func(ctx context.Context, source string, number int) (bool, bool, error) {
	if cl == nil {
		return nil
	}
	repos := cfg.githubRepos(cl)
	return func(ctx context.Context, source string, number int) (bool, bool, error) {
		src, err := st.GetSource(ctx, source)
		if err != nil {
			return false, false, err
		}
		repo, ok := repos.For(source, src.URL)
		if !ok {
			return false, false, nil
		}
		open, err := cl.PullOpen(ctx, repo, number)
		return open, err == nil, err
	}
}

// removedWhy is what a torn-down preview's URLs say, from the manager's
// reason.
func removedWhy(reason string) string {
	switch reason {
	case preview.ReasonClosed:
		return "its pull request closed"
	case preview.ReasonTTL:
		return "it was idle longer than its Pipeline's previews.ttl"
	}
	return reason
}

// enabled is preview.Config.Enabled: the Pipeline at the source's branch
// head says. Never the request's own commit: a commit must not turn on
// (or loosen) what gates it.
func (p *previews) enabled(ctx context.Context, source string) (bool, time.Duration, error) {
	src, err := p.st.GetSource(ctx, source)
	if err != nil {
		return false, 0, fmt.Errorf("source %s: %w", source, err)
	}
	head, err := store.HeadOf(ctx, p.st, source, src.Branch)
	if err != nil {
		return false, 0, err
	}
	if head == "" {
		return false, 0, nil // nothing fetched yet: nothing says they are on
	}
	tree, err := p.w.Tree(ctx, source, head)
	if err != nil {
		return false, 0, fmt.Errorf("reading %s at %s: %w", src.Branch, store.Short(head), err)
	}
	on, ttl, err := pipeline.PreviewSettings(ctx, tree)
	if err != nil {
		return false, 0, fmt.Errorf("%s at %s: %w", src.Branch, store.Short(head), err)
	}
	return on, ttl, nil
}

// syncPolling turns the watcher's polling of source's requests on or off
// as its branch head's Pipeline says. It is called at start and after
// each new head; an unreadable Pipeline changes nothing.
func (p *previews) syncPolling(ctx context.Context, source string) {
	on, _, err := p.enabled(ctx, source)
	if err != nil {
		if ctx.Err() == nil {
			p.log("source %s: previews: %v", source, err)
		}
		return
	}
	p.mu.Lock()
	was, known := p.pulls[source]
	p.pulls[source] = on
	p.mu.Unlock()
	if known && was == on {
		return
	}
	// why: turning polling off forgets what the first listing saw, so
	// only a Pipeline read as off may turn it off.
	p.w.SetPulls(source, on)
	if on && !was {
		p.log("source %s: previews on: its pull requests are watched", source)
	}
}

// enqueue is preview.Config.Enqueue.
func (p *previews) enqueue(ctx context.Context, source string, number int, commit string) error {
	run, err := p.exec().EnqueuePull(ctx, source, p.branch(ctx, source, number), commit, number)
	if err != nil {
		return err
	}
	p.runs.Store(store.PreviewName(source, number), headRun{commit, run.ID})
	return nil
}

// branch is the runs' branch of a request: merge-requests/N where the
// mirror has GitLab's ref for it, else GitHub's pull/N. It only names
// the runs.
func (p *previews) branch(ctx context.Context, source string, number int) string {
	if src, err := p.st.GetSource(ctx, source); err == nil && strings.Contains(strings.ToLower(src.URL), "gitlab") {
		return store.PullBranch(store.PullPrefixGitLab, number)
	}
	return store.PullBranch(store.PullPrefixGitHub, number)
}

// headRun is the run queued for a preview's head.
type headRun struct {
	commit string
	id     int64
}

// pullHead is pipeline.Config.PullHead: the head the preview is for.
func (p *previews) pullHead(ctx context.Context, source string, number int) (string, error) {
	pv, err := p.st.GetPreview(ctx, source, number)
	if err != nil {
		return "", err
	}
	return pv.Head, nil
}

// handle is the watcher's OnPull: it queues the event and returns, as
// the watcher asks (see the polled field).
func (p *previews) handle(ev store.PullEvent) {
	p.qmu.Lock()
	p.polled = append(p.polled, ev)
	p.qmu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// drain hands the queued events to the manager, one at a time, until
// ferry serve stops.
func (p *previews) drain() {
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-p.wake:
		}
		for {
			p.qmu.Lock()
			if len(p.polled) == 0 {
				p.qmu.Unlock()
				break
			}
			ev := p.polled[0]
			p.polled = p.polled[1:]
			p.qmu.Unlock()
			p.handleNow(ev)
		}
	}
}

// handleNow gives one event to the manager and logs what came of it.
func (p *previews) handleNow(ev store.PullEvent) {
	answer, err := p.m.Handle(p.ctx, ev)
	p.logOutcome(ev, answer, err)
}

// logOutcome logs what the manager answered to an event.
func (p *previews) logOutcome(ev store.PullEvent, answer string, err error) {
	switch {
	case err != nil && p.ctx.Err() == nil:
		p.log("source %s: pull request %d %s: %v", ev.Source, ev.Number, ev.Action, err)
	case err == nil && answer != "":
		p.log("source %s: pull request %d %s: %s", ev.Source, ev.Number, ev.Action, answer)
	}
}

// hook is WebhookConfig.Pull: the manager's answer when it comes within
// webhookAnswerWait, else "accepted" and the rest goes on without the
// request (its outcome is logged and told to the pull request).
func (p *previews) hook(ctx context.Context, ev store.PullEvent) (string, error) {
	type result struct {
		answer string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		answer, err := p.m.Handle(p.ctx, ev)
		done <- result{answer, err}
	}()
	t := time.NewTimer(webhookAnswerWait)
	defer t.Stop()
	select {
	case r := <-done:
		return r.answer, r.err
	case <-t.C:
	case <-ctx.Done():
	}
	// why: the delivery answered "accepted"; the log is where the
	// outcome shows (a fork waiting for its label, say).
	go func() {
		r := <-done
		p.logOutcome(ev, r.answer, r.err)
	}()
	return fmt.Sprintf("accepted: preview %s is being prepared (fetching the pull request's head)", store.PreviewName(ev.Source, ev.Number)), nil
}

// deployed is pipeline.Config.OnPreviewDeployed.
func (p *previews) deployed(run store.Run, rel store.Release, env string) {
	if err := p.m.Deployed(p.ctx, env, rel); err != nil && p.ctx.Err() == nil {
		p.log("preview %s: %v", env, err)
	}
}

// runEvent hears the pipeline's events: a request's run that failed
// fails its preview.
func (p *previews) runEvent(ev pipeline.Event) {
	if ev.Kind != pipeline.EventRunFinished || ev.Run.PullRequest == 0 || ev.Run.Status != store.StatusFailed {
		return
	}
	env := store.PreviewName(ev.Run.Source, ev.Run.PullRequest)
	reason := ev.Run.Reason
	if ev.Step != "" {
		reason = ev.Step + " failed: " + ev.Error
	}
	if err := p.m.Failed(p.ctx, env, ev.Run.Commit, reason); err != nil && p.ctx.Err() == nil {
		p.log("preview %s: %v", env, err)
	}
}

// previewKinds are the notices' kinds of the manager's events.
var previewKinds = map[preview.EventKind]notify.Kind{
	preview.EventBuilding: notify.PreviewBuilding,
	preview.EventReady:    notify.PreviewReady,
	preview.EventFailed:   notify.PreviewFailed,
	preview.EventTornDown: notify.PreviewTornDown,
	preview.EventWaiting:  notify.PreviewWaiting,
}

// told is preview.Config.Tell: each change goes to the notices (the pull
// request's comment and deployment, the chats).
func (p *previews) told(ev preview.Event) {
	kind, ok := previewKinds[ev.Kind]
	if !ok {
		return
	}
	pv := ev.Preview
	n := notify.Event{Kind: kind, Environment: pv.Environment, Release: pv.Release, Reason: ev.Reason, Functions: ev.Functions}
	run := store.Run{Source: pv.Source, Branch: store.PullBranch(store.PullPrefixGitHub, pv.Number), Commit: pv.Head, PullRequest: pv.Number}
	if r, ok := p.runs.Load(pv.Environment); ok && r.(headRun).commit == pv.Head {
		run.ID = r.(headRun).id
	}
	p.tell.preview(n, run, ev.URL)
}

// list is the API's PreviewLister.
func (p *previews) List(ctx context.Context) ([]PreviewInfo, error) {
	list, err := p.m.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]PreviewInfo, 0, len(list))
	for _, pv := range list {
		info := PreviewInfo{Source: pv.Source, Number: pv.Number, Environment: pv.Environment, State: string(pv.State),
			Head: pv.Head, LastActivity: pv.Activity, Title: pv.Title, Author: pv.Author, PullURL: pv.WebURL,
			Fork: pv.Fork, Release: pv.Release, Created: pv.Created}
		switch pv.State {
		case store.PreviewTornDown:
			info.Reason = removedWhy(pv.TornReason)
		case store.PreviewFailed:
			info.Reason = pv.Reason
		}
		// why no URL for a failed preview that never deployed: nothing
		// answers there, and a URL invites a click.
		if pv.State != store.PreviewTornDown && !(pv.State == store.PreviewFailed && pv.Release == "") {
			info.URL = p.tell.gatewayURL + "/" + pv.Environment + "/"
		}
		out = append(out, info)
	}
	return out, nil
}
