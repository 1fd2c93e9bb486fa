package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ferrycd/ferry/environments"
	"github.com/ferrycd/ferry/promote"
	"github.com/ferrycd/ferry/store"
)

// The promotion endpoints: promote, approve, reject, rollback, resume,
// freeze, history. The promoter decides what a policy allows; the API
// checks roles and turns the promoter's refusals into 403, 409 and 400,
// and an image refused for what it holds into 422.

// PromoteRequest asks for a release in an environment.
type PromoteRequest struct {
	Release     string `json:"release"`
	Environment string `json:"environment"`
}

// CommentRequest carries an approval's or rejection's comment.
type CommentRequest struct {
	Comment string `json:"comment,omitempty"`
}

// RollbackRequest says where a rollback goes; all empty means the
// previous release.
type RollbackRequest struct {
	Release  string `json:"release,omitempty"`
	Function string `json:"function,omitempty"`
	Image    string `json:"image,omitempty"`
}

// FreezeRequest freezes an environment.
type FreezeRequest struct {
	Reason string `json:"reason"`
}

// PromotionView is a promotion with its approvals.
type PromotionView struct {
	ID          int64          `json:"id"`
	Release     string         `json:"release"`
	Environment string         `json:"environment"`
	Status      string         `json:"status"`
	Requester   string         `json:"requester"`
	Reason      string         `json:"reason,omitempty"`
	Pinned      bool           `json:"pinned,omitempty"`
	Created     time.Time      `json:"created"`
	Updated     time.Time      `json:"updated,omitzero"`
	Approvals   []ApprovalView `json:"approvals,omitempty"`
	// Required is how many approvals the stage requires (0: none).
	Required int `json:"required,omitempty"`
	// Next says what happens next: in answers to promote, approve and
	// reject, to one promotion, and to each open one of a list.
	Next string `json:"next,omitempty"`
	// Commit is the commit the release was built from, when the store
	// still holds the release.
	Commit string `json:"commit,omitempty"`
}

// ApprovalView is one yes or no.
type ApprovalView struct {
	Actor   string    `json:"actor"`
	Approve bool      `json:"approve"`
	Comment string    `json:"comment,omitempty"`
	At      time.Time `json:"at"`
}

// DeploymentView is one entry of an environment's history.
type DeploymentView struct {
	ID           int64     `json:"id"`
	Environment  string    `json:"environment"`
	Release      string    `json:"release"`
	Previous     string    `json:"previous,omitempty"`
	Source       string    `json:"source,omitempty"`
	Commit       string    `json:"commit,omitempty"`
	Kind         string    `json:"kind,omitempty"` // "" a deploy, rollback, auto-rollback
	Actor        string    `json:"actor"`
	Promotion    int64     `json:"promotion,omitempty"`
	Run          int64     `json:"run,omitempty"`
	Status       string    `json:"status"`
	Reason       string    `json:"reason,omitempty"`
	Verification string    `json:"verification,omitempty"`
	At           time.Time `json:"at"`
}

// EventView is an audit event.
type EventView struct {
	ID     int64     `json:"id"`
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"`
	Action string    `json:"action"`
	Object string    `json:"object"`
	Detail string    `json:"detail,omitempty"`
}

func promotionView(p store.Promotion, approvals []store.Approval) PromotionView {
	v := PromotionView{ID: p.ID, Release: p.Release, Environment: p.Environment, Status: p.Status, Requester: p.Requester,
		Reason: p.Reason, Pinned: p.Pinned, Created: p.Created, Updated: p.Updated}
	for _, a := range approvals {
		v.Approvals = append(v.Approvals, ApprovalView{Actor: a.Actor, Approve: a.Approve, Comment: a.Comment, At: a.At})
	}
	return v
}

// withRequired adds how many approvals v's stage requires, when the
// promoter can say. why: a release whose manifest no longer loads leaves
// it 0 rather than failing the list it is in.
func (a *api) withRequired(ctx context.Context, v PromotionView, p store.Promotion) PromotionView {
	if req, ok := a.cfg.Promoter.(promote.Requirements); ok {
		v.Required, _ = req.ApprovalsRequired(ctx, p)
	}
	return v
}

