package server

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/ferrycd/ferry/store"
)

// EnvironmentSet says which environments exist now: the configured ones
// in pipeline order, then the previews made at run time. ferry serve's
// is its envSet (environments.go).
type EnvironmentSet interface {
	Names() []string
	// Preview reports whether env is a preview that exists now, and its
	// URL (GATEWAY/pr-N-SOURCE/).
	Preview(env string) (url string, ok bool)
}

// PreviewLister lists the previews: the preview manager's.
type PreviewLister interface {
	List(ctx context.Context) ([]PreviewInfo, error)
}

// PreviewInfo is one pull request's preview, as GET /api/v1/previews and
// ferry previews show it.
type PreviewInfo struct {
	Source string `json:"source"`
	Number int    `json:"number"`
	// Environment is pr-N-SOURCE (store.PreviewName).
	Environment string `json:"environment"`
	// State is the preview manager's word for it: building, live,
	// failed, torn down, and so on.
	State string `json:"state"`
	// Head is the pull request's head commit the preview is for.
	Head string `json:"head,omitempty"`
	URL  string `json:"url,omitempty"`
	// LastActivity is the last push, deploy or request the manager saw;
	// the TTL of inactivity counts from it.
	LastActivity time.Time `json:"lastActivity,omitzero"`
	// Reason says why a failed preview failed, or why one was torn down.
	Reason string `json:"reason,omitempty"`
	// The pull request as its webhook described it: empty for one found
	// by polling, which ferry knows only by number and head.
	Title   string `json:"title,omitempty"`
	Author  string `json:"author,omitempty"`
	PullURL string `json:"pullURL,omitempty"`
	// Fork: the head is in another repository (or ferry cannot tell).
	Fork bool `json:"fork,omitempty"`
	// Release is the release the preview runs, once deployed.
	Release string    `json:"release,omitempty"`
	Created time.Time `json:"created,omitzero"`
}

func (a *api) routesPreviews() {
	a.route("GET /api/v1/previews", RoleViewer, a.listPreviews)
}

func (a *api) listPreviews(w http.ResponseWriter, r *http.Request, _ Identity) error {
	if a.cfg.Previews == nil {
		return &apiError{http.StatusNotFound, "previews are not set up in this ferry"}
	}
	list, err := a.cfg.Previews.List(r.Context())
	if err != nil {
		return err
	}
	if list == nil {
		list = []PreviewInfo{}
	}
	writeJSON(w, http.StatusOK, ListPage[PreviewInfo]{Items: list})
	return nil
}

// existing keeps the environments that exist now: without a set, every
// one the store records.
func (a *api) existing(envs []store.Environment) []store.Environment {
	if a.cfg.EnvironmentSet == nil {
		return envs
	}
	names := a.cfg.EnvironmentSet.Names()
	// why: the store keeps the record of a removed preview, for its
	// history; it is not an environment any more.
	return slices.DeleteFunc(envs, func(e store.Environment) bool { return !slices.Contains(names, e.Name) })
}

// ordered puts envs in the set's order (the configured ones in pipeline
// order, then previews), previews marked with their URL; without a set,
// in EnvironmentOrder.
func (a *api) ordered(out []EnvironmentView) {
	if a.cfg.EnvironmentSet == nil {
		sortEnvironments(out, a.cfg.EnvironmentOrder)
		return
	}
	for i := range out {
		out[i].URL, out[i].Preview = a.cfg.EnvironmentSet.Preview(out[i].Name)
	}
	sortEnvironments(out, a.cfg.EnvironmentSet.Names())
}

// exists refuses an environment that does not exist now (a removed
// preview), which the store still records.
func (a *api) exists(e store.Environment) error {
	if a.cfg.EnvironmentSet == nil || slices.Contains(a.cfg.EnvironmentSet.Names(), e.Name) {
		return nil
	}
	if _, _, ok := store.ParsePreviewName(e.Name); ok {
		return &apiError{http.StatusNotFound, fmt.Sprintf("environment %s: a preview that does not exist now (it was removed when its pull request closed, or idle); its history stays (ferry history %s)", e.Name, e.Name)}
	}
	return &apiError{http.StatusNotFound, fmt.Sprintf("environment %s is no longer in ferry serve's configuration", e.Name)}
}
