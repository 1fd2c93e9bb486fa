package server

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/ferrycd/ferry/manifests"
	"github.com/ferrycd/ferry/store"
)

// The environments pages: the matrix (environment × function), one
// environment with its history page by page, and the rollback's
// confirmation and action. All of it reads through the API as the
// signed-in identity; the rollback is the API's, with its role check.

// envHistoryPage is how many deployments the environment page lists at a
// time.
const envHistoryPage = 20

// envScanPages bounds how many pages of history the rollback page reads
// to find the release to go back to and when it ran: 10 × 100 entries
// covers any history a person would roll back through, and a
// pathological one does not make every render walk it all.
const envScanPages = 10

func (u *uiServer) routesEnvironments() {
	u.page("GET /environments", u.environmentsMatrix)
	u.page("GET /environments/{name}", u.environmentPage)
	u.page("GET /environments/{name}/rollback", u.rollbackPage)
	u.action("POST /environments/{name}/rollback", RoleDeployer, u.rollbackAction)
}

// ---- matrix ------------------------------------------------------------------

type matrixData struct {
	Envs      []matrixEnv
	Functions []string
	// Rows is one per function, one cell per environment of Envs.
	Rows     []matrixRow
	Previews int
}

type matrixEnv struct {
	EnvironmentView
	// Last is the deployment that made the live release live (nil: no
	// history, or no promoter to keep one); Failed the newest deployment
	// when it failed, so what runs is older than what was last tried.
	Last, Failed *DeploymentView
}

type matrixRow struct {
	Function string
	Cells    []matrixCell
}

type matrixCell struct {
	Env string
	// Label names the environment with its held and frozen marks, for a
	// phone, where the cells stack without the header row.
	Label string
	// Fn is nil when the environment does not run the function.
	Fn   *FunctionStatusView
	Last *DeploymentView
	// Differs names the environment before this one in the pipeline when
	// it runs another image of the function: a release not carried here
	// yet, or one this environment was rolled back from.
	Differs string
}

func (u *uiServer) environmentsMatrix(w http.ResponseWriter, r *http.Request, s *uiSession) error {
	c := u.client(s)
	all, err := c.Environments(r.Context())
	if err != nil {
		return err
	}
	var d matrixData
	for _, e := range all {
		if e.Preview {
			d.Previews++
			continue
		}
		me := matrixEnv{EnvironmentView: e}
		me.Last, me.Failed, err = liveDeployment(r.Context(), c, e)
		if err != nil {
			return err
		}
		d.Envs = append(d.Envs, me)
		for _, f := range e.Functions {
			if !slices.Contains(d.Functions, f.Name) {
				d.Functions = append(d.Functions, f.Name)
			}
		}
	}
	slices.Sort(d.Functions)
	for _, fn := range d.Functions {
		row := matrixRow{Function: fn}
		var before *FunctionStatusView
		for i, e := range d.Envs {
			cell := matrixCell{Env: e.Name, Label: e.Name, Last: e.Last}
			if e.Held {
				cell.Label += " · held"
			}
			if e.Frozen {
				cell.Label += " · frozen"
			}
			for j := range e.Functions {
				if e.Functions[j].Name == fn {
					cell.Fn = &e.Functions[j]
				}
			}
			if i > 0 && cell.Fn != nil && before != nil && digestOf(before.Image) != digestOf(cell.Fn.Image) {
				cell.Differs = d.Envs[i-1].Name
			}
			before = cell.Fn
			row.Cells = append(row.Cells, cell)
		}
		d.Rows = append(d.Rows, row)
	}
	u.render(w, r, s, http.StatusOK, "environments", uiPage{Nav: "environments", Live: r.URL.RequestURI(), Data: d})
	return nil
}

// matrixScan is how many of an environment's newest deployments the
// matrix reads to find the one that made its release live: failed tries
// after it are rare, and a longer streak only loses who and when.
const matrixScan = 10

// liveDeployment is the newest deployment that made env's live release
// live, and the newest deployment when it failed; nil when there are
// none, or when the server keeps no history (no promoter: the API
// answers 404).
func liveDeployment(ctx context.Context, c *Client, env EnvironmentView) (live, failed *DeploymentView, err error) {
	h, err := c.History(ctx, env.Name, matrixScan, 0)
	if uiNoHistory(err) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	if len(h.Items) > 0 && h.Items[0].Status == store.DeploymentFailed {
		failed = &h.Items[0]
	}
	for i, d := range h.Items {
		if d.Release == env.Release && d.Status != store.DeploymentFailed {
			return &h.Items[i], failed, nil
		}
	}
	return nil, failed, nil
}

// uiNoHistory: the API has no history endpoint (a server without a
// promoter answers 404 there).
func uiNoHistory(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Code == http.StatusNotFound
}

// digestOf is an image reference's digest (the reference itself when it
// has none), so two references to one image compare equal.
func digestOf(ref string) string {
	if i := strings.LastIndex(ref, "@"); i >= 0 {
		return ref[i+1:]
	}
	return ref
}

// ---- one environment -----------------------------------------------------------

type environmentData struct {
	Env     EnvironmentView
	History []DeploymentView
	// NoHistory: the server keeps none (no promoter).
	NoHistory bool
	// Before is this page's ?before= (0: the newest page); Next the
	// following page's.
	Before, Next int64
}

