package gitexport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// originName is the clone's one remote.
const originName = "origin"

// cloneCache bounds the object cache of the open clone, which stays open
// between exports; an export reads a handful of trees, so go-git's
// default of 96 MiB would only hold memory.
const cloneCache = 8 * cache.MiByte

// fetchSpec fetches only the branch, forced so that a branch someone
// rewrote is taken as it now is, into its remote-tracking ref.
func (e *Exporter) fetchSpec() config.RefSpec {
	return config.RefSpec("+" + plumbing.NewBranchReferenceName(e.cfg.Branch).String() + ":" + e.tracking().String())
}

// tracking is the ref that holds the remote branch as last fetched.
func (e *Exporter) tracking() plumbing.ReferenceName {
	return plumbing.NewRemoteReferenceName(originName, e.cfg.Branch)
}

// maxPacks is how many pack files the clone may gather before it is made
// again: every fetch that brings other writers' commits adds one, and
// go-git looks through every pack's index to find an object. A clone
// made again is one pack.
const maxPacks = 64

// open returns the clone, making it when missing, when it does not open
// or when fetches split it into too many packs: it holds nothing the
// remote does not have, so making it again loses nothing but a fetch.
func (e *Exporter) open() (*git.Repository, error) {
	if packs := countPacks(e.repoDir); packs > maxPacks {
		e.cfg.Log("gitexport: the clone %s has %d packs; making it again, as one", e.repoDir, packs)
		e.repo = nil
		if err := os.RemoveAll(e.repoDir); err != nil {
			return nil, fmt.Errorf("removing the clone %s to make it again: %w; check that ferry may write to %s", e.repoDir, err, e.cfg.Dir)
		}
	}
	if e.repo != nil {
		return e.repo, nil
	}
	repo, err := e.openClone()
	if err != nil {
		if !errors.Is(err, git.ErrRepositoryNotExists) {
			e.cfg.Log("gitexport: the clone %s does not open (%v); making it again", e.repoDir, err)
		}
		if err := e.makeClone(); err != nil {
			return nil, err
		}
		if repo, err = e.openClone(); err != nil {
			return nil, fmt.Errorf("opening the clone %s that was just made: %w; check that ferry may write to %s", e.repoDir, err, e.cfg.Dir)
		}
	}
	e.repo = repo
	return repo, nil
}

// countPacks is the number of pack files in the bare repository at dir.
func countPacks(dir string) int {
	files, _ := os.ReadDir(filepath.Join(dir, "objects", "pack"))
	n := 0
	for _, f := range files {
		if strings.HasSuffix(f.Name(), ".pack") {
			n++
		}
	}
	return n
}

// openClone opens the clone and points its remote at the URL and branch
// (which may have changed since it was made).
func (e *Exporter) openClone() (*git.Repository, error) {
	if _, err := os.Stat(filepath.Join(e.repoDir, "HEAD")); err != nil {
		if os.IsNotExist(err) {
			return nil, git.ErrRepositoryNotExists
		}
		return nil, err
	}
	repo, err := git.Open(filesystem.NewStorage(osfs.New(e.repoDir), cache.NewObjectLRU(cloneCache)), nil)
	if err != nil {
		return nil, err
	}
	cfg, err := repo.Config()
	if err != nil {
		return nil, err
	}
	rc := cfg.Remotes[originName]
	if rc == nil || !slices.Equal(rc.URLs, []string{e.rem.URL()}) || !slices.Equal(rc.Fetch, []config.RefSpec{e.fetchSpec()}) {
		cfg.Remotes[originName] = &config.RemoteConfig{Name: originName, URLs: []string{e.rem.URL()}, Fetch: []config.RefSpec{e.fetchSpec()}}
		if err := repo.SetConfig(cfg); err != nil {
			return nil, err
		}
	}
	return repo, nil
}

// makeClone makes an empty bare repository at repoDir, in place of
// whatever is there. It is made aside and renamed into place, so that a
// crash never leaves a half-made one.
func (e *Exporter) makeClone() error {
	fail := func(err error) error {
		return fmt.Errorf("making the clone %s: %w; check that ferry may write to %s", e.repoDir, err, e.cfg.Dir)
	}
	if err := os.MkdirAll(e.cfg.Dir, 0o755); err != nil {
		return fail(err)
	}
	tmp, err := os.MkdirTemp(e.cfg.Dir, ".repo.git-")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(tmp)
	r, err := git.PlainInit(tmp, true)
	if err == nil {
		err = r.Storer.SetReference(plumbing.NewSymbolicReference(plumbing.HEAD, plumbing.NewBranchReferenceName(e.cfg.Branch)))
	}
	if err == nil {
		if err = os.RemoveAll(e.repoDir); err == nil {
			err = os.Rename(tmp, e.repoDir)
		}
	}
	if err != nil {
		return fail(err)
	}
	return nil
}

