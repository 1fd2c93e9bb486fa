package saysonce

import (
	"strings"
	"testing"
)

// Repeat returns what msg says twice in a row: a segment between ": "
// repeated ("X: X: …"), a segment that starts with the one before it
// ("function hello: function hello exited"), two short prefixes that end
// in the same name ("fetching demo: source demo: …"), or a word right after itself
// ("hello hello"). It returns "" when msg says each thing once.
func Repeat(msg string) string {
	for _, line := range strings.Split(msg, "\n") {
		segs := strings.Split(line, ": ")
		for i := 1; i < len(segs); i++ {
			prev, cur := strings.TrimSpace(segs[i-1]), strings.TrimSpace(segs[i])
			if prev == "" {
				continue
			}
			if cur == prev || strings.Contains(prev, " ") && strings.HasPrefix(cur, prev+" ") {
				return prev
			}
			// "fetching demo: source demo: …": two short prefixes, one name.
			pw, cw := strings.Fields(prev), strings.Fields(cur)
			if len(pw) <= 3 && len(cw) <= 3 && len(cw) > 1 && i+1 < len(segs) && pw[len(pw)-1] == cw[len(cw)-1] {
				return pw[len(pw)-1]
			}
		}
		words := strings.Fields(line)
		for i := 1; i < len(words); i++ {
			w := strings.Trim(words[i], ",;:()")
			if len(w) > 1 && w == strings.Trim(words[i-1], ",;:()") && !isNumber(w) {
				return w + " " + w
			}
		}
	}
	return ""
}

func isNumber(s string) bool {
	return strings.Trim(s, "0123456789.") == ""
}

// Check fails t when msg says something twice in a row.
func Check(t testing.TB, what, msg string) {
	t.Helper()
	if r := Repeat(msg); r != "" {
		t.Errorf("%s says %q twice in a row:\n%s", what, r, msg)
	}
}
