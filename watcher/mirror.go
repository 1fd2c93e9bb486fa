package watcher

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/filesystem"

	"github.com/ferrycd/ferry/internal/gitauth"
)

// mirrorCache bounds the object cache of an open mirror. A mirror stays
// open between fetches (so that its pack indexes are read once), and with
// hundreds of sources go-git's default of 96 MiB each would add up; a
// fetch that finds nothing new reads no object at all.
const mirrorCache = 8 * cache.MiByte

// originName is the mirror's one remote. Its URL and refspec record what
// was last fetched: the refspec's branch tells, after a restart, whether
// the source's branch changed.
const originName = "origin"

// mirrorPath is where the source's bare mirror lives.
func (w *watcher) mirrorPath(name string) string {
	return filepath.Join(w.cfg.Dir, name+".git")
}

// refSpec fetches only the watched branch, forced so that a force-push
// lands, into the same name: the mirror holds the branch as the remote has
// it.
func refSpec(branch string) config.RefSpec {
	ref := plumbing.NewBranchReferenceName(branch)
	return config.RefSpec("+" + ref.String() + ":" + ref.String())
}

// openMirror opens the bare mirror in dir, creating it when missing (or
// left half-made by a crash), with a remote for url and branch.
func openMirror(dir, url, branch string) (*git.Repository, error) {
	repo, err := openRepo(dir, mirrorCache)
	if err == nil {
		return repo, nil
	}
	if !errors.Is(err, git.ErrRepositoryNotExists) {
		return nil, fmt.Errorf("opening the mirror %s: %w; delete the folder and ferry makes it again", dir, err)
	}
	// Made aside and renamed, so that a crash never leaves a mirror
	// without its remote.
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+"-")
	if err != nil {
		return nil, fmt.Errorf("creating the mirror %s: %w", dir, err)
	}
	defer os.RemoveAll(tmp)
	r, err := git.PlainInit(tmp, true)
	if err == nil {
		_, err = r.CreateRemote(&config.RemoteConfig{Name: originName, URLs: []string{url}, Fetch: []config.RefSpec{refSpec(branch)}})
	}
	if err == nil {
		err = r.Storer.SetReference(plumbing.NewSymbolicReference(plumbing.HEAD, plumbing.NewBranchReferenceName(branch)))
	}
	if err == nil {
		if err = os.RemoveAll(dir); err == nil {
			err = os.Rename(tmp, dir)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("creating the mirror %s: %w", dir, err)
	}
	return openRepo(dir, mirrorCache)
}

// openRepo opens the bare repository in dir with an object cache of
// cacheSize bytes.
func openRepo(dir string, cacheSize cache.FileSize) (*git.Repository, error) {
	if _, err := os.Stat(dir); err != nil {
		if os.IsNotExist(err) {
			return nil, git.ErrRepositoryNotExists
		}
		return nil, err
	}
	st := filesystem.NewStorage(osfs.New(dir), cache.NewObjectLRU(cacheSize))
	return git.Open(st, nil)
}

// mirroredRemote is the URL and branch the mirror's remote fetches, ""
// when it cannot tell.
func mirroredRemote(repo *git.Repository) (url, branch string) {
	cfg, err := repo.Config()
	if err != nil {
		return "", ""
	}
	rc := cfg.Remotes[originName]
	if rc == nil || len(rc.URLs) != 1 || len(rc.Fetch) != 1 {
		return "", ""
	}
	return rc.URLs[0], strings.TrimPrefix(rc.Fetch[0].Dst("").String(), "refs/heads/")
}

// setRemote records url and branch as the mirror's remote.
func setRemote(repo *git.Repository, url, branch string) error {
	cfg, err := repo.Config()
	if err != nil {
		return err
	}
	cfg.Remotes[originName] = &config.RemoteConfig{Name: originName, URLs: []string{url}, Fetch: []config.RefSpec{refSpec(branch)}}
	if err := repo.SetConfig(cfg); err != nil {
		return err
	}
	return repo.Storer.SetReference(plumbing.NewSymbolicReference(plumbing.HEAD, plumbing.NewBranchReferenceName(branch)))
}

