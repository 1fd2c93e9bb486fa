// Package watcher owns Sources: the Git repositories ferry watches. It keeps
// a bare mirror per source, polls with jitter, takes webhook nudges, and
// emits an event for each new commit or force-push.
//
// # Mirrors
//
// Each source has a bare repository at Config.Dir/<source>.git, made with
// go-git, whose remote "origin" has the source's URL and one refspec,
// +refs/heads/<branch>:refs/heads/<branch>: only the watched branch is
// fetched, in full (no depth limit, no tags), and forced, so that a
// force-push lands. A source whose URL or branch changes keeps its mirror
// and gets its remote updated. Remove deletes the mirror.
//
// A source's URL is a local path (made absolute) or file:///path, read
// through git-upload-pack (so git must be installed); http(s)://, with the
// source's Username and Password (a token as the password; plain http
// carries credentials only to a loopback host); or ssh:// or
// user@host:path, with the source's SSHKey, a PEM private key that the
// Password decrypts if it is encrypted, as the URL's user, else the
// source's Username, else "git". Package internal/gitauth checks the URL
// and credentials, pins the host keys and says what a failed fetch means,
// as it does for the GitOps exporter's pushes.
//
// SSH host keys are pinned in a known_hosts file (Config.KnownHosts,
// Dir/known_hosts by default) shared by all sources: a host the file does
// not list is trusted on first use and added, and a host whose key then
// changes is refused until its line is deleted. Put the keys in the file
// beforehand (ssh-keyscan) to trust nothing on first use.
//
// # Polling
//
// One goroutine keeps the sources in a heap by their next fetch; each fetch
// runs on its own goroutine, at most Config.Parallel at once, never two of
// one source. A fetch that finds nothing new is one round trip that lists
// the remote's refs. After a success the next fetch is the source's
// interval later; after failures it is interval·2^failures later, at most
// Config.MaxBackoff; both are moved by up to ±10 % so that sources do not
// fetch in lockstep. Each fetch saves the source's status (LastCommit,
// LastFetch, LastError that says what to do, Failures, NextFetch).
//
// When the branch's head differs from the status's LastCommit the watcher
// records a store.SourceEvent (Previous "" for the first head seen; Forced
// when the previous head is not an ancestor of the new one) and then calls
// Config.OnEvent. Comparing with the recorded LastCommit, not with the
// mirror, makes this idempotent: a crash between fetch and record is
// recorded by the next fetch.
//
// Sync and Nudge (what webhooks and `ferry sources sync` call) only ask
// for a fetch now; the commit always comes from Git.
//
// # Pull requests
//
// For a source whose requests are polled (SetPulls, which the server turns
// on when the source has previews), each poll after the branch's fetch lists
// the remote's refs once, as `git ls-remote` does, within the source's
// timeout, and finds the heads of GitHub's pull requests (refs/pull/N/head)
// and GitLab's merge requests (refs/merge-requests/N/head). The heads that
// are new or moved are fetched into the mirror under the same names (so
// Tree and the others read them), recorded in Config.Pulls, and told to
// Config.OnPull as opened, updated, or closed when the ref is gone. The
// branch's fetch and the requests' name only their own refs and prune
// nothing, so neither disturbs the other's.
//
// The first listing after polling is turned on for a source records the
// requests it finds and tells nothing of them: GitHub keeps the refs of
// closed requests, and a repository with thousands must not open thousands
// of previews. Those requests count from their next push. The record
// outlives a restart; turning polling off forgets it. Since GitHub keeps a
// closed request's ref, polling alone notices a close on GitLab, or on
// GitHub only when the ref is deleted; webhooks say so at once.
//
// FetchPull fetches one request's head now, for a webhook that told of it,
// and records it, so that the next poll does not tell it again.
//
// # Trees
//
// Tree reads a commit's tree straight from the mirror's objects as an
// fs.FS (with ReadDir, ReadFile, Stat, Lstat and ReadLink): files are 0644
// or 0755 as Git records, symlinks are symlinks whose content is their
// target, followed only inside the tree (a link that leads out is an error
// naming it, as manifests.Resolve reports), and a submodule is an empty
// folder, as a checkout without `git submodule update` shows it.
//
// # Folders
//
// Folder is the other kind of watching: `ferry run`'s working folder,
// polled by walking it, with no Git involved but for what Git ignores.
// It never reports what ferry or an editor writes: the folders it is told
// to skip (the data folder, wherever it is), .git, what Git ignores (git
// check-ignore, in a work tree; outside one, the folder's own top-level
// .gitignore, read with the common rules), and editors' temporary files
// (*.swp, *~, .#*, vim's 4913). git runs only when a walk differs from
// the last one. A change is reported after two looks in a row agree, so
// that a save made of several writes is one change.
package watcher
