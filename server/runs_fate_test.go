package server

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/ferrycd/ferry/store"
)

// TestReleaseFate: one entry per environment, in the order the release
// got there, each the newest promotion's status; a failed deploy of the
// run itself counts too.
func TestReleaseFate(t *testing.T) {
	ctx := t.Context()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "ferry.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	run, _, err := st.CreateRun(ctx, store.Run{Source: "demo", Branch: "main", Commit: "c1", Status: store.StatusQueued, Created: time.Now()}, []string{"build"})
	if err != nil {
		t.Fatal(err)
	}
	if fate, err := releaseFate(ctx, st, run); err != nil || fate != nil {
		t.Errorf("a run with no release: %v %v", fate, err)
	}
	rel, _, err := st.PutRelease(ctx, store.Release{ID: "sha256:" + fmtHex('a'), Source: "demo", Commit: "c1", Ref: "r@sha256:" + fmtHex('a'), Manifest: []byte("x"), RunID: run.ID})
	if err != nil {
		t.Fatal(err)
	}
	run.Release = rel.ID
	for _, p := range []store.Promotion{
		{Environment: "dev", Status: "succeeded", Reason: "ok", RunID: run.ID},
		{Environment: "staging", Status: "succeeded", Reason: "ok"},
		{Environment: "prod", Status: "pending", Reason: "waiting for 1 approval"},
		{Environment: "staging", Status: "rolled-back", Reason: "verification failed: greets"},
	} {
		p.Release, p.Requester = rel.ID, "ferry"
		if _, err := st.CreatePromotion(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.RecordDeployment(ctx, store.Deployment{Environment: "qa", Release: rel.ID, RunID: run.ID, Actor: "ferry", Status: store.DeploymentFailed, Reason: "no such function"}); err != nil {
		t.Fatal(err)
	}
	fate, err := releaseFate(ctx, st, run)
	if err != nil {
		t.Fatal(err)
	}
	want := []FateView{{"qa", fateStatusDeployFailed, "no such function", 0}, {"dev", "succeeded", "ok", 1},
		{"staging", "rolled-back", "verification failed: greets", 4}, {"prod", "pending", "waiting for 1 approval", 3}}
	if len(fate) != len(want) {
		t.Fatalf("fate: %+v", fate)
	}
	for i := range want {
		if fate[i] != want[i] {
			t.Errorf("fate[%d] = %+v, want %+v", i, fate[i], want[i])
		}
	}
}

func fmtHex(c byte) string {
	b := make([]byte, 64)
	for i := range b {
		b[i] = c
	}
	return string(b)
}
