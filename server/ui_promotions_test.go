package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ferrycd/ferry/build"
	"github.com/ferrycd/ferry/promote"
	"github.com/ferrycd/ferry/store"
)

// The promotions pages over ferry serve's parts as Serve wires them: a
// store file, an embedded host behind its gateway, a running promoter
// whose prod waits for two approvals, the API and the dashboard.

const (
	promosDanSecret  = "promos-dan-secret-0123456789"  // deployer: asks for promotions
	promosAnnSecret  = "promos-ann-secret-0123456789"  // approver
	promosBobSecret  = "promos-bob-secret-0123456789"  // approver
	promosCaraSecret = "promos-cara-secret-0123456789" // approver, and the commit's author
	promosVeraSecret = "promos-vera-secret-0123456789" // viewer
	promosCommit     = "c0ffee1234567890abcdef1234567890abcdef12"
)

var promosTokens = []Token{
	{Name: "dan", Secret: promosDanSecret, Roles: []Role{RoleDeployer}, Email: "dan@example.com"},
	{Name: "ann", Secret: promosAnnSecret, Roles: []Role{RoleApprover}, Email: "ann@example.com"},
	{Name: "bob", Secret: promosBobSecret, Roles: []Role{RoleApprover}, Email: "bob@example.com"},
	{Name: "cara", Secret: promosCaraSecret, Roles: []Role{RoleApprover}, Email: "cara@example.com"},
	{Name: "vera", Secret: promosVeraSecret, Roles: []Role{RoleViewer}},
}

// promosFixture is the stack with prod waiting for two approvals; cara
// wrote every commit, so her approval is a self-approval.
type promosFixture = uiStack

func newPromosFixture(t *testing.T) *promosFixture {
	t.Helper()
	return newUIStack(t, uiStackConfig{
		config: `
environments:
- {name: dev}
- {name: staging}
- name: prod
  approval: {required: 2}
`,
		tokens: promosTokens,
		author: func(context.Context, string, string) (string, string, error) {
			return "Cara Author", "cara@example.com", nil
		},
	})
}

