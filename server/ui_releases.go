package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/ferrycd/ferry/manifests"
	"github.com/ferrycd/ferry/manifests/v1alpha1"
)

// The releases pages: the list of releases, page by page; one release with
// its functions, images and triggers, read from its manifest; a diff
// between two releases or environments; and the pull requests' previews.

// releasesPerPage is how many releases one page of /releases lists.
const releasesPerPage = 30

// routesReleases registers releases, diff and previews.
func (u *uiServer) routesReleases() {
	u.page("GET /releases", u.releases)
	u.page("GET /releases/{id}", u.release)
	u.page("GET /diff", u.diff)
	u.page("GET /previews", u.previews)
}

// ---- the list ----------------------------------------------------------------

type releasesData struct {
	Source string // the list's filter; "" lists every source's
	Before int64
	Items  []releaseRow
	// NextURL is the following page's, "" on the last; FirstURL the
	// newest page's, with the same filter.
	NextURL, FirstURL string
	// Names suggest what the diff form may compare: environments first,
	// then this page's releases.
	Names []string
	// Sources offers the filter's choices.
	Sources []string
}

type releaseRow struct {
	ReleaseView
	RunsIn []string // the environments that run it now
}

func (u *uiServer) releases(w http.ResponseWriter, r *http.Request, s *uiSession) error {
	c := u.client(s)
	q := r.URL.Query()
	d := releasesData{Source: q.Get("source")}
	var err error
	if d.Before, err = pageBefore(r); err != nil {
		return err
	}
	page, err := c.Releases(r.Context(), d.Source, releasesPerPage, d.Before)
	if err != nil {
		return err
	}
	envs, err := c.Environments(r.Context())
	if err != nil {
		return err
	}
	srcs, err := c.Sources(r.Context())
	if err != nil {
		return err
	}
	for _, src := range srcs {
		d.Sources = append(d.Sources, src.Name)
	}
	if d.Source != "" && !slices.Contains(d.Sources, d.Source) {
		// why: a removed source's releases stay; its name must stay choosable.
		d.Sources = append(d.Sources, d.Source)
	}
	running := runsIn(envs)
	for _, e := range envs {
		d.Names = append(d.Names, e.Name)
	}
	for _, rel := range page.Items {
		d.Items = append(d.Items, releaseRow{ReleaseView: rel, RunsIn: running[rel.ID]})
		d.Names = append(d.Names, shortHex(rel.ID))
	}
	d.FirstURL = releasesURL(d.Source, 0)
	if page.Next > 0 {
		d.NextURL = releasesURL(d.Source, page.Next)
	}
	u.render(w, r, s, http.StatusOK, "releases", uiPage{Nav: "releases", Live: r.URL.RequestURI(), Data: d})
	return nil
}

// releasesURL is the list's page before seq before (0: the newest) of
// source ("" for all).
func releasesURL(source string, before int64) string {
	q := url.Values{}
	if source != "" {
		q.Set("source", source)
	}
	if before > 0 {
		q.Set("before", strconv.FormatInt(before, 10))
	}
	if len(q) == 0 {
		return "/releases"
	}
	return "/releases?" + q.Encode()
}

// runsIn maps a release id to the environments that run it, in the
// environments' order.
func runsIn(envs []EnvironmentView) map[string][]string {
	out := map[string][]string{}
	for _, e := range envs {
		if e.Release != "" {
			out[e.Release] = append(out[e.Release], e.Name)
		}
	}
	return out
}

// ---- one release -------------------------------------------------------------

type releaseData struct {
	Release ReleaseView
	RunsIn  []string
	// Others are the environments that run another release: the page
	// offers a diff with each.
	Others    []string
	Functions []releaseFunction
	Triggers  []releaseTrigger
	// Problem says why the functions cannot be shown (a manifest that
	// does not load).
	Problem string
}

type releaseFunction struct {
	Name, Runtime, Image string
	Triggers             []string // "Kind/name" of each trigger that calls it
}

type releaseTrigger struct {
	Kind, Name string
	// What is what sets it off: a path and methods, a schedule, a topic.
	What string
	// Calls is the function it names, or its selector.
	Calls        string
	Functions    []string // the functions it calls in this release
	Environments []string // where it runs; none: wherever the release does
}

