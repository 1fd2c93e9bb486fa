package store

import (
	"math"
	"testing"
)

// A preview's name maps back to exactly one source and request: no two
// (source, number) share it, and odd numbers name none.
func TestPreviewNameIsOneToOne(t *testing.T) {
	sources := []string{"app", "1-app", "2-app", "app-1", "pr-1-app", "a"}
	numbers := []int{1, 2, 12, 21, math.MaxInt}
	seen := map[string][2]any{}
	for _, s := range sources {
		for _, n := range numbers {
			name := PreviewName(s, n)
			if prev, dup := seen[name]; dup {
				t.Errorf("%s is the preview of both %v and [%s %d]", name, prev, s, n)
			}
			seen[name] = [2]any{s, n}
			if gs, gn, ok := ParsePreviewName(name); !ok || gs != s || gn != n {
				t.Errorf("ParsePreviewName(%s) = %s %d %v; want %s %d", name, gs, gn, ok, s, n)
			}
		}
	}
	for _, name := range []string{"pr-0-app", "pr--1-app", "pr-01-app", "pr-1-", "pr-9223372036854775808-app", "pr-+1-app", "pr-1"} {
		if s, n, ok := ParsePreviewName(name); ok {
			t.Errorf("%s parses as %s %d; want no preview", name, s, n)
		}
	}
}
