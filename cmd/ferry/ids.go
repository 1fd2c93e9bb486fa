package main

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/ferrycd/ferry/server"
	"github.com/ferrycd/ferry/store"
)

// idFor is a release, image or commit id as the tables print it: its
// first 12 hex characters, which every command that takes one accepts;
// -o wide (wide) prints it whole.
func idFor(id string, wide bool) string {
	if wide {
		return id
	}
	return store.Short(id)
}

// imageFor is an image reference as the tables print it: its digest's
// first 12 hex characters, or the whole reference with -o wide.
func imageFor(ref string, wide bool) string {
	if wide {
		return ref
	}
	return shortImage(ref)
}

// tableWidth is the widest line a table prints without -o wide, as
// ferry status: what a terminal beside an editor shows.
const tableWidth = statusWidth

// fitLast shortens the last column's cells (a reason, which may be any
// length) so that rows fit in width, then the widest columns if that was
// not enough.
func fitLast(rows [][]string, width, gap int) {
	widths := columnWidths(rows)
	if len(widths) == 0 {
		return
	}
	used := gap * (len(widths) - 1)
	for _, w := range widths[:len(widths)-1] {
		used += w
	}
	last := max(width-used, minColumn)
	for _, row := range rows {
		if len(row) == len(widths) {
			row[len(row)-1] = truncate(row[len(row)-1], last)
		}
	}
	fitColumns(rows, width, gap)
}

// firstLine is s up to its first newline.
func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}

// approvalsCell says how far a promotion is with its approvals: "0/2",
// "1/2 (bob)"; "-" when it takes none. A rejection ends a promotion, and
// its REASON says who rejected it.
func approvalsCell(p server.PromotionView) string {
	var yes []string
	for _, a := range p.Approvals {
		if a.Approve && !slices.Contains(yes, a.Actor) {
			yes = append(yes, a.Actor)
		}
	}
	var s string
	switch {
	case p.Required > 0:
		s = fmt.Sprintf("%d/%d", len(yes), p.Required)
	case len(yes) > 0:
		s = fmt.Sprint(len(yes))
	default:
		return "-"
	}
	if len(yes) > 0 {
		s += " (" + strings.Join(yes, ", ") + ")"
	}
	return s
}

// rowsTo writes rows as aligned columns, fitted to tableWidth with the
// last column shortened unless wide.
func rowsTo(w io.Writer, rows [][]string, wide bool) {
	if !wide {
		fitLast(rows, tableWidth, 2)
	}
	var sb strings.Builder
	writeColumns(&sb, rows, 2)
	io.WriteString(w, sb.String())
}