// routesPromote adds the promotion endpoints when a promoter is wired.
func (a *api) routesPromote() {
	if a.cfg.Promoter == nil {
		return
	}
	a.route("GET /api/v1/promotions", RoleViewer, a.listPromotions)
	a.route("POST /api/v1/promotions", RoleDeployer, a.createPromotion)
	a.route("GET /api/v1/promotions/{id}", RoleViewer, a.getPromotion)
	a.route("POST /api/v1/promotions/{id}/approve", RoleApprover, a.approve)
	a.route("POST /api/v1/promotions/{id}/reject", RoleApprover, a.reject)
	a.route("POST /api/v1/environments/{name}/rollback", RoleDeployer, a.rollback)
	a.route("POST /api/v1/environments/{name}/resume", RoleDeployer, a.resume)
	a.route("POST /api/v1/environments/{name}/freeze", RoleDeployer, a.freeze)
	a.route("POST /api/v1/environments/{name}/unfreeze", RoleDeployer, a.unfreeze)
	a.route("GET /api/v1/environments/{name}/history", RoleViewer, a.history)
	a.route("GET /api/v1/events", RoleViewer, a.events)
}

// promoteError turns the promoter's refusals into statuses. An image or
// release refused for what it is (a hostile layer, a digest that does not
// match, a manifest that is not an image, one over the limits) is 422
// with the reason: the request was understood, and sending it again
// cannot help, so it is not ferry's failure (500).
func promoteError(err error) error {
	if store.IsAudit(err) {
		return err
	}
	var pe *promote.Error
	if !errors.As(err, &pe) {
		if errors.Is(err, environments.ErrRefusedImage) {
			return &apiError{http.StatusUnprocessableEntity, err.Error()}
		}
		return err
	}
	code := map[promote.ErrorCode]int{promote.Forbidden: http.StatusForbidden, promote.Conflict: http.StatusConflict, promote.Invalid: http.StatusBadRequest}[pe.Code]
	if code == 0 {
		code = http.StatusInternalServerError
	}
	return &apiError{code, pe.Message}
}

// decode reads a JSON body into v; an empty body leaves v as it is.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return err
		}
		return badRequest("the body is not what this endpoint takes: %v", err)
	}
	return nil
}

func (a *api) identity(id Identity) promote.Identity {
	return promote.Identity{Name: id.Name, Email: id.Email, Groups: id.Groups}
}

// releaseID takes a release id with or without "sha256:"; a reference
// (HOST/REPO@sha256:…) is passed on whole, for the promoter to admit.
func releaseID(s string) string {
	if s != "" && !strings.HasPrefix(s, "sha256:") && !strings.Contains(s, "@") {
		return "sha256:" + s
	}
	return s
}

func (a *api) createPromotion(w http.ResponseWriter, r *http.Request, id Identity) error {
	var req PromoteRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if req.Release == "" || req.Environment == "" {
		return badRequest("give the release (its sha256:… id) and the environment")
	}
	rel, err := a.resolveRelease(r.Context(), req.Release)
	if err != nil {
		return err
	}
	p, err := a.cfg.Promoter.Promote(r.Context(), rel, req.Environment, a.identity(id))
	if err != nil {
		return promoteError(err)
	}
	v := a.withRequired(r.Context(), promotionView(p, nil), p)
	v.Commit = a.releaseCommit(r.Context(), p.Release, nil)
	v.Next = a.next(r.Context(), p.Environment, p.ID)
	writeJSON(w, http.StatusCreated, v)
	return nil
}

func promotionID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		return 0, badRequest("promotion %q: a promotion is named by its number (ferry promotions lists them)", r.PathValue("id"))
	}
	return id, nil
}

func (a *api) getPromotion(w http.ResponseWriter, r *http.Request, _ Identity) error {
	pid, err := promotionID(r)
	if err != nil {
		return err
	}
	p, err := a.cfg.Store.GetPromotion(r.Context(), pid)
	if err != nil {
		return err
	}
	approvals, err := a.cfg.Store.ListApprovals(r.Context(), pid)
	if err != nil {
		return err
	}
	v := a.withRequired(r.Context(), promotionView(p, approvals), p)
	v.Commit = a.releaseCommit(r.Context(), p.Release, nil)
	v.Next = a.next(r.Context(), p.Environment, p.ID)
	writeJSON(w, http.StatusOK, v)
	return nil
}

