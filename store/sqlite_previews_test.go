package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestPreviewsRoundTrip(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	if _, err := s.GetPreview(ctx, "shop", 7); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetPreview before any = %v; want ErrNotFound", err)
	}
	created := time.Unix(1_700_000_000, 0).UTC()
	p := Preview{Source: "shop", Number: 7, Environment: PreviewName("shop", 7), Head: "c1", State: PreviewBuilding,
		Fork: true, Approved: "alice", Author: "bob", Title: "Faster", WebURL: "https://example.com/pull/7",
		TTL: 72 * time.Hour, Created: created, Activity: created}
	if err := s.PutPreview(ctx, p); err != nil {
		t.Fatal(err)
	}
	p.State, p.Release, p.Activity = PreviewTornDown, "sha256:aa", created.Add(time.Hour)
	p.TornDown, p.TornReason = created.Add(2*time.Hour), "closed"
	if err := s.PutPreview(ctx, p); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetPreview(ctx, "shop", 7)
	if err != nil {
		t.Fatal(err)
	}
	if got != p {
		t.Fatalf("GetPreview = %+v; want %+v", got, p)
	}
	if err := s.PutPreview(ctx, Preview{Source: "api", Number: 1, Environment: PreviewName("api", 1), State: PreviewLive}); err != nil {
		t.Fatal(err)
	}
	list, err := s.ListPreviews(ctx)
	if err != nil || len(list) != 2 || list[0].Source != "api" || list[1] != p {
		t.Fatalf("ListPreviews = %+v, %v; want api #1 then shop #7", list, err)
	}
}

func TestRunsOfAPullRequestAreTheirOwn(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	branch, _, err := s.CreateRun(ctx, Run{Source: "shop", Branch: "main", Commit: "c1"}, []string{"checkout"})
	if err != nil {
		t.Fatal(err)
	}
	pr, created, err := s.CreateRun(ctx, Run{Source: "shop", Branch: PullBranch(PullPrefixGitHub, 7), Commit: "c1", PullRequest: 7}, []string{"checkout"})
	if err != nil || !created || pr.ID == branch.ID {
		t.Fatalf("the pull request's run of the branch's commit = %+v, created %v, %v; want a run of its own", pr, created, err)
	}
	got, err := s.GetRun(ctx, pr.ID)
	if err != nil || got.PullRequest != 7 || got.Branch != "pull/7" {
		t.Fatalf("GetRun = %+v, %v; want pull request 7 on pull/7", got, err)
	}
	if got, _ := s.GetRun(ctx, branch.ID); got.PullRequest != 0 {
		t.Fatalf("the branch's run has pull request %d; want 0", got.PullRequest)
	}
}
