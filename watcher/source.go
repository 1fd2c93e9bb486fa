package watcher

import (
	"fmt"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"

	"github.com/ferrycd/ferry/internal/gitauth"
	"github.com/ferrycd/ferry/store"
)

// validName reports whether name is a DNS label, as the API requires of
// source names; it also makes a safe folder name for the mirror.
func validName(name string) bool {
	if name == "" || len(name) > 63 || name[0] < 'a' || name[0] > 'z' || name[len(name)-1] == '-' {
		return false
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// Check reports what Add would refuse in src, without adding it: a
// caller that records the source first checks it here, so that it records
// nothing the watcher then refuses. The error says what to change.
func Check(src store.Source) error {
	_, err := checkSource(src)
	return err
}

// checkSource checks src and returns how to reach its repository. The
// error says what to change.
func checkSource(src store.Source) (*gitauth.Remote, error) {
	if !validName(src.Name) {
		return nil, fmt.Errorf("source name %q: use lower-case letters, digits and '-', starting with a letter, at most 63", src.Name)
	}
	if src.Interval <= 0 {
		return nil, fmt.Errorf("source %s: the poll interval must be positive, not %v; give one such as 1m", src.Name, src.Interval)
	}
	if src.Timeout < 0 {
		return nil, fmt.Errorf("source %s: the timeout must not be negative, not %v; give one such as 60s (0 is the default)", src.Name, src.Timeout)
	}
	if err := checkBranch(src.Branch); err != nil {
		return nil, fmt.Errorf("source %s: %w", src.Name, err)
	}
	creds := gitauth.Credentials{Username: src.Username, Password: src.Password, SSHKey: src.SSHKey}
	r, err := gitauth.Check(src.URL, creds, gitauth.Use{Holder: "the source"})
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", src.Name, err)
	}
	return r, nil
}

func checkBranch(b string) error {
	switch {
	case b == "":
		return fmt.Errorf("give the branch to watch, such as main")
	case strings.HasPrefix(b, "refs/"):
		return fmt.Errorf("branch %q: give the branch's name without refs/heads/, such as main", b)
	case strings.HasPrefix(b, "-") || plumbing.NewBranchReferenceName(b).Validate() != nil:
		return fmt.Errorf("branch %q is not a valid Git branch name", b)
	}
	return nil
}
