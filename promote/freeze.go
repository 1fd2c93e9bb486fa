package promote

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/ferrycd/ferry/store"
)

// window is a parsed FreezeWindow.
type window struct {
	FreezeWindow
	sched cron.Schedule
	loc   *time.Location
}

// parseWindows checks an environment's freeze windows.
func parseWindows(env Environment) ([]window, error) {
	var out []window
	for i, w := range env.Freeze {
		where := fmt.Sprintf("promote: environment %s: freeze window %d (%q)", env.Name, i+1, w.Schedule)
		if strings.HasPrefix(strings.TrimSpace(w.Schedule), "@every") {
			return nil, fmt.Errorf("%s: @every has no start to count from; give a cron schedule such as \"0 18 * * 5\"", where)
		}
		sched, err := cron.ParseStandard(w.Schedule)
		if err != nil {
			return nil, fmt.Errorf("%s: %w; give five fields (minute hour day-of-month month day-of-week) or a descriptor such as @daily", where, err)
		}
		if w.Duration <= 0 {
			return nil, fmt.Errorf("%s: the duration must be positive, such as 64h for a weekend", where)
		}
		loc := time.UTC
		if w.TimeZone != "" {
			if loc, err = time.LoadLocation(w.TimeZone); err != nil {
				return nil, fmt.Errorf("%s: time zone: %w; give an IANA name such as Europe/Paris", where, err)
			}
		}
		out = append(out, window{FreezeWindow: w, sched: sched, loc: loc})
	}
	return out, nil
}

// covers reports whether now is in the window, and when that stretch of
// it ends: the window started at the first start after now-Duration, if
// that start is not after now.
func (w window) covers(now time.Time) (time.Time, bool) {
	t := now.In(w.loc)
	start := w.sched.Next(t.Add(-w.Duration))
	if start.IsZero() || start.After(t) {
		return time.Time{}, false
	}
	return start.Add(w.Duration), true
}

func (w window) describe(end time.Time) string {
	what := "its freeze window"
	if w.Reason != "" {
		what = fmt.Sprintf("its freeze window %q", w.Reason)
	}
	return fmt.Sprintf("%s (%s, for %s) until %s", what, w.Schedule, w.Duration, end.UTC().Format(time.RFC3339))
}

// gate is what keeps promotions out of an environment now.
type gate struct {
	// frozen says why every promotion is refused; "" when none is.
	frozen string
	// held says why automatic promotions wait; "" when they do not.
	held string
}

// blocks says why p may not go now; "" when it may.
func (g gate) blocks(p store.Promotion) string {
	switch {
	case g.frozen != "":
		return "waiting: " + g.frozen
	case g.held != "" && p.Requester == Actor:
		return "waiting: " + g.held
	}
	return ""
}

// gate reads env's freeze (manual or by a window) and hold.
func (e *engine) gate(ctx context.Context, env string) (gate, error) {
	var g gate
	rec, err := e.st.GetEnvironment(ctx, env)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return g, err
	}
	if rec.Frozen {
		g.frozen = fmt.Sprintf("%s is frozen by %s since %s: %s", env, rec.FrozenBy, rec.FrozenAt.Format(time.RFC3339), rec.FreezeReason)
	} else if w, end, ok := e.window(env); ok {
		g.frozen = fmt.Sprintf("%s is in %s", env, w.describe(end))
	}
	if rec.Held {
		g.held = fmt.Sprintf("%s is held (%s); `ferry resume %s` lets automatic promotions in again", env, rec.HoldReason, env)
	}
	return g, nil
}

// window returns the freeze window env is in now, if any.
func (e *engine) window(env string) (window, time.Time, bool) {
	now := e.now()
	e.envMu.RLock()
	ws := e.envs[env]
	e.envMu.RUnlock()
	for _, w := range ws {
		if end, ok := w.covers(now); ok {
			return w, end, true
		}
	}
	return window{}, time.Time{}, false
}

// Freeze implements Promoter. A freeze stops promotions from starting; one
// deploying already finishes. Rollbacks are not promotions and still go.
func (e *engine) Freeze(ctx context.Context, env, reason string, actor Identity) error {
	if err := e.checkEnv(env); err != nil {
		return err
	}
	if e.isPreview(env) {
		// why: a preview has no gates; its pull request's pushes deploy it.
		return invalid("%s is a preview environment, which has no freeze: its pull request's pushes deploy it", env)
	}
	if actor.Name == "" {
		return invalid("freeze: no actor; ferry records who froze %s", env)
	}
	if strings.TrimSpace(reason) == "" {
		return invalid("freeze %s: give a reason (--reason), so that whoever is refused knows why", env)
	}
	fctx := e.event(ctx, actor.Name, ActionFreeze, "env/"+env, reason)
	if err := e.st.FreezeEnvironment(fctx, env, store.Freeze{Frozen: true, Reason: reason, Actor: actor.Name, At: e.now()}); err != nil {
		return err
	}
	e.tell(Event{Kind: EventFrozen, Environment: env, Actor: actor.Name, Reason: firstLine(reason)})
	return nil
}

// Unfreeze implements Promoter. It ends a manual freeze; a freeze window
// is configuration and ends on its own.
func (e *engine) Unfreeze(ctx context.Context, env string, actor Identity) error {
	if err := e.checkEnv(env); err != nil {
		return err
	}
	if actor.Name == "" {
		return invalid("unfreeze: no actor; ferry records who unfroze %s", env)
	}
	rec, err := e.st.GetEnvironment(ctx, env)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if !rec.Frozen {
		if w, end, ok := e.window(env); ok {
			return conflict("%s is in %s, which ferry serve's configuration sets; it ends on its own", env, w.describe(end))
		}
		return conflict("%s is not frozen", env)
	}
	uctx := e.event(ctx, actor.Name, ActionUnfreeze, "env/"+env, "was frozen by "+rec.FrozenBy+": "+rec.FreezeReason)
	if err := e.st.FreezeEnvironment(uctx, env, store.Freeze{}); err != nil {
		return err
	}
	e.tell(Event{Kind: EventUnfrozen, Environment: env, Actor: actor.Name, Reason: firstLine("was frozen by " + rec.FrozenBy + ": " + rec.FreezeReason)})
	e.signal()
	return nil
}