// fetch brings the remote branch into the clone and returns its head, the
// zero hash when the remote has no such branch yet.
func (e *Exporter) fetch(ctx context.Context, repo *git.Repository, auth transport.AuthMethod) (plumbing.Hash, error) {
	// go-git's SSH handshake does not follow ctx; Bound ties it to ctx.
	bound, release := e.rem.Bound(ctx)
	defer release()
	err := repo.FetchContext(ctx, &git.FetchOptions{
		ProxyOptions: bound,
		RemoteName:   originName,
		RemoteURL:    e.rem.URL(),
		RefSpecs:     []config.RefSpec{e.fetchSpec()},
		Auth:         auth,
		Tags:         git.NoTags,
		Force:        true,
	})
	switch {
	case err == nil, errors.Is(err, git.NoErrAlreadyUpToDate):
	case errors.Is(err, transport.ErrEmptyRemoteRepository), errors.Is(err, git.NoMatchingRefSpecError{}):
		// The first export creates the branch. A tracking ref left from
		// before someone deleted the branch must not be built on.
		if err := repo.Storer.RemoveReference(e.tracking()); err != nil {
			return plumbing.ZeroHash, fmt.Errorf("clearing %s in the clone %s: %w", e.tracking(), e.repoDir, err)
		}
		return plumbing.ZeroHash, nil
	default:
		return plumbing.ZeroHash, &stepError{step: "fetching", err: err}
	}
	ref, err := repo.Reference(e.tracking(), true)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("branch %s is not in the clone %s after the fetch: %w", e.cfg.Branch, e.repoDir, err)
	}
	return ref.Hash(), nil
}

// push sends commit to the remote branch. go-git refuses locally when
// the remote's head is not an ancestor of commit (someone pushed since
// our fetch), and the server refuses when the head moved between go-git
// reading it and the update (its compare-and-swap of the ref): both come
// back wrapping errRejected.
func (e *Exporter) push(ctx context.Context, repo *git.Repository, auth transport.AuthMethod, commit plumbing.Hash) error {
	branch := plumbing.NewBranchReferenceName(e.cfg.Branch)
	// The local branch is only what we push from; every attempt sets it
	// afresh from the remote's head.
	if err := repo.Storer.SetReference(plumbing.NewHashReference(branch, commit)); err != nil {
		return fmt.Errorf("setting %s in the clone %s: %w", branch, e.repoDir, err)
	}
	bound, release := e.rem.Bound(ctx)
	defer release()
	err := repo.PushContext(ctx, &git.PushOptions{
		ProxyOptions: bound,
		RemoteName:   originName,
		RemoteURL:    e.rem.URL(),
		RefSpecs:     []config.RefSpec{config.RefSpec(branch.String() + ":" + branch.String())},
		Auth:         auth,
	})
	switch {
	case err == nil:
		return nil
	case ctx.Err() == nil && isRejected(err):
		return fmt.Errorf("%w: %w", errRejected, err)
	default:
		return &stepError{step: "pushing", err: err}
	}
}

// rejections are how a refused update of a moved ref reads: go-git's own
// check ("non-fast-forward update"), and git receive-pack's when the
// ref's old value no longer matches ("failed to update ref", "cannot lock
// ref", "failed to lock"; "reference already exists" when two writers
// create the branch). Other refusals, such as a protected branch or a
// hook that declined, are not a race and are not retried.
var rejections = []string{
	"non-fast-forward",
	"fetch first",
	"failed to update ref",
	"failed to lock",
	"cannot lock ref",
	"reference already exists",
	"stale info",
}

// isRejected reports whether a push failed because the branch moved.
func isRejected(err error) bool {
	msg := err.Error()
	for _, r := range rejections {
		if strings.Contains(msg, r) {
			return true
		}
	}
	return false
}

