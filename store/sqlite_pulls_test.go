package store

import "testing"

func TestPullHeads(t *testing.T) {
	s, path := openTest(t)
	ctx := t.Context()
	check(t, s.AddSource(ctx, Source{Name: "app"}))
	check(t, s.AddSource(ctx, Source{Name: "other"}))
	heads, base, err := s.PullHeads(ctx, "app")
	check(t, err)
	if len(heads) != 0 || base {
		t.Fatalf("a new source has requests %v, baseline %v; want none and false", heads, base)
	}

	check(t, s.BaselinePulls(ctx, "app", map[int]string{1: "c1", 2: "c2"}))
	check(t, s.SetPullHead(ctx, "app", 2, "c2b"))
	check(t, s.SetPullHead(ctx, "app", 3, "c3"))
	check(t, s.SetPullHead(ctx, "app", 1, ""))
	check(t, s.SetPullHead(ctx, "other", 9, "c9"))

	// What was recorded is there after reopening.
	s = reopen(t, s, path)
	heads, base, err = s.PullHeads(ctx, "app")
	check(t, err)
	same(t, "requests of app", heads, map[int]string{2: "c2b", 3: "c3"})
	if !base {
		t.Error("the baseline of app was lost")
	}
	heads, base, err = s.PullHeads(ctx, "other")
	check(t, err)
	same(t, "requests of other", heads, map[int]string{9: "c9"})
	if base {
		t.Error("other has a baseline it never took")
	}

	// A baseline replaces what was there.
	check(t, s.BaselinePulls(ctx, "app", map[int]string{7: "c7"}))
	heads, _, err = s.PullHeads(ctx, "app")
	check(t, err)
	same(t, "requests of app after a new baseline", heads, map[int]string{7: "c7"})

	check(t, s.ForgetPulls(ctx, "app"))
	heads, base, err = s.PullHeads(ctx, "app")
	check(t, err)
	if len(heads) != 0 || base {
		t.Errorf("after ForgetPulls: %v, baseline %v; want none and false", heads, base)
	}

	// Deleting a source takes its requests.
	check(t, s.DeleteSource(ctx, "other"))
	heads, _, err = s.PullHeads(ctx, "other")
	check(t, err)
	if len(heads) != 0 {
		t.Errorf("a deleted source kept its requests: %v", heads)
	}
}
