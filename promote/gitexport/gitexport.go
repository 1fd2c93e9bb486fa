package gitexport

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"

	"github.com/ferrycd/ferry/internal/gitauth"
	"github.com/ferrycd/ferry/promote"
	"github.com/ferrycd/ferry/store"
)

var _ promote.Exporter = (*Exporter)(nil)

// Defaults for Config.
const (
	// defaultBranch is what git init -b main and the big Git hosts name a
	// new repository's branch.
	defaultBranch = "main"
	// defaultPath gives each environment a folder of its own, the layout
	// Flux's and Argo CD's examples use, so that one Kustomization or
	// Application points at one environment.
	defaultPath = "environments/{env}/ferry.yaml"
	// defaultAuthor and defaultEmail name ferry as the commits' author;
	// the deployment's actor is in the message, where a person reads it,
	// not in the author, which the Git host may match to an account.
	defaultAuthor = "ferry"
	defaultEmail  = "ferry@localhost"
	// defaultAttempts pushes: with a first backoff of 100 ms doubling, a
	// writer that keeps losing gives up after about 1.5 s of waiting,
	// enough for a handful of writers racing on one branch to all land.
	defaultAttempts = 5
)

const (
	// firstBackoff is about one push round trip: waiting less would
	// mostly lose to the same writer again.
	firstBackoff = 100 * time.Millisecond
	// maxBackoff caps the doubling for a large Config.Attempts.
	maxBackoff = 2 * time.Second
	// exportTimeout bounds an export whose context has no earlier
	// deadline: a server that hangs must not hold the lock, and with it
	// every later export, forever.
	exportTimeout = 2 * time.Minute
	// envPlaceholder is what Config.Path's template replaces with the
	// environment's name.
	envPlaceholder = "{env}"
)

// Config sets up an Exporter.
type Config struct {
	// URL is the repository: https:// (http:// only to this machine),
	// ssh:// or user@host:path, file:// or a local path.
	URL string
	// Branch is the branch to commit to; default main.
	Branch string
	// Path is where an environment's file goes, {env} standing for its
	// name; default environments/{env}/ferry.yaml.
	Path string
	// Username and Password authenticate over HTTPS (a token as the
	// password; the username defaults to "git"). Over SSH the Password
	// decrypts an encrypted SSHKey.
	Username, Password string
	// SSHKey is a PEM private key, for ssh:// URLs; its public key needs
	// write access (a deploy key that may push).
	SSHKey string
	// KnownHosts is the file that pins SSH host keys (trust on first
	// use, refuse changes); default Dir/known_hosts.
	KnownHosts string
	// Dir is the exporter's folder, made when missing: the clone lives in
	// Dir/repo.git. Required; ferry gives it a folder in its data folder.
	Dir string
	// Author is the commits' author, "Name" or "Name <email>"; default
	// "ferry", with email ferry@localhost.
	Author string
	// Attempts is how many times a push refused because the branch moved
	// is tried; default 5.
	Attempts int
	// Log hears retries and what each export did; default silent.
	Log func(format string, args ...any)
}

// Exporter commits deployments to a Git repository; see the package
// documentation. Its methods are safe to call from several goroutines:
// exports run one at a time.
type Exporter struct {
	cfg         Config
	rem         *gitauth.Remote
	hostKeys    *gitauth.HostKeys
	repoDir     string
	authorName  string
	authorEmail string

	mu sync.Mutex
	// repo is the open clone, kept between exports so that its pack
	// indexes are read once; nil until the first export, and again after
	// an export failed other than by losing a race, so that the next one
	// opens it afresh.
	repo *git.Repository

	// beforePush, when set (tests), runs after an attempt built its
	// commit and before it pushes.
	beforePush func(attempt int)
}

// New checks cfg and returns its Exporter. It does not reach the
// repository: the first Export does.
func New(cfg Config) (*Exporter, error) {
	if cfg.Branch == "" {
		cfg.Branch = defaultBranch
	}
	if cfg.Path == "" {
		cfg.Path = defaultPath
	}
	if cfg.Attempts == 0 {
		cfg.Attempts = defaultAttempts
	}
	if cfg.Log == nil {
		cfg.Log = func(string, ...any) {}
	}
	if cfg.Dir == "" {
		return nil, errors.New("gitexport: give the exporter a folder (Dir) for its clone, such as a folder in ferry's data folder")
	}
	if cfg.Attempts < 0 {
		return nil, fmt.Errorf("gitexport: attempts must be positive, not %d", cfg.Attempts)
	}
	if err := checkBranch(cfg.Branch); err != nil {
		return nil, fmt.Errorf("gitexport: %w", err)
	}
	if err := checkTemplate(cfg.Path); err != nil {
		return nil, fmt.Errorf("gitexport: %w", err)
	}
	creds := gitauth.Credentials{Username: cfg.Username, Password: cfg.Password, SSHKey: cfg.SSHKey}
	rem, err := gitauth.Check(cfg.URL, creds, gitauth.Use{Push: true, Holder: "the exporter"})
	if err != nil {
		return nil, fmt.Errorf("gitexport: %w", err)
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("gitexport: folder %s: %w", cfg.Dir, err)
	}
	cfg.Dir = dir
	if cfg.KnownHosts == "" {
		cfg.KnownHosts = filepath.Join(dir, "known_hosts")
	}
	name, email := parseAuthor(cfg.Author)
	logHostKey := func(format string, args ...any) { cfg.Log("gitexport: "+format, args...) }
	return &Exporter{
		cfg:         cfg,
		rem:         rem,
		hostKeys:    gitauth.NewHostKeys(cfg.KnownHosts, logHostKey),
		repoDir:     filepath.Join(dir, "repo.git"),
		authorName:  name,
		authorEmail: email,
	}, nil
}