// releaseCommit is the commit release id was built from, or "" when the
// store holds no such release; seen keeps those a list looked up already.
func (a *api) releaseCommit(ctx context.Context, id string, seen map[string]string) string {
	if c, ok := seen[id]; ok {
		return c
	}
	rel, err := a.cfg.Store.GetRelease(ctx, id)
	if err != nil {
		return ""
	}
	if seen != nil {
		seen[id] = rel.Commit
	}
	return rel.Commit
}

// promotionOpen says whether a promotion in status may still change on
// its own, so that what happens next to it is worth saying in a list.
func promotionOpen(status string) bool {
	switch status {
	case promote.StatusPending, promote.StatusApproved, promote.StatusDeploying, promote.StatusVerifying:
		return true
	}
	return false
}

// openPromotions answers ?status=: every promotion still in an open
// status (pending, approved, deploying, verifying), oldest first, in one
// page. why: those are few (a newer pending promotion supersedes an
// older one), and a paged list of all would bury an old pending one.
func (a *api) openPromotions(ctx context.Context, env, status string, p store.Page) ([]store.Promotion, error) {
	if !promotionOpen(status) {
		return nil, badRequest("status %q: give one a promotion may wait in: %s, %s, %s or %s", status,
			promote.StatusPending, promote.StatusApproved, promote.StatusDeploying, promote.StatusVerifying)
	}
	if p != (store.Page{}) {
		return nil, badRequest("status lists every promotion in that status at once; leave out limit and before")
	}
	return a.cfg.Store.FindPromotions(ctx, store.PromotionQuery{Environment: env, Statuses: []string{status}})
}

func (a *api) listPromotions(w http.ResponseWriter, r *http.Request, _ Identity) error {
	p, err := page(r)
	if err != nil {
		return err
	}
	env, status := r.URL.Query().Get("env"), r.URL.Query().Get("status")
	var list []store.Promotion
	if status == "" {
		list, err = a.cfg.Store.ListPromotions(r.Context(), env, p)
	} else {
		list, err = a.openPromotions(r.Context(), env, status, p)
	}
	if err != nil {
		return err
	}
	out := []PromotionView{}
	commits := map[string]string{}
	for _, pr := range list {
		approvals, err := a.cfg.Store.ListApprovals(r.Context(), pr.ID)
		if err != nil {
			return err
		}
		v := a.withRequired(r.Context(), promotionView(pr, approvals), pr)
		v.Commit = a.releaseCommit(r.Context(), pr.Release, commits)
		// why: only for those still open: a finished one's outlook says
		// nothing its status does not, and costs a look at the promoter.
		if promotionOpen(pr.Status) {
			v.Next = a.next(r.Context(), pr.Environment, pr.ID)
		}
		out = append(out, v)
	}
	var last int64
	if len(list) > 0 && status == "" {
		last = list[len(list)-1].ID
	}
	writeJSON(w, http.StatusOK, ListPage[PromotionView]{Items: out, Next: next(p, len(list), last)})
	return nil
}

func (a *api) approve(w http.ResponseWriter, r *http.Request, id Identity) error {
	return a.decide(w, r, id, true)
}

func (a *api) reject(w http.ResponseWriter, r *http.Request, id Identity) error {
	return a.decide(w, r, id, false)
}

