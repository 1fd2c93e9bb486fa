package store

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestReleasesByPrefix(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	ids := []string{"sha256:abcd1111", "sha256:abcd2222", "sha256:abce3333", "sha256:ff000000"}
	for i, id := range ids {
		check(t, ignore2(s.PutRelease(ctx, Release{ID: id, Source: "demo", Commit: strings.Repeat("c", i+1), Ref: "reg/demo@" + id, Kind: ReleasePinned})))
	}
	got := func(prefix string) []string {
		t.Helper()
		var out []string
		for _, r := range must[[]Release](t)(s.ReleasesByPrefix(ctx, prefix, 10)) {
			out = append(out, r.ID)
		}
		return out
	}
	same(t, "abcd", got("abcd"), []string{"sha256:abcd1111", "sha256:abcd2222"})
	same(t, "abcd1", got("abcd1"), []string{"sha256:abcd1111"})
	same(t, "abce", got("abce"), []string{"sha256:abce3333"})
	same(t, "abcd1111 (whole)", got("abcd1111"), []string{"sha256:abcd1111"})
	same(t, "1234", got("1234"), []string(nil))
	if n := len(must[[]Release](t)(s.ReleasesByPrefix(ctx, "abcd", 1))); n != 1 {
		t.Errorf("limit 1 gave %d releases", n)
	}
	for _, bad := range []string{"abc", "ABCD", "abc%", "ab_d", "", "sha256:abcd"} {
		if _, err := s.ReleasesByPrefix(ctx, bad, 10); err == nil {
			t.Errorf("ReleasesByPrefix(%q) took what is not a hex prefix", bad)
		}
	}
}

func TestBuildsByPrefix(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	check(t, s.PutBuilds(ctx, []Build{
		{Source: "demo", Commit: "c1", Function: "hello", Key: "k1", Image: "reg/hello@sha256:aaaa1111"},
		{Source: "demo", Commit: "c2", Function: "hello", Key: "k2", Image: "reg/hello@sha256:aaaa2222"},
		{Source: "demo", Commit: "c2", Function: "other", Key: "k3", Image: "reg/other@sha256:aaaa3333"},
		{Source: "shop", Commit: "c1", Function: "hello", Key: "k4", Image: "reg/hello@sha256:aaaa4444"},
	}))
	got := func(prefix string) []string {
		t.Helper()
		var out []string
		for _, b := range must[[]Build](t)(s.BuildsByPrefix(ctx, "demo", "hello", prefix, 10)) {
			out = append(out, b.Image)
		}
		return out
	}
	if g := got("aaaa"); len(g) != 2 {
		t.Errorf("aaaa: %v, want demo's two builds of hello only", g)
	}
	same(t, "aaaa2", got("aaaa2"), []string{"reg/hello@sha256:aaaa2222"})
	same(t, "aaaa3 (another function)", got("aaaa3"), []string(nil))
	same(t, "aaaa4 (another source)", got("aaaa4"), []string(nil))
	// A function unchanged over many commits has many builds of one image:
	// an older image the prefix names too is still found.
	var same100 []Build
	for i := range 20 {
		same100 = append(same100, Build{Source: "demo", Commit: fmt.Sprintf("n%02d", i), Function: "hello", Key: "k5", Image: "reg/hello@sha256:aaaa2222", At: time.Now().Add(time.Duration(i+1) * time.Hour)})
	}
	check(t, s.PutBuilds(ctx, same100))
	var images []string
	for _, b := range must[[]Build](t)(s.BuildsByPrefix(ctx, "demo", "hello", "aaaa", 2)) {
		images = append(images, b.Image+" "+b.Commit)
	}
	same(t, "aaaa after 20 builds of one image, limit 2", images, []string{"reg/hello@sha256:aaaa2222 n19", "reg/hello@sha256:aaaa1111 c1"})
	if _, err := s.BuildsByPrefix(ctx, "demo", "hello", "aa%_", 10); err == nil {
		t.Error("BuildsByPrefix took a pattern")
	}
	if escapeLike(`a%b_c\`) != `a\%b\_c\\` {
		t.Errorf("escapeLike = %q", escapeLike(`a%b_c\`))
	}
}

func ignore2[A, B any](_ A, _ B, err error) error { return err }
