package github

import (
	"testing"

	"github.com/ferrycd/ferry/internal/githubtest"
)

// PullOpen says what GitHub says of a request: open, closed, or an
// error for one it does not know.
func TestPullOpen(t *testing.T) {
	gs := githubtest.New(t)
	c := tokenClient(t, gs)
	repo := Repo{Owner: owner, Name: name}
	gs.SetPull(owner, name, 4, sha1, "")
	if open, err := c.PullOpen(t.Context(), repo, 4); err != nil || !open {
		t.Fatalf("PullOpen of an open request = %v, %v; want true", open, err)
	}
	gs.ClosePull(owner, name, 4)
	if open, err := c.PullOpen(t.Context(), repo, 4); err != nil || open {
		t.Fatalf("PullOpen of a closed request = %v, %v; want false", open, err)
	}
	if _, err := c.PullOpen(t.Context(), repo, 5); err == nil {
		t.Fatal("PullOpen of a request GitHub does not know gave no error")
	}
}
