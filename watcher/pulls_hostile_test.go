package watcher

import (
	"strconv"
	"testing"
)

// Ref names are the remote's to choose: only refs/pull/N/head and
// refs/merge-requests/N/head with N a positive int in its one spelling
// are a request's head; anything else names no request (and no two refs
// name the same one).
func TestParsePullRefRefusesOddNames(t *testing.T) {
	huge := "9223372036854775808" // one past the largest int64
	for _, name := range []string{
		"refs/pull/01/head", "refs/pull/0/head", "refs/pull/-1/head", "refs/pull/+1/head",
		"refs/pull/1/head/x", "refs/pull/1/x/head", "refs/pull//head", "refs/pull/1 /head",
		"refs/pull/" + huge + "/head", "refs/pull/1e3/head", "refs/pull/0x1/head", "refs/pull/1/merge",
		"refs/merge-requests/007/head", "refs/heads/pull/1/head", "refs/pull/١/head", // an Arabic-Indic one
	} {
		if n, ok := parsePullRef(name); ok {
			t.Errorf("%s names request %d; want none", name, n)
		}
	}
	for _, n := range []int{1, 42, 1<<31 - 1, 1<<63 - 1} {
		name := "refs/pull/" + strconv.Itoa(n) + "/head"
		if got, ok := parsePullRef(name); !ok || got != n {
			t.Errorf("%s: %d %v; want %d", name, got, ok, n)
		}
	}
}
