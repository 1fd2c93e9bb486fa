package server

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// Promotions: the list, with what waits for an approval first; one
// promotion with its approvals and what it waits for; approve and reject.
// The approve and reject forms are offered to approvers while a
// promotion is pending; the API decides whether an approval counts (not
// the requester's, not the commit author's, not twice) and its refusal
// is shown as it says it.

// promotionsPerPage is how many promotions a page of the list shows.
const promotionsPerPage = 30

type promotionsData struct {
	Env string // the list's ?env=, "" for all
	// Waiting are the pending promotions, oldest first; on the first page
	// only.
	Waiting []uiPromotion
	Items   []uiPromotion
	Before  int64 // this page's ?before=, 0 on the first
	Next    int64 // the next page's ?before=, 0 on the last
}

// uiPromotion is a promotion as the pages show it.
type uiPromotion struct {
	PromotionView
	// Given counts the approvals (a rejection is not one).
	Given int
}

// DecidedBy says whether name has approved or rejected p already: ferry
// counts one decision per person, so the page offers no second one.
func (p uiPromotion) DecidedBy(name string) bool {
	for _, a := range p.Approvals {
		if a.Actor == name {
			return true
		}
	}
	return false
}

func uiPromotions(ps []PromotionView) []uiPromotion {
	out := make([]uiPromotion, 0, len(ps))
	for _, p := range ps {
		out = append(out, newUIPromotion(p))
	}
	return out
}

func newUIPromotion(p PromotionView) uiPromotion {
	v := uiPromotion{PromotionView: p}
	for _, a := range p.Approvals {
		if a.Approve {
			v.Given++
		}
	}
	return v
}

func (u *uiServer) routesPromotions() {
	u.page("GET /promotions", u.promotions)
	u.page("GET /promotions/{id}", u.promotion)
	u.action("POST /promotions/{id}/approve", RoleApprover, u.approvePromotion)
	u.action("POST /promotions/{id}/reject", RoleApprover, u.rejectPromotion)
}

func (u *uiServer) promotions(w http.ResponseWriter, r *http.Request, s *uiSession) error {
	q := r.URL.Query()
	d := promotionsData{Env: q.Get("env")}
	var err error
	if d.Before, err = pageBefore(r); err != nil {
		return err
	}
	c := u.client(s)
	if d.Before == 0 {
		waiting, err := c.OpenPromotions(r.Context(), d.Env, "pending")
		if err != nil {
			return err
		}
		d.Waiting = uiPromotions(waiting)
	}
	page, err := c.Promotions(r.Context(), d.Env, promotionsPerPage, d.Before)
	if err != nil {
		return err
	}
	d.Items, d.Next = uiPromotions(page.Items), page.Next
	u.render(w, r, s, http.StatusOK, "promotions", uiPage{Nav: "promotions", Live: r.URL.RequestURI(), Data: d})
	return nil
}

func (u *uiServer) promotion(w http.ResponseWriter, r *http.Request, s *uiSession) error {
	id, err := uiPromotionID(r)
	if err != nil {
		return err
	}
	p, err := u.client(s).Promotion(r.Context(), id)
	if err != nil {
		return err
	}
	u.render(w, r, s, http.StatusOK, "promotion", uiPage{Nav: "promotions", Live: r.URL.RequestURI(), Data: newUIPromotion(p)})
	return nil
}

func (u *uiServer) approvePromotion(w http.ResponseWriter, r *http.Request, s *uiSession) error {
	return u.decidePromotion(w, r, s, true)
}

func (u *uiServer) rejectPromotion(w http.ResponseWriter, r *http.Request, s *uiSession) error {
	return u.decidePromotion(w, r, s, false)
}

// decidePromotion sends an approval or a rejection to the API and goes
// back to the promotion, saying what happens next or why the API
// refused.
func (u *uiServer) decidePromotion(w http.ResponseWriter, r *http.Request, s *uiSession, yes bool) error {
	id, err := uiPromotionID(r)
	if err != nil {
		return err
	}
	comment := strings.TrimSpace(r.PostFormValue("comment"))
	c := u.client(s)
	var p PromotionView
	verb := "Approved"
	if yes {
		p, err = c.Approve(r.Context(), id, comment)
	} else {
		verb = "Rejected"
		p, err = c.Reject(r.Context(), id, comment)
	}
	back := fmt.Sprintf("/promotions/%d", id)
	if err != nil {
		u.back(w, r, s, back, "", err)
		return nil
	}
	msg := fmt.Sprintf("%s promotion %d of %s into %s; it is %s.", verb, id, shortHex(p.Release), p.Environment, p.Status)
	if p.Next != "" {
		msg = fmt.Sprintf("%s promotion %d of %s into %s. Next: %s.", verb, id, shortHex(p.Release), p.Environment, p.Next)
	}
	u.back(w, r, s, back, msg, nil)
	return nil
}

// uiPromotionID reads {id}; a page that names no promotion is 404.
func uiPromotionID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		return 0, &StatusError{Code: http.StatusNotFound, Message: fmt.Sprintf("%q is not a promotion: promotions are numbered; the Promotions page lists them.", r.PathValue("id"))}
	}
	return id, nil
}
