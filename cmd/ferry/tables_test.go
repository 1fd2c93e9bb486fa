package main

import (
	"strings"
	"testing"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/ferrycd/ferry/server"
)

const (
	relA = "sha256:2bfdaacc7b01" + "0123456789abcdef0123456789abcdef0123456789abcdef0123"
	relB = "sha256:928ba49e7370" + "fedcba9876543210fedcba9876543210fedcba9876543210fedc"
)

// narrow fails t if a line of out is wider than the tables' 100 columns.
func narrow(t *testing.T, what, out string) {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if n := utf8.RuneCountInString(l); n > tableWidth {
			t.Errorf("%s printed %d columns:\n%s", what, n, l)
		}
	}
}

func table(f func(tw *tabwriter.Writer)) string {
	var sb strings.Builder
	tw := tabwriter.NewWriter(&sb, 0, 4, 2, ' ', 0)
	f(tw)
	tw.Flush()
	return sb.String()
}

func TestStatusNotesKeepTheCommand(t *testing.T) {
	long := strings.Repeat("because of a very long story ", 6)
	envs := []server.EnvironmentView{
		{Name: "staging", Release: relB, Error: "pulling release " + relB + ": " + long},
		{Name: "prod", Release: relA, Held: true, HoldReason: "newcomer pinned it to release 2bfdaacc7b01 at 2026-12-07T10:36:52Z; " + long,
			Frozen: true, FreezeReason: long},
	}
	out := renderStatus(envs, server.ServerView{Sandbox: "bwrap"}, false)
	narrow(t, "ferry status", out)
	for _, want := range []string{
		"prod is held: ferry resume prod lets automatic promotions in (newcomer pinned",
		"prod is frozen: ferry unfreeze prod lets promotions in (because",
		"staging: error (ferry status staging -o wide prints it whole): pulling release",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("ferry status lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, relA) || !strings.Contains(out, "2bfdaacc7b01") {
		t.Errorf("ferry status should name the release by 12 characters:\n%s", out)
	}
	wide := renderStatus(envs, server.ServerView{Sandbox: "bwrap"}, true)
	if !strings.Contains(wide, long+")") || !strings.Contains(wide, "error: pulling release "+relB) {
		t.Errorf("ferry status -o wide cut a note:\n%s", wide)
	}
}

func TestPromotionsTable(t *testing.T) {
	ps := []server.PromotionView{
		{ID: 3, Release: relA, Environment: "prod", Status: "pending", Requester: "ferry", Required: 2,
			Reason: "waiting for 2 approvals " + strings.Repeat("and more words ", 10)},
		{ID: 2, Release: relB, Environment: "prod", Status: "rejected", Requester: "ferry", Required: 2, Reason: "rejected by newcomer",
			Approvals: []server.ApprovalView{{Actor: "reviewer", Approve: true}, {Actor: "newcomer", Approve: false}}},
		{ID: 1, Release: relB, Environment: "staging", Status: "succeeded", Requester: "ferry"},
	}
	out := table(func(tw *tabwriter.Writer) { printPromotions(tw, ps, false) })
	narrow(t, "ferry promotions", out)
	for id, want := range map[string]string{"3 ": " 0/2 ", "2 ": " 1/2 (reviewer) ", "1 ": " - "} {
		if l := lineStarting(out, id); !strings.Contains(l, want) {
			t.Errorf("promotion %sAPPROVALS: want %q in %q\n%s", id, want, l, out)
		}
	}
	if l := lineStarting(out, "2 "); !strings.Contains(l, "rejected by newcomer") {
		t.Errorf("the rejection is not in its REASON: %q\n%s", l, out)
	}
	if strings.Contains(out, relA) || !strings.Contains(out, "2bfdaacc7b01") {
		t.Errorf("ferry promotions should name releases by 12 characters:\n%s", out)
	}
	if wide := table(func(tw *tabwriter.Writer) { printPromotions(tw, ps, true) }); !strings.Contains(wide, relA) {
		t.Errorf("ferry promotions -o wide should name releases whole:\n%s", wide)
	}
}

func TestOneLineAnswersNameShortIDs(t *testing.T) {
	out := table(func(tw *tabwriter.Writer) {
		printDeployment(tw, server.DeploymentView{Environment: "prod", Release: relA, Previous: relB, Actor: "newcomer"}, false)
		printPromotion(tw, server.PromotionView{ID: 4, Release: relA, Environment: "prod", Status: "pending", Requester: "newcomer"}, false)
	})
	for _, want := range []string{"prod now runs 2bfdaacc7b01 (was 928ba49e7370), by newcomer", "promotion 4: 2bfdaacc7b01 into prod, pending"} {
		if !strings.Contains(out, want) {
			t.Errorf("lacks %q:\n%s", want, out)
		}
	}
}

func TestRunsTableSaysWhyTheReleaseFailed(t *testing.T) {
	long := "verification failed: greets: GET /hello answered 500, want 200" + strings.Repeat(" and then some", 10) + "\nsecond line"
	run := server.RunView{ID: 7, Source: "shop", Branch: "main", Commit: strings.Repeat("c", 40), Status: "succeeded", Release: relA,
		Fate: []server.FateView{
			{Environment: "dev", Status: "succeeded", Promotion: 5},
			{Environment: "staging", Status: "failed", Reason: long, Promotion: 6},
			{Environment: "prod", Status: "pending", Reason: "waiting for 2 approvals", Promotion: 8},
		}}
	failed := run
	failed.Fate = run.Fate[:2]
	failed.Created = time.Now().Add(-83 * time.Second)
	out := table(func(tw *tabwriter.Writer) { printRuns(tw, []server.RunView{failed}, false) })
	narrow(t, "ferry runs", out)
	if l := lineStarting(out, "7 "); !strings.Contains(l, "dev ✔, staging failed  verification failed") || strings.Contains(l, relA) {
		t.Errorf("ferry runs: %q\n%s", l, out)
	}

	out = table(func(tw *tabwriter.Writer) { printRun(tw, run, false) })
	narrow(t, "ferry runs 7", out)
	if l := lineStarting(out, "staging "); !strings.Contains(l, " 6 ") || !strings.Contains(l, "failed   verification failed: greets") || strings.Contains(l, "second line") {
		t.Errorf("ferry runs 7, staging: %q\n%s", l, out)
	}
	if l := lineStarting(out, "dev "); !strings.Contains(l, "✔") {
		t.Errorf("ferry runs 7, dev: %q\n%s", l, out)
	}
	if strings.Contains(out, relA) || !strings.Contains(out, "release") {
		t.Errorf("ferry runs 7 should name its release by 12 characters:\n%s", out)
	}
	wide := table(func(tw *tabwriter.Writer) { printRun(tw, run, true) })
	if !strings.Contains(wide, "second line") || !strings.Contains(wide, relA) {
		t.Errorf("ferry runs 7 -o wide cut the reason or the release:\n%s", wide)
	}
}

func lineStarting(out, prefix string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}
