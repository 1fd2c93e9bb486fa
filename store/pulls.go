package store

import (
	"fmt"
	"strconv"
	"strings"
)

// PullAction is what happened to a pull (merge) request.
type PullAction string

// The actions ferry acts on.
const (
	PullOpened  PullAction = "opened"  // opened or reopened
	PullUpdated PullAction = "updated" // its head moved (a push)
	PullClosed  PullAction = "closed"  // closed or merged
	PullLabeled PullAction = "labeled" // a label was added
)

// PullEvent is a change of a pull request (GitHub) or merge request
// (GitLab) of a source: seen by the watcher polling refs/pull/N/head or
// refs/merge-requests/N/head on the source's mirror, or told by a signed
// webhook. The commit always comes from Git, never from a payload.
type PullEvent struct {
	Source string
	Number int
	Action PullAction
	// Commit is the request's head as fetched into the mirror; "" until
	// fetched, and for a closed request.
	Commit string
	// The fields below come from a signed webhook; a polled change has
	// FromWebhook false and leaves them empty.
	FromWebhook bool
	// Fork: the head is in another repository than the base.
	Fork bool
	// Author opened the request; Sender did this action (pushed,
	// labelled, closed).
	Author string
	Sender string
	// Label is the label added (PullLabeled).
	Label string
	// LabeledHead is the head commit the payload says the request had
	// when it was labelled (PullLabeled). It is never built: it only
	// keeps a label from approving a head pushed after the labeller
	// looked (the commit built still comes from Git).
	LabeledHead string
	Title       string
	// WebURL is the request's page, for people.
	WebURL string
}

// PreviewName is the environment of source's pull request number: pr-N-SOURCE,
// so that two sources' previews never share a name.
func PreviewName(source string, number int) string {
	return fmt.Sprintf("pr-%d-%s", number, source)
}

// ParsePreviewName reports the source and number of a preview
// environment's name (ok false for any other name).
func ParsePreviewName(env string) (source string, number int, ok bool) {
	rest, found := strings.CutPrefix(env, "pr-")
	if !found {
		return "", 0, false
	}
	num, source, found := strings.Cut(rest, "-")
	if !found || source == "" {
		return "", 0, false
	}
	n, ok := PullNumber(num)
	if !ok {
		return "", 0, false
	}
	return source, n, true
}

// PullNumber reads a request's number as hosts write it in names and
// refs: positive, decimal, without leading zeros (so that one request has
// one name).
func PullNumber(s string) (int, bool) {
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 || strconv.Itoa(n) != s {
		return 0, false
	}
	return n, true
}
