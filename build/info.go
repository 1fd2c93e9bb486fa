package build

import (
	"context"
	"fmt"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// LocalInfo describes a folder built from the command line: when it is a
// Git work tree, its HEAD commit and that commit's time, and the URL of
// its origin remote; a tree with uncommitted changes gets "-dirty" after
// the commit, since its content is not that commit's. A folder that is
// not in Git, or a repository without a commit, has no revision and builds
// at time zero. Git failing for another reason (an unsafe owner, a broken
// repository) is an error: a build silently without its revision would
// look like one of an unversioned folder.
func LocalInfo(ctx context.Context, dir string) (Info, error) {
	if _, err := exec.LookPath("git"); err != nil {
		return Info{}, nil
	}
	git := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("git %s in %s: %w: %s", strings.Join(args, " "), dir, err, strings.TrimSpace(stderr.String()))
		}
		return strings.TrimSpace(string(out)), nil
	}
	if _, err := git("rev-parse", "--is-inside-work-tree"); err != nil {
		if strings.Contains(err.Error(), "not a git repository") {
			return Info{}, nil
		}
		return Info{}, fmt.Errorf("%w; fix the repository (for an unsafe owner: git config --global --add safe.directory DIR) so the build can record its commit", err)
	}
	head, err := git("rev-parse", "--verify", "--quiet", "HEAD")
	if err != nil || head == "" {
		return Info{}, nil // no commit yet
	}
	info := Info{Revision: head}
	ct, err := git("log", "-1", "--format=%ct", "HEAD")
	if err != nil {
		return Info{}, err
	}
	n, err := strconv.ParseInt(ct, 10, 64)
	if err != nil {
		return Info{}, fmt.Errorf("reading the commit time of %s: %q", dir, ct)
	}
	info.Time = time.Unix(n, 0).UTC()
	status, err := git("status", "--porcelain", "--untracked-files=normal", "--", ".")
	if err != nil {
		return Info{}, err
	}
	if status != "" {
		info.Revision += "-dirty"
	}
	if u, err := git("config", "--get", "remote.origin.url"); err == nil {
		info.SourceURL = withoutCredentials(u)
	}
	return info, nil
}

// withoutCredentials drops the user and password of a URL: a token in a
// remote's URL must not end up in an image anyone can pull.
func withoutCredentials(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		// Not a URL Go can parse (a password with a stray %): drop
		// whatever stands between the scheme and an @ by hand.
		if scheme, rest, ok := strings.Cut(s, "://"); ok {
			if at := strings.LastIndex(rest, "@"); at >= 0 {
				return scheme + "://" + rest[at+1:]
			}
		}
		return s
	}
	if u.User == nil || u.Scheme == "" {
		return s
	}
	u.User = nil
	return u.String()
}