func (f *uiStack) client(secret string) *Client {
	f.t.Helper()
	c, err := NewClient(f.api, secret)
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

// release records rel as a release of commit promosCommit that has
// succeeded in staging, so that it may be promoted to prod.
func (f *promosFixture) release(rel *build.Release) string {
	f.t.Helper()
	ctx := context.Background()
	id := rel.Digest.String()
	if _, _, err := f.st.PutRelease(ctx, store.Release{ID: id, Source: "demo", Commit: promosCommit, Ref: rel.Ref, Manifest: rel.Manifest}); err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.st.CreatePromotion(ctx, store.Promotion{Release: id, Environment: "staging", Status: promote.StatusSucceeded, Requester: "ferry"}); err != nil {
		f.t.Fatal(err)
	}
	return id
}

// promosFlash reads the message a page shows after an action.
func promosFlash(body string) (ok, bad string) {
	if m := regexp.MustCompile(`<p class="flash ok" role="status">([^<]*)</p>`).FindStringSubmatch(body); m != nil {
		ok = m[1]
	}
	if m := regexp.MustCompile(`<p class="flash bad" role="alert">([^<]*)</p>`).FindStringSubmatch(body); m != nil {
		bad = m[1]
	}
	return ok, bad
}

// promosAct posts form to path as b's page would, expects the redirect
// back to the promotion, and returns the page it leads to.
func promosAct(t *testing.T, b *browser, path string, form url.Values, back string) uiAnswer {
	t.Helper()
	a := b.post(path, form)
	if a.code != http.StatusSeeOther || a.header.Get("Location") != back {
		t.Fatalf("POST %s: %d to %q, want 303 to %s\n%s", path, a.code, a.header.Get("Location"), back, a.body)
	}
	return b.get(back)
}

// promosUnchanged fails unless promotion id is still pending with the
// approvals want (actors, in order).
func promosUnchanged(t *testing.T, c *Client, id int64, want ...string) {
	t.Helper()
	p, err := c.Promotion(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range p.Approvals {
		got = append(got, a.Actor)
	}
	if p.Status != promote.StatusPending || strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("promotion %d is %s with approvals by %v, want pending with %v", id, p.Status, got, want)
	}
}

func TestUIPromotionsApproveAndReject(t *testing.T) {
	rel := buildExample(t)
	f := newPromosFixture(t)
	ctx := context.Background()
	relID := f.release(rel)
	viewerAPI := f.client(promosVeraSecret)

	p, err := f.client(promosDanSecret).Promote(ctx, relID, "prod")
	if err != nil {
		t.Fatal(err)
	}
	if p.Status != promote.StatusPending || p.Required != 2 {
		t.Fatalf("the promotion into prod: %+v, want pending for 2 approvals", p)
	}
	detail := fmt.Sprintf("/promotions/%d", p.ID)

	// The list: the pending promotion waits, with its Required and what
	// it waits for; a viewer is offered no approve or reject.
	vera := signInAt(t, f.ui, promosVeraSecret)
	list := vera.get("/promotions")
	if list.code != 200 {
		t.Fatalf("/promotions as a viewer: %d\n%s", list.code, list.body)
	}
	waiting := regexp.MustCompile(`(?s)<tr data-waiting="` + fmt.Sprint(p.ID) + `">.*?</tr>`).FindString(list.body)
	for _, want := range []string{">prod</a>", shortHex(relID), shortHex(promosCommit), ">dan<", "0 of 2", "waiting for 2 more approvals"} {
		if !strings.Contains(waiting, want) {
			t.Errorf("the waiting row lacks %q:\n%s", want, waiting)
		}
	}
	row := regexp.MustCompile(`(?s)<tr data-promotion="` + fmt.Sprint(p.ID) + `">.*?</tr>`).FindString(list.body)
	if !strings.Contains(row, `<span class="badge status s-pending">pending</span>`) || !strings.Contains(row, "0 of 2") {
		t.Errorf("the promotion's row:\n%s", row)
	}
	if strings.Contains(list.body, "/approve") || strings.Contains(list.body, "Reject") {
		t.Errorf("a viewer's list offers approve or reject:\n%s", list.body)
	}
	page := vera.get(detail)
	if page.code != 200 || !strings.Contains(page.body, `id="promotion-status"`) || !strings.Contains(page.body, "0 of 2 approvals") {
		t.Fatalf("%s as a viewer: %d\n%s", detail, page.code, page.body)
	}
	if strings.Contains(page.body, `id="approve"`) || strings.Contains(page.body, `id="reject"`) {
		t.Errorf("a viewer is offered the approve and reject forms:\n%s", page.body)
	}
	// A viewer's POST, with the page's own CSRF token, is refused; so is
	// a deployer's, who may promote but not approve.
	if a := vera.post(detail+"/approve", url.Values{"csrf": {vera.csrf(detail)}}); a.code != http.StatusForbidden {
		t.Errorf("a viewer's approval: %d, want 403\n%s", a.code, a.body)
	}
	dan := signInAt(t, f.ui, promosDanSecret)
	if a := dan.post(detail+"/approve", url.Values{"csrf": {dan.csrf(detail)}}); a.code != http.StatusForbidden || !strings.Contains(a.body, "approver role") {
		t.Errorf("a deployer's approval: %d, want 403 naming the approver role\n%s", a.code, a.body)
	}
	promosUnchanged(t, viewerAPI, p.ID)

	// An approver is offered both forms, labelled.
	ann := signInAt(t, f.ui, promosAnnSecret)
	page = ann.get(detail)
	for _, want := range []string{`<form id="approve"`, `<textarea id="approve-comment"`, `<label for="approve-comment">Comment (optional)</label>`, ">Approve</button>",
		`<form id="reject"`, `<textarea id="reject-comment"`, `<label for="reject-comment">Why (required)</label>`, ">Reject</button>"} {
		if !strings.Contains(page.body, want) {
			t.Errorf("an approver's promotion page lacks %s", want)
		}
	}
	// Without the CSRF token: refused.
	if a := ann.post(detail+"/approve", url.Values{"comment": {"forged"}}); a.code != http.StatusForbidden || !strings.Contains(a.body, "CSRF") {
		t.Errorf("an approval without the CSRF token: %d\n%s", a.code, a.body)
	}
	promosUnchanged(t, viewerAPI, p.ID)

	// The API's refusals come back as the page's error, and change nothing.
	csrf := ann.csrf(detail)
	after := promosAct(t, ann, detail+"/reject", url.Values{"csrf": {csrf}, "comment": {"  "}}, detail)
	if _, bad := promosFlash(after.body); !strings.Contains(bad, "a rejection needs a comment saying why") {
		t.Errorf("a rejection without a comment says %q", bad)
	}
	promosUnchanged(t, viewerAPI, p.ID)
	cara := signInAt(t, f.ui, promosCaraSecret)
	after = promosAct(t, cara, detail+"/approve", url.Values{"csrf": {cara.csrf(detail)}}, detail)
	if _, bad := promosFlash(after.body); !strings.Contains(bad, "cara wrote commit "+shortHex(promosCommit)) {
		t.Errorf("the author's approval says %q", bad)
	}
	promosUnchanged(t, viewerAPI, p.ID)

	// ann approves: recorded with her comment, as her; it waits for one more.
	after = promosAct(t, ann, detail+"/approve", url.Values{"csrf": {csrf}, "comment": {"looks good <b>"}}, detail)
	ok, bad := promosFlash(after.body)
	if bad != "" || !strings.Contains(ok, fmt.Sprintf("Approved promotion %d", p.ID)) || !strings.Contains(ok, "waiting for 1 more approval") {
		t.Errorf("after ann's approval: ok %q, bad %q", ok, bad)
	}
	if !strings.Contains(after.body, "1 of 2 approvals") || !strings.Contains(after.body, `data-actor="ann" data-verdict="approve"`) ||
		!strings.Contains(after.body, "looks good &lt;b&gt;") {
		t.Errorf("the page after ann's approval:\n%s", after.body)
	}
	// Having decided, ann is offered no second decision, here or in the
	// list; another approver still is.
	if strings.Contains(after.body, `<form id="approve"`) || !strings.Contains(after.body, `id="decided"`) {
		t.Errorf("ann is offered a second decision:\n%s", after.body)
	}
	if l := ann.get("/promotions"); strings.Contains(l.body, fmt.Sprintf(`action="/promotions/%d/approve"`, p.ID)) || !strings.Contains(l.body, "you decided") {
		t.Errorf("the list offers ann a second approval:\n%s", l.body)
	}
	if bp := signInAt(t, f.ui, promosBobSecret).get(detail); !strings.Contains(bp.body, `<form id="approve"`) {
		t.Errorf("bob is offered no approval:\n%s", bp.body)
	}
	got, err := viewerAPI.Promotion(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != promote.StatusPending || len(got.Approvals) != 1 || got.Approvals[0].Actor != "ann" || !got.Approvals[0].Approve || got.Approvals[0].Comment != "looks good <b>" {
		t.Fatalf("after ann's approval the API shows %+v", got)
	}
	// Twice is refused.
	after = promosAct(t, ann, detail+"/approve", url.Values{"csrf": {csrf}}, detail)
	if _, bad := promosFlash(after.body); !strings.Contains(bad, "ann approved promotion "+fmt.Sprint(p.ID)+" already") {
		t.Errorf("ann's second approval says %q", bad)
	}
	promosUnchanged(t, viewerAPI, p.ID, "ann")

	// bob's is the second: the promoter takes it to prod.
	bob := signInAt(t, f.ui, promosBobSecret)
	after = promosAct(t, bob, detail+"/approve", url.Values{"csrf": {bob.csrf(detail)}}, detail)
	if ok, bad := promosFlash(after.body); bad != "" || !strings.Contains(ok, fmt.Sprintf("Approved promotion %d", p.ID)) {
		t.Errorf("after bob's approval: ok %q, bad %q", ok, bad)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		got, err = viewerAPI.Promotion(ctx, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status == promote.StatusSucceeded || !promotionOpen(got.Status) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got.Status != promote.StatusSucceeded || len(got.Approvals) != 2 || got.Approvals[1].Actor != "bob" {
		t.Fatalf("after bob's approval the API shows %+v, want it succeeded", got)
	}
	env, err := viewerAPI.Environment(ctx, "prod")
	if err != nil || env.Release != relID {
		t.Fatalf("prod runs %q (%v), want %s", env.Release, err, relID)
	}
	if code, body := promosCall(t, f.gateway+"/prod/hello"); code != 200 || !strings.Contains(body, "hello from python") {
		t.Errorf("prod answers %d %s", code, body)
	}
	// Once it is no longer pending, nobody is offered the forms; the list
	// has nothing waiting.
	page = ann.get(detail)
	if !strings.Contains(page.body, `data-status="succeeded"`) || strings.Contains(page.body, `id="approve"`) || strings.Contains(page.body, `id="reject"`) {
		t.Errorf("the succeeded promotion's page:\n%s", page.body)
	}
	if list := ann.get("/promotions"); strings.Contains(list.body, "data-waiting=") || !strings.Contains(list.body, "No promotion waits for an approval") {
		t.Errorf("the list still shows a promotion waiting:\n%s", list.body)
	}
	// The audit log names the approvers by their tokens' names.
	events, err := viewerAPI.Events(ctx, fmt.Sprintf("promotion/%d", p.ID), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var approvers []string
	for _, e := range events.Items {
		if e.Action == promote.ActionPromotionApprove {
			approvers = append(approvers, e.Actor)
		}
	}
	if strings.Join(approvers, ",") != "bob,ann" && strings.Join(approvers, ",") != "ann,bob" {
		t.Errorf("the audit log's approvals are by %v, want ann and bob", approvers)
	}
}

func promosCall(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The list pages 30 at a time, filters by environment, and the API's
// ?status= lists the open ones whatever their age.
func TestUIPromotionsPaged(t *testing.T) {
	f := newPromosFixture(t)
	ctx := context.Background()
	rel := "sha256:" + strings.Repeat("ab", 32)
	if _, _, err := f.st.PutRelease(ctx, store.Release{ID: rel, Source: "demo", Commit: promosCommit}); err != nil {
		t.Fatal(err)
	}
	old, err := f.st.CreatePromotion(ctx, store.Promotion{Release: rel, Environment: "prod", Status: promote.StatusPending, Requester: "dan", Reason: "waiting for 2 approvals"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		env := "dev"
		if i%2 == 1 {
			env = "staging"
		}
		if _, err := f.st.CreatePromotion(ctx, store.Promotion{Release: rel, Environment: env, Status: promote.StatusSucceeded, Requester: "ferry"}); err != nil {
			t.Fatal(err)
		}
	}
	b := signInAt(t, f.ui, promosVeraSecret)
	first := b.get("/promotions")
	rows := regexp.MustCompile(`<tr data-promotion="(\d+)">`).FindAllStringSubmatch(first.body, -1)
	if len(rows) != promotionsPerPage || rows[0][1] != "41" {
		t.Fatalf("the first page lists %d promotions from %v, want %d from 41", len(rows), rows[:min(1, len(rows))], promotionsPerPage)
	}
	// The pending promotion is older than the first page, and waits at its top.
	if !strings.Contains(first.body, fmt.Sprintf(`<tr data-waiting="%d">`, old.ID)) {
		t.Errorf("the old pending promotion is not listed as waiting:\n%s", first.body)
	}
	m := regexp.MustCompile(`<a rel="next" href="([^"]+)">`).FindStringSubmatch(first.body)
	if m == nil {
		t.Fatalf("the first page has no a[rel=next]:\n%s", first.body)
	}
	second := b.get(strings.ReplaceAll(m[1], "&amp;", "&"))
	rows = regexp.MustCompile(`<tr data-promotion="(\d+)">`).FindAllStringSubmatch(second.body, -1)
	if len(rows) != 11 || rows[0][1] != "11" || rows[10][1] != "1" || strings.Contains(second.body, `rel="next"`) || strings.Contains(second.body, "data-waiting=") {
		t.Errorf("the second page lists %v", rows)
	}

	staging := b.get("/promotions?env=staging")
	rows = regexp.MustCompile(`<tr data-promotion="(\d+)">`).FindAllStringSubmatch(staging.body, -1)
	if len(rows) != 20 || strings.Contains(staging.body, "data-waiting=") || !strings.Contains(staging.body, "Only promotions into staging") {
		t.Errorf("?env=staging lists %d promotions, want its 20 and none waiting", len(rows))
	}
	if a := b.get("/promotions?before=x"); a.code != http.StatusBadRequest {
		t.Errorf("?before=x: %d", a.code)
	}
	if a := b.get("/promotions/nope"); a.code != http.StatusNotFound {
		t.Errorf("/promotions/nope: %d", a.code)
	}
	if a := b.get("/promotions/999"); a.code != http.StatusNotFound {
		t.Errorf("/promotions/999: %d\n%s", a.code, a.body)
	}

	c := f.client(promosVeraSecret)
	open, err := c.OpenPromotions(ctx, "", "pending")
	if err != nil || len(open) != 1 || open[0].ID != old.ID || open[0].Commit != promosCommit {
		t.Errorf("the open promotions: %+v %v, want promotion %d with its commit", open, err, old.ID)
	}
	if open, err := c.OpenPromotions(ctx, "dev", "pending"); err != nil || len(open) != 0 {
		t.Errorf("dev's open promotions: %+v %v", open, err)
	}
	var se *StatusError
	if _, err := c.OpenPromotions(ctx, "", "succeeded"); !errors.As(err, &se) || se.Code != http.StatusBadRequest {
		t.Errorf("?status=succeeded: %v, want 400", err)
	}
	page, err := c.Promotions(ctx, "", 5, 0)
	if err != nil || len(page.Items) != 5 || page.Items[0].Commit != promosCommit || page.Items[0].Next != "" {
		t.Errorf("a page of promotions: %+v %v, want the commit and no outlook for a finished one", page, err)
	}
}
