package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ferrycd/ferry/build"
	"github.com/ferrycd/ferry/environments"
	"github.com/ferrycd/ferry/promote"
	"github.com/ferrycd/ferry/store"
)

// memoStore keeps small notes by key; store.SQLite has it.
type memoStore interface {
	PutMemo(ctx context.Context, key, value string) error
	GetMemo(ctx context.Context, key string) (string, error)
}

// removedMemo is the memo that says why a preview was removed ("" once
// made again): the environments table has no column for it, and a
// restart must not bring a removed preview back.
func removedMemo(env string) string { return "environment/removed/" + env }

// removedDefault is why a preview went when the caller does not say.
const removedDefault = "its pull request closed"

// envSet owns which environments exist: the configured ones, from the
// start to the end, and the previews made and removed at run time
// (pr-N-SOURCE, store.PreviewName). The targets, the promoter, the
// API and the metrics ask it, so they learn of a preview when it is made
// and forget it when it is removed.
type envSet struct {
	cfg      *Config
	targets  *targets
	store    store.Store
	memos    memoStore
	settings *envSettings
	pull     func(ctx context.Context, ref string) (*build.Release, error)
	restored *restoreErrors
	gateway  string // http://ADDR of the gateway, for previews' URLs
	log      func(format string, args ...any)

	// promoter learns of previews; set once it is made (it asks target).
	promoter promote.Environments

	// change serialises Make and Remove: a preview is never made while
	// its removal stops its processes.
	change sync.Mutex

	mu         sync.RWMutex
	configured map[string]EnvironmentConfig
	previews   map[string]bool
}

func newEnvSet(cfg *Config, targets *targets, st store.Store, memos memoStore, settings *envSettings,
	pull func(context.Context, string) (*build.Release, error), restored *restoreErrors, gateway string, logf func(string, ...any)) *envSet {
	s := &envSet{cfg: cfg, targets: targets, store: st, memos: memos, settings: settings, pull: pull, restored: restored,
		gateway: gateway, log: logf, configured: map[string]EnvironmentConfig{}, previews: map[string]bool{}}
	for _, e := range cfg.Environments {
		s.configured[e.Name] = e
	}
	return s
}

// target is env's target, made the first time it is asked for, of the
// kind its configuration (or the previews:) says.
func (s *envSet) target(env string) (environments.Target, error) {
	s.mu.RLock()
	ec, configured := s.configured[env]
	preview := s.previews[env]
	s.mu.RUnlock()
	switch {
	case configured:
		return s.targets.get(env, targetSpec{kind: ec.Target, kube: ec.Kube, natsURL: ec.NATSURL, kafkaBrokers: ec.KafkaBrokers})
	case preview:
		p := s.cfg.Previews
		// why untrusted: a preview runs a pull request's code, on the
		// embedded gateway's origin which the stages share.
		return s.targets.get(env, targetSpec{kind: p.Target, kube: p.Kube, natsURL: p.NATSURL, kafkaBrokers: p.KafkaBrokers, untrusted: true})
	}
	if _, _, ok := store.ParsePreviewName(env); ok {
		// why: not naming env: the pipeline and the promoter, which
		// asked for it, say "environment ENV: " before this.
		return nil, errors.New("a preview that does not exist now: made when its pull request opens, removed when it closes")
	}
	return nil, fmt.Errorf("not in ferry serve's configuration, which has %s; add it there", strings.Join(slices.Sorted(maps.Keys(s.configured)), ", "))
}

// Names are the environments that exist: the configured ones in the
// configuration's order, then the previews by source and number.
func (s *envSet) Names() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := s.cfg.environmentNames()
	previews := slices.Collect(maps.Keys(s.previews))
	slices.SortFunc(previews, comparePreviews)
	return append(out, previews...)
}

// comparePreviews orders previews by source, then pull-request number.
func comparePreviews(a, b string) int {
	as, an, _ := store.ParsePreviewName(a)
	bs, bn, _ := store.ParsePreviewName(b)
	return cmp.Or(strings.Compare(as, bs), cmp.Compare(an, bn))
}

// Preview reports whether env is a preview that exists now, with its URL.
func (s *envSet) Preview(env string) (url string, ok bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !s.previews[env] {
		return "", false
	}
	if p := s.cfg.Previews; p.Target == TargetKube {
		// Where the cluster's Gateway serves it, when the configuration
		// says; the API server is no URL to give a reviewer.
		if p.Kube == nil || p.Kube.GatewayURL == "" {
			return "", true
		}
		return strings.TrimRight(p.Kube.GatewayURL, "/") + "/", true
	}
	return s.gateway + "/" + env + "/", true
}