// buildCommit writes ch's file into the tree of base (none: an empty
// tree) and returns the commit with base as its parent; the zero hash
// when the file holds those bytes already.
func buildCommit(s storer.EncodedObjectStorer, base plumbing.Hash, ch change, author, committer object.Signature) (plumbing.Hash, error) {
	blob := plumbing.ComputeHash(plumbing.BlobObject, ch.content)
	var root plumbing.Hash
	var parents []plumbing.Hash
	if !base.IsZero() {
		c, err := object.GetCommit(s, base)
		if err != nil {
			return plumbing.ZeroHash, fmt.Errorf("reading the branch's head %s: %w", base, err)
		}
		root, parents = c.TreeHash, []plumbing.Hash{base}
		t, err := c.Tree()
		if err != nil {
			return plumbing.ZeroHash, fmt.Errorf("reading the tree of %s: %w", base, err)
		}
		if cur, err := t.FindEntry(ch.path); err == nil && cur.Hash == blob && cur.Mode.IsFile() {
			return plumbing.ZeroHash, nil
		}
	}
	if _, err := storeObject(s, plumbing.BlobObject, ch.content); err != nil {
		return plumbing.ZeroHash, err
	}
	tree, err := putFile(s, root, "", strings.Split(ch.path, "/"), blob)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	c := &object.Commit{
		Author:       author,
		Committer:    committer,
		Message:      ch.message,
		TreeHash:     tree,
		ParentHashes: parents,
	}
	obj := s.NewEncodedObject()
	if err := c.Encode(obj); err != nil {
		return plumbing.ZeroHash, err
	}
	return s.SetEncodedObject(obj)
}

// putFile returns the tree that is tree (zero: an empty one) with the
// regular file at parts set to blob, writing the trees it changes. dir is
// where tree is, for messages.
func putFile(s storer.EncodedObjectStorer, tree plumbing.Hash, dir string, parts []string, blob plumbing.Hash) (plumbing.Hash, error) {
	var entries []object.TreeEntry
	if !tree.IsZero() {
		t, err := object.GetTree(s, tree)
		if err != nil {
			return plumbing.ZeroHash, fmt.Errorf("reading the tree of %q: %w", dir, err)
		}
		entries = slices.Clone(t.Entries)
	}
	name := parts[0]
	here := strings.TrimPrefix(dir+"/"+name, "/")
	i := slices.IndexFunc(entries, func(e object.TreeEntry) bool { return e.Name == name })
	entry := object.TreeEntry{Name: name, Mode: filemode.Regular, Hash: blob}
	if len(parts) > 1 {
		var sub plumbing.Hash
		if i >= 0 {
			if entries[i].Mode != filemode.Dir {
				return plumbing.ZeroHash, fmt.Errorf("%s is not a folder in the repository but a file, link or submodule; move it, or change the exporter's path", here)
			}
			sub = entries[i].Hash
		}
		h, err := putFile(s, sub, here, parts[1:], blob)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		entry = object.TreeEntry{Name: name, Mode: filemode.Dir, Hash: h}
	} else if i >= 0 && entries[i].Mode == filemode.Dir {
		return plumbing.ZeroHash, fmt.Errorf("%s is a folder in the repository, not a file; move it, or change the exporter's path", here)
	}
	if i >= 0 {
		entries[i] = entry
	} else {
		entries = append(entries, entry)
	}
	// Git's order: by name, a folder's as if it ended in "/"; a tree in
	// another order is one git fsck and the Git hosts refuse.
	slices.SortFunc(entries, func(a, b object.TreeEntry) int {
		return strings.Compare(sortName(a), sortName(b))
	})
	t := &object.Tree{Entries: entries}
	obj := s.NewEncodedObject()
	if err := t.Encode(obj); err != nil {
		return plumbing.ZeroHash, err
	}
	return s.SetEncodedObject(obj)
}

func sortName(e object.TreeEntry) string {
	if e.Mode == filemode.Dir {
		return e.Name + "/"
	}
	return e.Name
}

// storeObject writes an object of type t holding data.
func storeObject(s storer.EncodedObjectStorer, t plumbing.ObjectType, data []byte) (plumbing.Hash, error) {
	obj := s.NewEncodedObject()
	obj.SetType(t)
	obj.SetSize(int64(len(data)))
	w, err := obj.Writer()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if _, err := bytes.NewReader(data).WriteTo(w); err != nil {
		w.Close()
		return plumbing.ZeroHash, err
	}
	if err := w.Close(); err != nil {
		return plumbing.ZeroHash, err
	}
	return s.SetEncodedObject(obj)
}

// signature is a commit's author or committer.
func signature(name, email string, when time.Time) object.Signature {
	return object.Signature{Name: name, Email: email, When: when}
}