// fetchBranch fetches the branch into the mirror and returns its head.
// ctx's deadline, timeout from now, bounds all of it, connecting and
// go-git's SSH handshake included.
func (w *watcher) fetchBranch(ctx context.Context, repo *git.Repository, rem *gitauth.Remote, branch string, timeout time.Duration) (plumbing.Hash, error) {
	err := w.fetchRefs(ctx, repo, rem, []config.RefSpec{refSpec(branch)}, func(err error) error {
		return explainFetch(ctx, err, rem, branch, timeout)
	})
	if err != nil {
		return plumbing.ZeroHash, err
	}
	ref, err := repo.Reference(plumbing.NewBranchReferenceName(branch), true)
	if err != nil {
		return plumbing.ZeroHash, &fetchError{url: rem.URL(), reason: fmt.Sprintf("branch %s is not in the mirror after the fetch: %v", branch, err), advice: "delete the mirror folder and ferry makes it again", err: err}
	}
	return ref.Hash(), nil
}

// fetchRefs fetches specs from rem into the mirror, forced and without tags,
// within rem's bounds; explain says what a failed fetch means (the branch's
// and the requests' failures say different things).
func (w *watcher) fetchRefs(ctx context.Context, repo *git.Repository, rem *gitauth.Remote, specs []config.RefSpec, explain func(error) error) error {
	auth, err := rem.Auth(w.hostKeys)
	if err != nil {
		return &fetchError{url: rem.URL(), reason: err.Error(), err: err}
	}
	bound, release := rem.Bound(ctx)
	defer release()
	err = repo.FetchContext(ctx, &git.FetchOptions{
		ProxyOptions: bound,
		RemoteName:   originName,
		RemoteURL:    rem.URL(),
		RefSpecs:     specs,
		Auth:         auth,
		Tags:         git.NoTags,
		Force:        true,
	})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return explain(err)
	}
	return nil
}

// isForced reports whether the branch moved from old to new other than
// forward. After a full fetch of new, every commit new descends from is in
// the mirror, so an old commit that is missing is no ancestor: a force-push
// replaced it.
func isForced(repo *git.Repository, old, new plumbing.Hash) (bool, error) {
	oldC, err := repo.CommitObject(old)
	if errors.Is(err, plumbing.ErrObjectNotFound) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	newC, err := repo.CommitObject(new)
	if err != nil {
		return false, err
	}
	anc, err := oldC.IsAncestor(newC)
	if err != nil {
		return false, err
	}
	return !anc, nil
}

// fetchError is a failed fetch, said so that the status tells the user
// what to do.
type fetchError struct {
	url    string // as shown
	reason string // what went wrong
	advice string // what to do; "" when there is nothing to say
	err    error
}

func (e *fetchError) Error() string {
	msg := "fetching " + e.url + ": " + e.reason
	if e.advice != "" {
		msg += "; " + e.advice
	}
	return msg
}

func (e *fetchError) Unwrap() error { return e.err }

// timeoutError is a fetch that did not end within the source's timeout:
// said first, as the status shows it ("no answer within 60s").
type timeoutError struct {
	url     string
	timeout time.Duration
	err     error
}

func (e *timeoutError) Error() string {
	return fmt.Sprintf("no answer within %s from %s; check that the Git server answers (a very large first fetch may need a longer timeout: raise the source's timeout)", ShowTimeout(e.timeout), e.url)
}

func (e *timeoutError) Unwrap() error { return e.err }

// ShowTimeout says a timeout as people write one: 60s rather than 1m0s.
func ShowTimeout(d time.Duration) string {
	if d >= time.Second && d%time.Second == 0 {
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return d.String()
}

// explainFetch turns go-git's error into one that says what to do: what
// only a fetch of the branch can tell, then what gitauth knows of the
// transport.
func explainFetch(ctx context.Context, err error, rem *gitauth.Remote, branch string, timeout time.Duration) error {
	fe := &fetchError{url: rem.URL(), err: err}
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return &timeoutError{url: rem.URL(), timeout: timeout, err: err}
	case errors.Is(err, transport.ErrEmptyRemoteRepository):
		fe.reason = "the repository is empty"
		fe.advice = "push branch " + branch + " to it"
	case errors.Is(err, git.NoMatchingRefSpecError{}):
		fe.reason = "branch " + branch + " not found"
		fe.advice = "push it, or set the source's branch to one the repository has"
	case errors.Is(err, syscall.ENOSPC) || strings.Contains(err.Error(), "no space left on device"):
		// why: the disk that is full is ferry's, where the mirror is, not
		// the repository's; advice about the URL or path would send the
		// operator to the wrong machine. The text is checked too, since
		// not every layer of go-git wraps the errno.
		fe.reason, _, _ = rem.Explain(err)
		fe.advice = "free space on the disk of ferry's data folder (the mirrors are there); the source is fetched again by itself"
	default:
		fe.reason, fe.advice, _ = rem.Explain(err)
	}
	return fe
}
