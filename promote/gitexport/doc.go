// Package gitexport owns the GitOps export: it commits each deployment's
// rendered release to a Git repository, one file per environment, for
// teams that also run Flux or Argo CD. Its Exporter is a promote.Exporter.
//
// # What an export writes
//
// Export writes the release's rendered manifest to the path the Config.Path
// template gives for the deployment's environment (by default
// environments/<env>/ferry.yaml), after one comment line naming the
// release, its source and commit, the environment, the actor and the
// promotion and deployment; a comment keeps the file the same YAML. It
// commits that file alone with the message
//
//	deploy <env>: release sha256:<first 12 hex digits> by <actor>
//
// and a body with the full release id, source, commit, promotion, run and
// deployment, and pushes the commit to Config.Branch. Other files in the
// repository are left as they are.
//
// An export is idempotent: when the file on the branch already holds the
// same bytes (the same deployment exported again after a restart), no
// commit is made. The file is what the latest export wrote, so the caller
// exports an environment's deployments in the order they happened. Only a
// succeeded deployment (or one without a status) is exported: after a
// failed one the environment still runs the release before, which the
// file names already.
//
// # The clone
//
// The exporter keeps a bare repository at Config.Dir/repo.git and builds
// each commit from Git objects (blob, trees, commit) on top of the remote
// branch it has just fetched, never from a work tree. So there is no
// checkout to leave half-written: every attempt starts from the remote's
// branch as it is now, whatever an earlier export left behind. A clone
// that no longer opens, or that fetches of other writers' commits split
// into more than 64 packs, is made again: it holds nothing the remote
// does not. One Exporter per Dir: exports are serialised in the process,
// not across processes.
//
// # Other writers
//
// A push that the remote refuses because its branch moved (another
// writer pushed between our fetch and our push, seen by go-git as a
// non-fast-forward or by the server as a failed compare-and-swap of the
// ref) fetches again, rebuilds the commit on the new head and pushes
// again, up to Config.Attempts times with a jittered backoff of about
// 100 ms, 200 ms, 400 ms, …; each retry is logged. Any other failure
// (credentials refused, server unreachable, repository missing) ends the
// export at once with an error that names the repository and says what
// to do. An export whose context has no earlier deadline ends after two
// minutes, so that a server that hangs cannot hold up every later export.
// An empty repository works: the first export creates the branch.
//
// # Reaching the repository
//
// Config.URL is https:// (with Username and Password, a token as the
// password), http:// to this machine only, ssh:// or user@host:path (with
// SSHKey, a PEM private key that Password decrypts if it is encrypted),
// file:// or a local path (through git's own receive-pack, so git must be
// installed). SSH host keys are pinned in Config.KnownHosts
// (Dir/known_hosts by default): a host the file does not list is trusted
// on first use and added; a host whose key then changes is refused until
// its line is deleted. Package internal/gitauth checks the URL and
// credentials, pins the host keys and says what a failed fetch or push
// means, as it does for the watcher's fetches.
package gitexport
