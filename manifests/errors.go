package manifests

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Pos is a place in a manifest file. Line and Column count from 1; zero
// means the position is not known (an error about the repository as a
// whole).
type Pos struct {
	File   string
	Line   int
	Column int
}

func (p Pos) String() string {
	switch {
	case p.File == "":
		return ""
	case p.Line == 0:
		return p.File
	default:
		return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Column)
	}
}

// Error is one problem found in a manifest, at a position, about a field.
type Error struct {
	Pos
	// Field is the path of the offending field ("spec.runtime"), or empty.
	Field string
	// Message says what is wrong and what to do.
	Message string
}

func (e *Error) Error() string {
	msg := e.Message
	if e.Field != "" {
		msg = e.Field + ": " + msg
	}
	if p := e.Pos.String(); p != "" {
		return p + ": " + msg
	}
	return msg
}

// ErrorList is every problem found by one load or validation, sorted by
// position. Load returns it as its error, so callers can list them all.
type ErrorList []*Error

func (l ErrorList) Error() string {
	lines := make([]string, len(l))
	for i, e := range l {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

func (l ErrorList) sort() {
	sort.SliceStable(l, func(i, j int) bool {
		a, b := l[i], l[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Column != b.Column {
			return a.Column < b.Column
		}
		return a.Field < b.Field
	})
}

// Errors returns every *Error inside err: the members of an ErrorList, or
// the single Error. It returns nil for an error that came from elsewhere
// (reading the file system, say).
func Errors(err error) []*Error {
	var list ErrorList
	if errors.As(err, &list) {
		return list
	}
	var one *Error
	if errors.As(err, &one) {
		return []*Error{one}
	}
	return nil
}

// errs collects errors during a load, capped so that a file full of
// mistakes cannot make the report itself huge.
type errs struct {
	list    ErrorList
	dropped int
}

// maxErrors caps a report: past a hundred, more lines help nobody.
const maxErrors = 100

func (c *errs) add(pos Pos, field, format string, args ...any) {
	if len(c.list) >= maxErrors {
		c.dropped++
		return
	}
	c.list = append(c.list, &Error{Pos: pos, Field: field, Message: fmt.Sprintf(format, args...)})
}

func (c *errs) err() error {
	if len(c.list) == 0 {
		return nil
	}
	c.list.sort()
	if c.dropped > 0 {
		last := c.list[len(c.list)-1]
		c.list = append(c.list, &Error{Pos: last.Pos, Message: fmt.Sprintf("%d more errors not shown; fix the ones above first", c.dropped)})
	}
	return c.list
}