func (a *api) decide(w http.ResponseWriter, r *http.Request, id Identity, yes bool) error {
	pid, err := promotionID(r)
	if err != nil {
		return err
	}
	var req CommentRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	var p store.Promotion
	if yes {
		p, err = a.cfg.Promoter.Approve(r.Context(), pid, a.identity(id), req.Comment)
	} else {
		if strings.TrimSpace(req.Comment) == "" {
			return badRequest("a rejection needs a comment saying why (--comment)")
		}
		p, err = a.cfg.Promoter.Reject(r.Context(), pid, a.identity(id), req.Comment)
	}
	if err != nil {
		return promoteError(err)
	}
	approvals, err := a.cfg.Store.ListApprovals(r.Context(), pid)
	if err != nil {
		return err
	}
	v := a.withRequired(r.Context(), promotionView(p, approvals), p)
	v.Commit = a.releaseCommit(r.Context(), p.Release, nil)
	v.Next = a.next(r.Context(), p.Environment, p.ID)
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (a *api) rollback(w http.ResponseWriter, r *http.Request, id Identity) error {
	var req RollbackRequest
	err := decode(r, &req)
	if err != nil {
		return err
	}
	if (req.Function == "") != (req.Image == "") {
		return badRequest("pinning one function needs both its name and the image digest (--function F --to sha256:…)")
	}
	if req.Release, err = a.resolveRelease(r.Context(), req.Release); err != nil {
		return err
	}
	if req.Image, err = a.resolveImage(r.Context(), r.PathValue("name"), req.Function, req.Image); err != nil {
		return err
	}
	d, err := a.cfg.Promoter.Rollback(r.Context(), r.PathValue("name"), promote.RollbackTarget{Release: req.Release, Function: req.Function, Image: req.Image}, a.identity(id))
	if err != nil {
		return promoteError(err)
	}
	writeJSON(w, http.StatusOK, deploymentView(d))
	return nil
}

func (a *api) resume(w http.ResponseWriter, r *http.Request, id Identity) error {
	if err := a.cfg.Promoter.Resume(r.Context(), r.PathValue("name"), a.identity(id)); err != nil {
		return promoteError(err)
	}
	return a.environmentNext(w, r)
}

func (a *api) freeze(w http.ResponseWriter, r *http.Request, id Identity) error {
	var req FreezeRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if strings.TrimSpace(req.Reason) == "" {
		return badRequest("a freeze needs a reason (--reason), which every refused promotion will show")
	}
	if err := a.cfg.Promoter.Freeze(r.Context(), r.PathValue("name"), req.Reason, a.identity(id)); err != nil {
		return promoteError(err)
	}
	return a.environmentNext(w, r)
}

func (a *api) unfreeze(w http.ResponseWriter, r *http.Request, id Identity) error {
	if err := a.cfg.Promoter.Unfreeze(r.Context(), r.PathValue("name"), a.identity(id)); err != nil {
		return promoteError(err)
	}
	return a.environmentNext(w, r)
}

func deploymentView(d store.Deployment) DeploymentView {
	return DeploymentView{ID: d.ID, Environment: d.Environment, Release: d.Release, Previous: d.Previous,
		Source: d.Source, Commit: d.Commit, Kind: d.Kind, Actor: d.Actor, Promotion: d.Promotion, Run: d.RunID,
		Status: d.Status, Reason: d.Reason, Verification: d.Verification, At: d.At}
}

func (a *api) history(w http.ResponseWriter, r *http.Request, _ Identity) error {
	env := r.PathValue("name")
	if _, err := a.cfg.Store.GetEnvironment(r.Context(), env); err != nil {
		return err
	}
	p, err := page(r)
	if err != nil {
		return err
	}
	list, err := a.cfg.Store.ListDeployments(r.Context(), env, p)
	if err != nil {
		return err
	}
	out := []DeploymentView{}
	for _, d := range list {
		out = append(out, deploymentView(d))
	}
	var last int64
	if len(list) > 0 {
		last = list[len(list)-1].ID
	}
	writeJSON(w, http.StatusOK, ListPage[DeploymentView]{Items: out, Next: next(p, len(list), last)})
	return nil
}

func (a *api) events(w http.ResponseWriter, r *http.Request, _ Identity) error {
	p, err := page(r)
	if err != nil {
		return err
	}
	list, err := a.cfg.Store.ListEvents(r.Context(), r.URL.Query().Get("object"), p)
	if err != nil {
		return err
	}
	out := []EventView{}
	for _, e := range list {
		out = append(out, EventView{ID: e.ID, At: e.At, Actor: e.Actor, Action: e.Action, Object: e.Object, Detail: e.Detail})
	}
	var last int64
	if len(list) > 0 {
		last = list[len(list)-1].ID
	}
	writeJSON(w, http.StatusOK, ListPage[EventView]{Items: out, Next: next(p, len(list), last)})
	return nil
}
