package server

import (
	"context"
	"strings"
	"testing"

	"github.com/ferrycd/ferry/store"
)

func TestAPIReleaseByPrefix(t *testing.T) {
	f := newAPIFixture(t)
	ctx := context.Background()
	ids := []string{"sha256:" + strings.Repeat("ab", 32), "sha256:abab" + strings.Repeat("cd", 30), "sha256:" + strings.Repeat("ef", 32)}
	for i, id := range ids {
		if _, _, err := f.store.PutRelease(ctx, store.Release{ID: id, Source: "demo", Commit: strings.Repeat(string(rune('1'+i)), 40), Ref: "reg/demo@" + id, Kind: store.ReleasePulled}); err != nil {
			t.Fatal(err)
		}
	}
	c := f.client(t, viewerSecret)
	for prefix, want := range map[string]string{"efef": ids[2], "sha256:efef": ids[2], "ababab": ids[0], "ababcd": ids[1], ids[0]: ids[0]} {
		rel, err := c.Release(ctx, prefix)
		if err != nil || rel.ID != want {
			t.Errorf("release %s: %s, %v; want %s", prefix, rel.ID, err, want)
		}
	}
	_, err := c.Release(ctx, "abab")
	wantStatus(t, err, 409)
	for _, id := range ids[:2] {
		if !strings.Contains(err.Error(), strings.TrimPrefix(id, "sha256:")) {
			t.Errorf("the ambiguous prefix's answer does not list %s: %v", id, err)
		}
	}
	_, err = c.Release(ctx, "1234")
	wantStatus(t, err, 404)
	_, err = c.Release(ctx, "abc")
	wantStatus(t, err, 400)
	_, err = c.Release(ctx, "ab%25")
	wantStatus(t, err, 400)
}
