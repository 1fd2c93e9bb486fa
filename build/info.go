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
// not in Git has no revision and builds at time zero.
func LocalInfo(ctx context.Context, dir string) (Info, error) {
	git := func(args ...string) (string, bool) {
		cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
		out, err := cmd.Output()
		return strings.TrimSpace(string(out)), err == nil
	}
	if _, err := exec.LookPath("git"); err != nil {
		return Info{}, nil
	}
	head, ok := git("rev-parse", "--verify", "--quiet", "HEAD")
	if !ok || head == "" {
		return Info{}, nil
	}
	info := Info{Revision: head}
	if ct, ok := git("log", "-1", "--format=%ct", "HEAD"); ok {
		n, err := strconv.ParseInt(ct, 10, 64)
		if err != nil {
			return Info{}, fmt.Errorf("reading the commit time of %s: %q", dir, ct)
		}
		info.Time = time.Unix(n, 0).UTC()
	}
	if status, ok := git("status", "--porcelain", "--untracked-files=normal", "--", "."); ok && status != "" {
		info.Revision += "-dirty"
	}
	if u, ok := git("config", "--get", "remote.origin.url"); ok {
		info.SourceURL = withoutCredentials(u)
	}
	return info, nil
}

// withoutCredentials drops the user and password of a URL: a token in a
// remote's URL must not end up in an image anyone can pull.
func withoutCredentials(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil || u.Scheme == "" {
		return s
	}
	u.User = nil
	return u.String()
}
