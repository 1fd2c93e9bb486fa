package server

import (
	"fmt"
	"strings"
)

// A unified diff of two texts, line by line, as `diff -u` prints it: what
// ferry diff shows of two releases' rendered manifests. The common head
// and tail are cut first (two releases of one repository differ in a few
// lines), and the rest is matched by a longest common subsequence, or,
// when that would take too much memory, replaced whole: the diff is then
// longer than it need be, never wrong.

// udiffContext is how many unchanged lines surround a change.
const udiffContext = 3

// udiffMaxCells bounds the LCS table (lines of one side × the other).
const udiffMaxCells = 4 << 20

type edit struct {
	op   byte // ' ', '-' or '+'
	line string
}

// unifiedDiff returns the diff from a to b with the file names from and
// to; "" when they are the same.
func unifiedDiff(from, to, a, b string) string {
	if a == b {
		return ""
	}
	edits := diffLines(splitLines(a), splitLines(b))
	var sb strings.Builder
	fmt.Fprintf(&sb, "--- %s\n+++ %s\n", from, to)
	for _, h := range hunks(edits) {
		sb.WriteString(h)
	}
	return sb.String()
}

func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	lines := strings.SplitAfter(s, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// diffLines is the edit script from a to b.
func diffLines(a, b []string) []edit {
	var head, tail int
	for head < len(a) && head < len(b) && a[head] == b[head] {
		head++
	}
	for tail < len(a)-head && tail < len(b)-head && a[len(a)-1-tail] == b[len(b)-1-tail] {
		tail++
	}
	var out []edit
	for _, l := range a[:head] {
		out = append(out, edit{' ', l})
	}
	out = append(out, middle(a[head:len(a)-tail], b[head:len(b)-tail])...)
	for _, l := range a[len(a)-tail:] {
		out = append(out, edit{' ', l})
	}
	return out
}

// middle matches what differs by a longest common subsequence.
func middle(a, b []string) []edit {
	var out []edit
	if len(a)*len(b) > udiffMaxCells {
		for _, l := range a {
			out = append(out, edit{'-', l})
		}
		for _, l := range b {
			out = append(out, edit{'+', l})
		}
		return out
	}
	// lcs[i][j] is the LCS length of a[i:] and b[j:].
	w := len(b) + 1
	lcs := make([]int32, (len(a)+1)*w)
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i*w+j] = lcs[(i+1)*w+j+1] + 1
			} else {
				lcs[i*w+j] = max(lcs[(i+1)*w+j], lcs[i*w+j+1])
			}
		}
	}
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i] == b[j]:
			out = append(out, edit{' ', a[i]})
			i, j = i+1, j+1
		case lcs[(i+1)*w+j] >= lcs[i*w+j+1]:
			out = append(out, edit{'-', a[i]})
			i++
		default:
			out = append(out, edit{'+', b[j]})
			j++
		}
	}
	for ; i < len(a); i++ {
		out = append(out, edit{'-', a[i]})
	}
	for ; j < len(b); j++ {
		out = append(out, edit{'+', b[j]})
	}
	return out
}

// hunks groups the edits into hunks with udiffContext lines around each
// change; changes closer than twice that share a hunk.
func hunks(edits []edit) []string {
	var out []string
	for start := 0; start < len(edits); {
		first := start
		for first < len(edits) && edits[first].op == ' ' {
			first++
		}
		if first == len(edits) {
			break
		}
		// the hunk ends after the last change followed by fewer than
		// 2×context unchanged lines before the next change.
		end := first
		for k := first; k < len(edits); k++ {
			if edits[k].op != ' ' {
				end = k + 1
				continue
			}
			if k-end >= 2*udiffContext {
				break
			}
		}
		lo := max(first-udiffContext, start)
		hi := min(end+udiffContext, len(edits))
		out = append(out, hunk(edits, lo, hi))
		start = hi
	}
	return out
}

// hunk prints edits[lo:hi] with its header; line numbers count from the
// start of edits.
func hunk(edits []edit, lo, hi int) string {
	aLine, bLine := 1, 1
	for _, e := range edits[:lo] {
		if e.op != '+' {
			aLine++
		}
		if e.op != '-' {
			bLine++
		}
	}
	var aN, bN int
	var body strings.Builder
	for _, e := range edits[lo:hi] {
		if e.op != '+' {
			aN++
		}
		if e.op != '-' {
			bN++
		}
		body.WriteByte(e.op)
		body.WriteString(e.line)
		if !strings.HasSuffix(e.line, "\n") {
			body.WriteString("\n\\ No newline at end of file\n")
		}
	}
	return fmt.Sprintf("@@ -%s +%s @@\n%s", hunkRange(aLine, aN), hunkRange(bLine, bN), body.String())
}

// hunkRange is "start,count", as diff -u writes it: an empty side starts
// at the line before it.
func hunkRange(start, n int) string {
	if n == 0 {
		return fmt.Sprintf("%d,0", start-1)
	}
	if n == 1 {
		return fmt.Sprintf("%d", start)
	}
	return fmt.Sprintf("%d,%d", start, n)
}
