package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/ferrycd/ferry/manifests"
	"github.com/ferrycd/ferry/store"
)

// GET /api/v1/diff?from=A&to=B compares two releases, each named by an
// environment (its live release) or by a release id or prefix: the
// functions whose images differ, the triggers added, removed or changed,
// and the rendered manifests as a unified diff.

// DiffView is what differs from one release to another.
type DiffView struct {
	From      DiffSide       `json:"from"`
	To        DiffSide       `json:"to"`
	Functions []FunctionDiff `json:"functions"`
	Triggers  []TriggerDiff  `json:"triggers"`
	Manifest  string         `json:"manifest,omitempty"` // a unified diff; "" when the same
}

// DiffSide is one side of a diff: what was asked for and the release it
// named.
type DiffSide struct {
	Name    string `json:"name"`
	Release string `json:"release"`
	Source  string `json:"source,omitempty"`
	Commit  string `json:"commit,omitempty"`
}

// FunctionDiff is a function whose image differs; From or To is "" when
// the function is only on the other side.
type FunctionDiff struct {
	Name string `json:"name"`
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
}

// TriggerDiff is a trigger added, removed or changed.
type TriggerDiff struct {
	Kind   string `json:"kind"`
	Name   string `json:"name"`
	Change string `json:"change"` // added, removed, changed
}

func (a *api) routesDiff() {
	a.route("GET /api/v1/diff", RoleViewer, a.diff)
}

func (a *api) diff(w http.ResponseWriter, r *http.Request, _ Identity) error {
	q := r.URL.Query()
	if q.Get("from") == "" || q.Get("to") == "" {
		return badRequest("give two environments or releases: ?from=A&to=B")
	}
	from, relA, err := a.diffSide(r.Context(), q.Get("from"))
	if err != nil {
		return err
	}
	to, relB, err := a.diffSide(r.Context(), q.Get("to"))
	if err != nil {
		return err
	}
	v, err := diffReleases(r.Context(), from, to, relA, relB)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// diffSide reads what name means: an environment's live release, else a
// release by id or prefix.
func (a *api) diffSide(ctx context.Context, name string) (DiffSide, store.Release, error) {
	id := ""
	if e, err := a.cfg.Store.GetEnvironment(ctx, name); err == nil {
		if e.Release == "" {
			return DiffSide{}, store.Release{}, &apiError{http.StatusConflict, fmt.Sprintf("%s runs no release yet; there is nothing to compare", name)}
		}
		id = e.Release
	} else if !errors.Is(err, store.ErrNotFound) {
		return DiffSide{}, store.Release{}, err
	} else if _, _, ok := hexPart(name); !ok {
		return DiffSide{}, store.Release{}, &apiError{http.StatusNotFound, fmt.Sprintf("%q is neither an environment nor a release id (ferry status lists the environments, ferry releases the releases)", name)}
	} else if id, err = a.resolveRelease(ctx, name); err != nil {
		return DiffSide{}, store.Release{}, err
	}
	rel, err := a.cfg.Store.GetRelease(ctx, id)
	if err != nil {
		return DiffSide{}, store.Release{}, err
	}
	return DiffSide{Name: name, Release: rel.ID, Source: rel.Source, Commit: rel.Commit}, rel, nil
}

func diffReleases(ctx context.Context, from, to DiffSide, a, b store.Release) (DiffView, error) {
	v := DiffView{From: from, To: to, Functions: []FunctionDiff{}, Triggers: []TriggerDiff{}}
	if a.ID == b.ID {
		return v, nil
	}
	setA, err := manifests.LoadRelease(ctx, a.Manifest)
	if err != nil {
		return v, fmt.Errorf("release %s: its manifest does not load: %w", a.ID, err)
	}
	setB, err := manifests.LoadRelease(ctx, b.Manifest)
	if err != nil {
		return v, fmt.Errorf("release %s: its manifest does not load: %w", b.ID, err)
	}
	imagesA, imagesB := map[string]string{}, map[string]string{}
	for _, f := range setA.Functions {
		imagesA[f.Name] = f.Spec.Image
	}
	for _, f := range setB.Functions {
		imagesB[f.Name] = f.Spec.Image
	}
	for _, name := range unionKeys(imagesA, imagesB) {
		if imagesA[name] != imagesB[name] {
			v.Functions = append(v.Functions, FunctionDiff{Name: name, From: imagesA[name], To: imagesB[name]})
		}
	}
	trigA, trigB := triggerSpecs(setA), triggerSpecs(setB)
	for _, key := range unionKeys(trigA, trigB) {
		kind, name, _ := strings.Cut(key, "/")
		sa, inA := trigA[key]
		sb, inB := trigB[key]
		switch {
		case !inA:
			v.Triggers = append(v.Triggers, TriggerDiff{Kind: kind, Name: name, Change: "added"})
		case !inB:
			v.Triggers = append(v.Triggers, TriggerDiff{Kind: kind, Name: name, Change: "removed"})
		case sa != sb:
			v.Triggers = append(v.Triggers, TriggerDiff{Kind: kind, Name: name, Change: "changed"})
		}
	}
	v.Manifest = unifiedDiff(from.Name+" "+store.Short(a.ID), to.Name+" "+store.Short(b.ID), string(a.Manifest), string(b.Manifest))
	return v, nil
}

// triggerSpecs maps "Kind/name" to the trigger's spec as JSON, which
// compares them field by field.
func triggerSpecs(s *manifests.Set) map[string]string {
	out := map[string]string{}
	add := func(kind, name string, spec any) {
		b, _ := json.Marshal(spec)
		out[kind+"/"+name] = string(b)
	}
	for _, t := range s.HTTPTriggers {
		add("HTTPTrigger", t.Name, t.Spec)
	}
	for _, t := range s.CronTriggers {
		add("CronTrigger", t.Name, t.Spec)
	}
	for _, t := range s.NATSTriggers {
		add("NATSTrigger", t.Name, t.Spec)
	}
	for _, t := range s.KafkaTriggers {
		add("KafkaTrigger", t.Name, t.Spec)
	}
	return out
}

func unionKeys(a, b map[string]string) []string {
	var keys []string
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

// Diff compares two environments or releases (ids or prefixes).
func (c *Client) Diff(ctx context.Context, from, to string) (DiffView, error) {
	var v DiffView
	err := c.do(ctx, "GET", "/api/v1/diff"+query(map[string]string{"from": from, "to": to}, 0, 0), nil, &v)
	return v, err
}

// Environment is one environment as ferry status shows it.
func (c *Client) Environment(ctx context.Context, name string) (EnvironmentView, error) {
	var v EnvironmentView
	err := c.do(ctx, "GET", "/api/v1/environments/"+url.PathEscape(name), nil, &v)
	return v, err
}