// Make makes environment env if it does not exist: a preview (env is
// pr-N-SOURCE) gets a target from the previews: settings, and the
// promoter, the target host, the API and the metrics know it from then
// on. It is recorded in the store first, so that a restart makes it
// again. A configured environment exists already.
func (s *envSet) Make(ctx context.Context, env string) error {
	s.change.Lock()
	defer s.change.Unlock()
	s.mu.RLock()
	_, configured := s.configured[env]
	made := s.previews[env]
	s.mu.RUnlock()
	if configured || made {
		return nil
	}
	if _, _, ok := store.ParsePreviewName(env); !ok {
		return fmt.Errorf("environment %s is not in ferry serve's configuration and is not a preview's name (pr-N-SOURCE); add it to the configuration", env)
	}
	if _, err := s.store.GetEnvironment(ctx, env); errors.Is(err, store.ErrNotFound) {
		if err := s.store.PutEnvironment(ctx, store.Environment{Name: env, Target: s.cfg.Previews.Target, Updated: time.Now()}); err != nil {
			return fmt.Errorf("making preview %s: %w", env, err)
		}
	} else if err != nil {
		return fmt.Errorf("making preview %s: %w", env, err)
	}
	if err := s.memos.PutMemo(ctx, removedMemo(env), ""); err != nil {
		return fmt.Errorf("making preview %s: %w", env, err)
	}
	return s.adopt(env)
}

// adopt makes env, a preview the store records, known to the host, the
// promoter and the lists.
func (s *envSet) adopt(env string) error {
	s.mu.Lock()
	s.previews[env] = true
	s.mu.Unlock()
	if _, err := s.target(env); err != nil {
		s.mu.Lock()
		delete(s.previews, env)
		s.mu.Unlock()
		return fmt.Errorf("making preview %s: %w", env, err)
	}
	if s.promoter != nil {
		if err := s.promoter.AddEnvironment(promote.Environment{Name: env, Preview: true}); err != nil {
			return fmt.Errorf("making preview %s: %w", env, err)
		}
	}
	return nil
}

// Remove removes preview env because its pull request closed; see
// RemoveBecause.
func (s *envSet) Remove(ctx context.Context, env string) error {
	return s.RemoveBecause(ctx, env, removedDefault)
}

// RemoveBecause removes preview env, saying why ("its pull request
// closed", "idle for 72h"): its functions and triggers stop, its URLs
// answer 404 saying why, a promotion or rollback into it is refused, and
// it leaves the API's lists and the metrics. The store marks it removed
// (no restart brings it back); its deployments stay, as history.
// Removing a preview that does not exist does nothing more. A configured
// environment cannot be removed.
func (s *envSet) RemoveBecause(ctx context.Context, env, why string) error {
	s.change.Lock()
	defer s.change.Unlock()
	s.mu.RLock()
	_, configured := s.configured[env]
	s.mu.RUnlock()
	if configured {
		return fmt.Errorf("environment %s is in ferry serve's configuration and cannot be removed; remove it from the configuration and restart", env)
	}
	if _, _, ok := store.ParsePreviewName(env); !ok {
		return fmt.Errorf("environment %s is not a preview (pr-N-SOURCE); only previews are removed", env)
	}
	why = cmp.Or(why, removedDefault)
	// The store first: a crash after it leaves nothing a restart brings
	// back, while one before it leaves the preview whole.
	if err := s.memos.PutMemo(ctx, removedMemo(env), why); err != nil {
		return fmt.Errorf("removing preview %s: %w", env, err)
	}
	rec, err := s.store.GetEnvironment(ctx, env)
	switch {
	case err == nil && rec.Release != "":
		// why: made again later (a reopened pull request), it starts
		// with nothing rather than a release a restart would put back.
		rec.Release, rec.Updated = "", time.Now()
		if err := s.store.PutEnvironment(ctx, rec); err != nil {
			return fmt.Errorf("removing preview %s: %w", env, err)
		}
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("removing preview %s: %w", env, err)
	}
	s.mu.Lock()
	existed := s.previews[env]
	delete(s.previews, env)
	s.mu.Unlock()
	if s.promoter != nil {
		if err := s.promoter.RemoveEnvironment(env, why); err != nil {
			return fmt.Errorf("removing preview %s: %w", env, err)
		}
	}
	if err := s.targets.remove(ctx, env, fmt.Sprintf("environment %s was removed (%s)", env, why)); err != nil {
		return fmt.Errorf("removing preview %s: stopping its functions: %w", env, err)
	}
	if existed {
		s.log("environment %s: removed (%s)", env, why)
	}
	return nil
}

// restorePreviews makes again the previews the store records and does
// not mark removed, each with its live release, as restoreEnvironments
// does for the configured ones.
func (s *envSet) restorePreviews(ctx context.Context) error {
	envs, err := s.store.ListEnvironments(ctx)
	if err != nil {
		return err
	}
	for _, e := range envs {
		if _, _, ok := store.ParsePreviewName(e.Name); !ok {
			continue
		}
		why, err := s.memos.GetMemo(ctx, removedMemo(e.Name))
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if why != "" {
			continue
		}
		if err := s.adopt(e.Name); err != nil {
			return err
		}
		s.log("environment %s: a preview, made again", e.Name)
		restoreRelease(ctx, s.store, e, s.target, s.pull, s.restored, s.log)
	}
	return nil
}

var _ EnvironmentSet = (*envSet)(nil)

// stopAll stops every embedded environment's functions, previews
// included: they are this process's children. An environment on a
// cluster keeps running: ferry stopping is no reason to take it down.
func (s *envSet) stopAll(ctx context.Context) {
	for _, env := range s.Names() {
		if s.targets.remote(env) {
			continue
		}
		if t, err := s.target(env); err == nil {
			t.Delete(ctx)
		}
	}
}