// Export commits rel, the release deployment d made live, to d's
// environment's file and pushes it; see the package documentation.
func (e *Exporter) Export(ctx context.Context, d store.Deployment, rel store.Release) error {
	if d.Status != "" && d.Status != "succeeded" {
		// The environment still runs the release before, which the
		// file names already.
		e.cfg.Log("gitexport: not exporting deployment %d to %s: its status is %s, not succeeded", d.ID, d.Environment, d.Status)
		return nil
	}
	if d.Release != "" && rel.ID != d.Release {
		return fmt.Errorf("gitexport: deployment %d to %s is of release %s, but release %s was given; pass the deployment's release", d.ID, d.Environment, d.Release, rel.ID)
	}
	if len(rel.Manifest) == 0 {
		return fmt.Errorf("gitexport: release %s has no rendered manifest to export to %s; pass the release as the store holds it", rel.ID, d.Environment)
	}
	path, err := envPath(e.cfg.Path, d.Environment)
	if err != nil {
		return fmt.Errorf("gitexport: %w", err)
	}
	ch := change{
		env:     d.Environment,
		path:    path,
		content: fileContent(d, rel),
		message: commitMessage(d, rel),
		when:    d.At,
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, exportTimeout)
	defer cancel()
	for attempt := 1; ; attempt++ {
		commit, err := e.attempt(ctx, ch, attempt)
		if err == nil {
			if commit.IsZero() {
				e.cfg.Log("gitexport: %s already holds release %s for %s; nothing to commit", e.where(path), rel.ID, ch.env)
			} else {
				e.cfg.Log("gitexport: committed release %s for %s to %s as %s", rel.ID, ch.env, e.where(path), commit)
			}
			return nil
		}
		if !errors.Is(err, errRejected) {
			e.repo = nil
			return e.explain(ctx, ch, err)
		}
		if attempt >= e.cfg.Attempts {
			return &exportError{
				env: ch.env, url: e.rem.URL(), branch: e.cfg.Branch, path: path,
				reason: fmt.Sprintf("gave up after %d pushes, each refused because branch %s had moved: other writers keep pushing to it", attempt, e.cfg.Branch),
				advice: "export again later; if another system commits to the branch all the time, give ferry a branch of its own",
				err:    err,
			}
		}
		wait := backoff(attempt)
		e.cfg.Log("gitexport: the push of %s's release to %s was refused because branch %s moved (another writer pushed first); fetching and trying again in %v (attempt %d of %d)",
			ch.env, e.rem.URL(), e.cfg.Branch, wait.Round(time.Millisecond), attempt+1, e.cfg.Attempts)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return e.explain(ctx, ch, ctx.Err())
		case <-t.C:
		}
	}
}

// where names the file in the repository, for messages.
func (e *Exporter) where(path string) string {
	return fmt.Sprintf("%s (%s on branch %s)", e.rem.URL(), path, e.cfg.Branch)
}

// attempt fetches the branch, commits the change on top of it and pushes.
// It returns the commit pushed, the zero hash when the branch holds the
// file already, and an error wrapping errRejected when the push lost to
// another writer.
func (e *Exporter) attempt(ctx context.Context, ch change, n int) (plumbing.Hash, error) {
	repo, err := e.open()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	auth, err := e.rem.Auth(e.hostKeys)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	base, err := e.fetch(ctx, repo, auth)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	now := time.Now()
	when := ch.when
	if when.IsZero() {
		when = now
	}
	commit, err := buildCommit(repo.Storer, base, ch,
		signature(e.authorName, e.authorEmail, when), signature(e.authorName, e.authorEmail, now))
	if err != nil || commit.IsZero() {
		return plumbing.ZeroHash, err
	}
	if e.beforePush != nil {
		e.beforePush(n)
	}
	if err := e.push(ctx, repo, auth, commit); err != nil {
		return plumbing.ZeroHash, err
	}
	return commit, nil
}

// backoff is how long to wait before push attempt+1: firstBackoff
// doubling, jittered by ±50 % so that writers that lost together do not
// try again together.
func backoff(attempt int) time.Duration {
	d := maxBackoff
	if attempt < 8 {
		d = min(firstBackoff<<(attempt-1), maxBackoff)
	}
	return d/2 + rand.N(d)
}

// checkBranch checks the name of the branch to commit to.
func checkBranch(b string) error {
	switch {
	case strings.HasPrefix(b, "refs/"):
		return fmt.Errorf("branch %q: give the branch's name without refs/heads/, such as main", b)
	case strings.HasPrefix(b, "-") || plumbing.NewBranchReferenceName(b).Validate() != nil:
		return fmt.Errorf("branch %q is not a valid Git branch name", b)
	}
	return nil
}

// parseAuthor splits "Name <email>"; a bare name gets defaultEmail.
func parseAuthor(s string) (name, email string) {
	s = oneLine(s)
	name, email = s, defaultEmail
	if i := strings.LastIndex(s, "<"); i >= 0 && strings.HasSuffix(s, ">") {
		name, email = strings.TrimSpace(s[:i]), strings.TrimSpace(s[i+1:len(s)-1])
	}
	if name == "" {
		name = defaultAuthor
	}
	if email == "" {
		email = defaultEmail
	}
	return name, email
}
