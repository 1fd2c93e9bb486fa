package server

import (
	"strings"
	"testing"
)

func TestUnifiedDiff(t *testing.T) {
	lines := func(n int, change map[int]string) string {
		var sb strings.Builder
		for i := 1; i <= n; i++ {
			if s, ok := change[i]; ok {
				sb.WriteString(s)
				continue
			}
			sb.WriteString("line " + string(rune('a'+i-1)) + "\n")
		}
		return sb.String()
	}
	a := lines(20, nil)
	for _, c := range []struct {
		name, b, want string
	}{
		{"same", a, ""},
		{"one line changed", lines(20, map[int]string{10: "ten\n"}), `--- a
+++ b
@@ -7,7 +7,7 @@
 line g
 line h
 line i
-line j
+ten
 line k
 line l
 line m
`},
		{"two hunks", lines(20, map[int]string{2: "", 19: "nineteen\n"}), `--- a
+++ b
@@ -1,5 +1,4 @@
 line a
-line b
 line c
 line d
 line e
@@ -16,5 +15,5 @@
 line p
 line q
 line r
-line s
+nineteen
 line t
`},
		{"one hunk for close changes", lines(20, map[int]string{5: "5\n", 10: "10\n"}), `--- a
+++ b
@@ -2,12 +2,12 @@
 line b
 line c
 line d
-line e
+5
 line f
 line g
 line h
 line i
-line j
+10
 line k
 line l
 line m
`},
		{"added at the end", a + "more\n", `--- a
+++ b
@@ -18,3 +18,4 @@
 line r
 line s
 line t
+more
`},
		{"from nothing", "", ""},
	} {
		if c.name == "from nothing" {
			got := unifiedDiff("a", "b", "", "x\n")
			if got != "--- a\n+++ b\n@@ -0,0 +1 @@\n+x\n" {
				t.Errorf("from nothing:\n%s", got)
			}
			continue
		}
		if got := unifiedDiff("a", "b", a, c.b); got != c.want {
			t.Errorf("%s:\n got:\n%s\nwant:\n%s", c.name, got, c.want)
		}
	}
	// No newline at the end is said, as diff does.
	if got := unifiedDiff("a", "b", "x\n", "x"); !strings.Contains(got, "\\ No newline at end of file") {
		t.Errorf("a missing last newline is not said:\n%s", got)
	}
	// Past the LCS bound, the middle is replaced whole: still a diff
	// that turns a into b.
	var big1, big2 strings.Builder
	for i := 0; i < 3000; i++ {
		big1.WriteString("a" + strings.Repeat("x", i%7) + "\n")
		big2.WriteString("b" + strings.Repeat("x", i%5) + "\n")
	}
	got := unifiedDiff("a", "b", big1.String(), big2.String())
	if strings.Count(got, "\n-") != 3000 || strings.Count(got, "\n+") != 3000+1 { // +1: the "+++" line
		t.Errorf("big diff: %d removed, %d added lines", strings.Count(got, "\n-"), strings.Count(got, "\n+"))
	}
}