func (u *uiServer) environmentPage(w http.ResponseWriter, r *http.Request, s *uiSession) error {
	c := u.client(s)
	name := r.PathValue("name")
	before, err := pageBefore(r)
	if err != nil {
		return err
	}
	env, err := c.Environment(r.Context(), name)
	if err != nil {
		return err
	}
	d := environmentData{Env: env, Before: before}
	h, err := c.History(r.Context(), name, envHistoryPage, before)
	switch {
	case uiNoHistory(err):
		d.NoHistory = true
	case err != nil:
		return err
	default:
		d.History, d.Next = h.Items, h.Next
	}
	u.render(w, r, s, http.StatusOK, "environment", uiPage{Nav: "environments", Live: r.URL.RequestURI(), Data: d})
	return nil
}

// ---- rollback -------------------------------------------------------------------

type rollbackData struct {
	Env EnvironmentView
	// Nothing says why there is nothing to roll back to ("" when there
	// is); then Target is empty.
	Nothing string
	Target  ReleaseView
	// Ran is when Target last became live here (nil: never, as far as
	// the history read tells).
	Ran       *DeploymentView
	Functions []rollbackFunction
}

// rollbackFunction is one function: the image it goes back to and the
// image it runs now. Same: the rollback leaves it as it is; Removed: the
// target release has no such function (To is ""); Restored: the target
// has it but the environment does not run it now (Now is "").
type rollbackFunction struct {
	Name                    string
	To, Now                 string
	Same, Removed, Restored bool
}

func (u *uiServer) rollbackPage(w http.ResponseWriter, r *http.Request, s *uiSession) error {
	c := u.client(s)
	ctx := r.Context()
	name := r.PathValue("name")
	env, err := c.Environment(ctx, name)
	if err != nil {
		return err
	}
	d := rollbackData{Env: env}
	render := func() error {
		u.render(w, r, s, http.StatusOK, "rollback", uiPage{Nav: "environments", Live: r.URL.RequestURI(), Data: d})
		return nil
	}
	if env.Release == "" {
		d.Nothing = name + " runs no release yet, so there is nothing to roll back."
		return render()
	}
	history, err := rollbackHistory(ctx, c, name)
	if err != nil {
		return err
	}
	to := r.URL.Query().Get("to")
	if to == "" {
		to = previousRelease(history, env.Release)
		if to == "" {
			d.Nothing = name + " ran no other release before " + shortHex(env.Release) + " that it could go back to. Roll forward instead: promote a release to it."
			return render()
		}
	}
	if d.Target, err = c.Release(ctx, to); err != nil {
		return err
	}
	if d.Target.ID == env.Release {
		d.Nothing = name + " runs release " + shortHex(env.Release) + " already."
		d.Target = ReleaseView{}
		return render()
	}
	for i := range history {
		if history[i].Release == d.Target.ID && history[i].Status != store.DeploymentFailed {
			d.Ran = &history[i]
			break
		}
	}
	set, err := manifests.LoadRelease(ctx, []byte(d.Target.Manifest))
	if err != nil {
		return &StatusError{Code: http.StatusConflict, Message: "release " + shortHex(d.Target.ID) + "'s manifest does not load (" + err.Error() + "); ferry cannot roll back to it"}
	}
	now := map[string]string{}
	for _, f := range env.Functions {
		now[f.Name] = f.Image
	}
	for _, f := range set.Functions {
		cur, ok := now[f.Name]
		d.Functions = append(d.Functions, rollbackFunction{Name: f.Name, To: f.Spec.Image, Now: cur,
			Same: digestOf(cur) == digestOf(f.Spec.Image), Restored: !ok && len(now) > 0})
		delete(now, f.Name)
	}
	for fn, img := range now {
		d.Functions = append(d.Functions, rollbackFunction{Name: fn, Now: img, Removed: true})
	}
	slices.SortFunc(d.Functions, func(a, b rollbackFunction) int { return strings.Compare(a.Name, b.Name) })
	return render()
}

// rollbackHistory reads env's history, newest first, up to envScanPages
// pages; none when the server keeps no history.
func rollbackHistory(ctx context.Context, c *Client, env string) ([]DeploymentView, error) {
	var all []DeploymentView
	var before int64
	for range envScanPages {
		h, err := c.History(ctx, env, store.MaxPageSize, before)
		if uiNoHistory(err) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		all = append(all, h.Items...)
		if h.Next == 0 {
			break
		}
		before = h.Next
	}
	return all, nil
}

// previousRelease is the release a rollback of an environment running
// live goes back to, read from its history (newest first) as the
// promoter reads it: the newest release that became live there and
// stayed, other than live, skipping what a rollback left and what failed
// its checks; "" when there is none.
func previousRelease(history []DeploymentView, live string) string {
	left := map[string]bool{live: true}
	for _, d := range history {
		if (d.Kind == store.DeploymentRollback || d.Kind == store.DeploymentAutoRollback) && d.Status != store.DeploymentFailed {
			left[d.Previous] = true
		}
		if d.Status == store.DeploymentRolledBack || d.Verification == store.VerificationFailed {
			left[d.Release] = true
		}
		if d.Status == store.DeploymentSucceeded && !left[d.Release] {
			return d.Release
		}
	}
	return ""
}

func (u *uiServer) rollbackAction(w http.ResponseWriter, r *http.Request, s *uiSession) error {
	name := r.PathValue("name")
	release := r.PostFormValue("release")
	back := "/environments/" + url.PathEscape(name)
	if release == "" {
		u.back(w, r, s, back+"/rollback", "", errors.New("the form named no release to roll back to; open the rollback page again"))
		return nil
	}
	d, err := u.client(s).Rollback(r.Context(), name, RollbackRequest{Release: release})
	if err != nil {
		u.back(w, r, s, back, "", err)
		return nil
	}
	u.back(w, r, s, back, name+" rolled back to "+shortHex(d.Release), nil)
	return nil
}