func (u *uiServer) release(w http.ResponseWriter, r *http.Request, s *uiSession) error {
	c := u.client(s)
	rel, err := c.Release(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	envs, err := c.Environments(r.Context())
	if err != nil {
		return err
	}
	d := releaseData{Release: rel, RunsIn: runsIn(envs)[rel.ID]}
	for _, e := range envs {
		if e.Release != "" && e.Release != rel.ID {
			d.Others = append(d.Others, e.Name)
		}
	}
	d.Functions, d.Triggers, err = releaseContents(r.Context(), rel.Manifest)
	if err != nil {
		d.Problem = err.Error()
	}
	u.render(w, r, s, http.StatusOK, "release", uiPage{Nav: "releases", Live: r.URL.RequestURI(), Data: d})
	return nil
}

// releaseContents reads a release's manifest: its functions with their
// images, and its triggers with the functions each calls.
func releaseContents(ctx context.Context, manifest string) ([]releaseFunction, []releaseTrigger, error) {
	if manifest == "" {
		return nil, nil, errors.New("ferry holds no manifest for this release, so its functions cannot be listed")
	}
	set, err := manifests.LoadRelease(ctx, []byte(manifest))
	if err != nil {
		return nil, nil, fmt.Errorf("the release's manifest does not load: %w", err)
	}
	var fns []releaseFunction
	byName := map[string]int{}
	for _, f := range set.Functions {
		byName[f.Name] = len(fns)
		fns = append(fns, releaseFunction{Name: f.Name, Runtime: f.Spec.Runtime, Image: f.Spec.Image})
	}
	var trs []releaseTrigger
	add := func(kind, name, what string, ft v1alpha1.FunctionTarget, envs []string) {
		t := releaseTrigger{Kind: kind, Name: name, What: what, Environments: envs}
		t.Calls, t.Functions = triggerCalls(ft, set.Functions)
		for _, fn := range t.Functions {
			if i, ok := byName[fn]; ok {
				fns[i].Triggers = append(fns[i].Triggers, kind+"/"+name)
			}
		}
		trs = append(trs, t)
	}
	for _, t := range set.HTTPTriggers {
		methods := "any method"
		if len(t.Spec.Methods) > 0 {
			methods = strings.Join(t.Spec.Methods, ", ")
		}
		add("HTTPTrigger", t.Name, t.Spec.Path+" ("+methods+")", t.Spec.FunctionTarget, t.Spec.Environments)
	}
	for _, t := range set.CronTriggers {
		what := t.Spec.Schedule
		if t.Spec.TimeZone != "" {
			what += " (" + t.Spec.TimeZone + ")"
		}
		add("CronTrigger", t.Name, what, t.Spec.FunctionTarget, t.Spec.Environments)
	}
	for _, t := range set.NATSTriggers {
		add("NATSTrigger", t.Name, "subject "+t.Spec.Topic, t.Spec.FunctionTarget, t.Spec.Environments)
	}
	for _, t := range set.KafkaTriggers {
		add("KafkaTrigger", t.Name, "topic "+t.Spec.Topic, t.Spec.FunctionTarget, t.Spec.Environments)
	}
	slices.SortFunc(fns, func(a, b releaseFunction) int { return strings.Compare(a.Name, b.Name) })
	return fns, trs, nil
}

// triggerCalls says what a trigger names (a function, or a selector) and
// which of functions it calls.
func triggerCalls(ft v1alpha1.FunctionTarget, functions []*v1alpha1.Function) (string, []string) {
	if ft.Function != "" {
		return ft.Function, []string{ft.Function}
	}
	if ft.FunctionSelector == nil {
		return "", nil
	}
	calls := "functions with " + metav1.FormatLabelSelector(ft.FunctionSelector)
	sel, err := metav1.LabelSelectorAsSelector(ft.FunctionSelector)
	if err != nil || sel.Empty() {
		return calls, nil
	}
	var names []string
	for _, f := range functions {
		if sel.Matches(labels.Set(f.Labels)) {
			names = append(names, f.Name)
		}
	}
	slices.Sort(names)
	return calls, names
}

// ---- diff --------------------------------------------------------------------

type diffData struct {
	From, To string // as asked
	Names    []string
	// Problem is why there is no diff to show: the API's answer to a
	// missing or wrong name.
	Problem string
	Diff    *DiffView
	Same    bool // both name the same release
	// Functions are both sides' functions; Change marks those that
	// differ: changed, added or removed.
	Functions []diffFunction
	Manifest  []diffLine
}

type diffFunction struct {
	Name, From, To, Change string
}

type diffLine struct {
	Class, Text string
}

func (u *uiServer) diff(w http.ResponseWriter, r *http.Request, s *uiSession) error {
	c := u.client(s)
	q := r.URL.Query()
	d := diffData{From: strings.TrimSpace(q.Get("from")), To: strings.TrimSpace(q.Get("to"))}
	envs, err := c.Environments(r.Context())
	if err != nil {
		return err
	}
	for _, e := range envs {
		d.Names = append(d.Names, e.Name)
	}
	code := http.StatusOK
	switch {
	case d.From == "" && d.To == "":
		// The form alone: nothing asked yet.
	case d.From == "" || d.To == "":
		code, d.Problem = http.StatusBadRequest, "Give both sides: an environment's name, or a release id (a prefix of 4 or more of its hex digits is enough)."
	default:
		v, err := c.Diff(r.Context(), d.From, d.To)
		var se *StatusError
		switch {
		case errors.As(err, &se) && se.Code < 500:
			code, d.Problem = se.Code, se.Message
		case err != nil:
			return err
		default:
			d.Diff = &v
			d.Same = v.From.Release == v.To.Release
			d.Functions = u.diffFunctions(r.Context(), c, v)
			d.Manifest = markDiff(v.Manifest)
		}
	}
	u.render(w, r, s, code, "diff", uiPage{Nav: "releases", Live: r.URL.RequestURI(), Data: d})
	return nil
}

// diffFunctions lists every function of both sides with its image on
// each; those the API found different are marked. Without both manifests
// it lists only those.
func (u *uiServer) diffFunctions(ctx context.Context, c *Client, v DiffView) []diffFunction {
	changed := map[string]FunctionDiff{}
	for _, f := range v.Functions {
		changed[f.Name] = f
	}
	imagesA, errA := releaseImages(ctx, c, v.From.Release)
	imagesB, errB := releaseImages(ctx, c, v.To.Release)
	if errA != nil || errB != nil {
		imagesA, imagesB = map[string]string{}, map[string]string{}
		for _, f := range v.Functions {
			if f.From != "" {
				imagesA[f.Name] = f.From
			}
			if f.To != "" {
				imagesB[f.Name] = f.To
			}
		}
	}
	var out []diffFunction
	for _, name := range unionKeys(imagesA, imagesB) {
		f := diffFunction{Name: name, From: imagesA[name], To: imagesB[name]}
		if _, ok := changed[name]; ok || f.From != f.To {
			switch {
			case f.From == "":
				f.Change = "added"
			case f.To == "":
				f.Change = "removed"
			default:
				f.Change = "changed"
			}
		}
		out = append(out, f)
	}
	return out
}

// releaseImages maps a release's functions to their images.
func releaseImages(ctx context.Context, c *Client, id string) (map[string]string, error) {
	rel, err := c.Release(ctx, id)
	if err != nil {
		return nil, err
	}
	fns, _, err := releaseContents(ctx, rel.Manifest)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, f := range fns {
		out[f.Name] = f.Image
	}
	return out, nil
}

// markDiff marks a unified diff's lines for colour.
func markDiff(udiff string) []diffLine {
	if udiff == "" {
		return nil
	}
	var out []diffLine
	for line := range strings.SplitSeq(strings.TrimSuffix(udiff, "\n"), "\n") {
		class := ""
		switch {
		case strings.HasPrefix(line, "+++"), strings.HasPrefix(line, "---"), strings.HasPrefix(line, "@@"):
			class = "hunk"
		case strings.HasPrefix(line, "+"):
			class = "add"
		case strings.HasPrefix(line, "-"):
			class = "del"
		}
		out = append(out, diffLine{Class: class, Text: line})
	}
	return out
}

// ---- previews ----------------------------------------------------------------

type previewsData struct {
	Items []PreviewInfo
	// NotSetUp is the API's word when this ferry makes no previews.
	NotSetUp string
}

func (u *uiServer) previews(w http.ResponseWriter, r *http.Request, s *uiSession) error {
	var d previewsData
	list, err := u.client(s).Previews(r.Context())
	var se *StatusError
	switch {
	case errors.As(err, &se) && se.Code == http.StatusNotFound:
		d.NotSetUp = se.Message
	case err != nil:
		return err
	default:
		for _, pv := range list {
			pv.PullURL, pv.URL = webLink(pv.PullURL), webLink(pv.URL)
			d.Items = append(d.Items, pv)
		}
	}
	u.render(w, r, s, http.StatusOK, "previews", uiPage{Nav: "previews", Live: r.URL.RequestURI(), Data: d})
	return nil
}

// webLink keeps an http(s) URL and drops any other: a pull request's link
// comes from a webhook's payload, and only a web page is worth a click.
func webLink(s string) string {
	l, err := url.Parse(s)
	if err != nil || (l.Scheme != "http" && l.Scheme != "https") || l.Host == "" {
		return ""
	}
	return s
}
