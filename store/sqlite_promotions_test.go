package store

import "testing"

func TestPromotions(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	p := must[Promotion](t)(s.CreatePromotion(ctx, Promotion{Release: "sha256:r1", Environment: "prod", Status: "pending", Requester: "ann", Pinned: true}))
	if p.ID == 0 || p.Created.IsZero() || !p.Updated.Equal(p.Created) {
		t.Fatalf("CreatePromotion = %+v, want ID, Created and Updated set", p)
	}
	same(t, "GetPromotion", must[Promotion](t)(s.GetPromotion(ctx, p.ID)), p)

	// Compare-and-set on the status.
	p.Status, p.Reason = "approved", "two approvals"
	check(t, s.UpdatePromotion(ctx, p, "pending"))
	isErr(t, s.UpdatePromotion(ctx, Promotion{ID: p.ID, Status: "rejected"}, "pending"), ErrConflict,
		"promotion 1 is approved, not pending: conflict")
	got := must[Promotion](t)(s.GetPromotion(ctx, p.ID))
	if got.Status != "approved" || got.Reason != "two approvals" || got.Updated.Before(p.Updated) {
		t.Errorf("after the update: %+v", got)
	}
	isErr(t, s.UpdatePromotion(ctx, Promotion{ID: 99}, "pending"), ErrNotFound, "promotion 99: not found")
	_, err := s.GetPromotion(ctx, 99)
	isErr(t, err, ErrNotFound, "promotion 99: not found")

	q := must[Promotion](t)(s.CreatePromotion(ctx, Promotion{Release: "sha256:r2", Environment: "dev", Status: "pending"}))
	same(t, "ListPromotions", must[[]Promotion](t)(s.ListPromotions(ctx, "", Page{})), []Promotion{q, got})
	same(t, "ListPromotions of prod", must[[]Promotion](t)(s.ListPromotions(ctx, "prod", Page{})), []Promotion{got})
}

func TestApprovals(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	p := must[Promotion](t)(s.CreatePromotion(ctx, Promotion{Release: "sha256:r1", Environment: "prod", Status: "pending"}))
	a1 := must[Approval](t)(s.AddApproval(ctx, Approval{Promotion: p.ID, Actor: "ann", Approve: true, Comment: "ok"}))
	a2 := must[Approval](t)(s.AddApproval(ctx, Approval{Promotion: p.ID, Actor: "bob"}))
	if a1.ID == 0 || a1.At.IsZero() {
		t.Errorf("AddApproval = %+v, want ID and At set", a1)
	}
	same(t, "ListApprovals", must[[]Approval](t)(s.ListApprovals(ctx, p.ID)), []Approval{a1, a2})
	same(t, "ListApprovals of no promotion", must[[]Approval](t)(s.ListApprovals(ctx, 99)), []Approval{})
	_, err := s.AddApproval(ctx, Approval{Promotion: 99, Actor: "eve", Approve: true})
	isErr(t, err, ErrNotFound, "promotion 99: not found")
}
