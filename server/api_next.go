package server

import (
	"cmp"
	"context"
	"net/http"
	"slices"
	"strings"

	"github.com/ferrycd/ferry/promote"
)

// next asks the promoter what happens next to promotion id (or, for 0,
// in env). It is a courtesy: when it cannot be said the answer goes
// without it, and the action it follows stands.
func (a *api) next(ctx context.Context, env string, id int64) string {
	o, ok := a.cfg.Promoter.(promote.Outlook)
	if !ok {
		return ""
	}
	s, err := o.Next(ctx, env, id)
	if err != nil {
		a.cfg.Log("what happens next in %s: %v", env, err)
		return ""
	}
	return s
}

// environmentNext answers an action on an environment with the
// environment and what happens next in it.
func (a *api) environmentNext(w http.ResponseWriter, r *http.Request) error {
	e, err := a.cfg.Store.GetEnvironment(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	v := a.environmentView(r.Context(), e)
	v.Next = a.next(r.Context(), e.Name, 0)
	writeJSON(w, http.StatusOK, v)
	return nil
}

// sortEnvironments puts envs in pipeline order: as order lists them,
// then the rest by name.
func sortEnvironments(envs []EnvironmentView, order []string) {
	rank := func(name string) int {
		if i := slices.Index(order, name); i >= 0 {
			return i
		}
		return len(order)
	}
	slices.SortStableFunc(envs, func(a, b EnvironmentView) int {
		return cmp.Or(rank(a.Name)-rank(b.Name), strings.Compare(a.Name, b.Name))
	})
}
