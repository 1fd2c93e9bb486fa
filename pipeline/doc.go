// Package pipeline owns PipelineRuns: the ordered, resumable CI steps for
// one commit (checkout, validate, build, test, release, deploy) and the
// Executor that runs them; the embedded executor runs them in-process
// (Argo Workflows is to come behind the same interface).
//
// A run is a row of the store with one row per step. Each step records its
// status, times and log lines as it goes, so a run interrupted by a crash
// or a shutdown is resumed from its first unfinished step by the next
// executor to start on the same store, and a commit never gets a second
// release: the release step reuses the one the store holds for the commit,
// and pushing the same builds again gives the same release id.
//
// Runs of one source's branch take turns, oldest first; a run enqueued for
// a newer commit supersedes the older runs still waiting. Different
// branches and sources run side by side.
//
// A run converges on the branch head and never goes back: its deploy
// step does not apply a commit older (by Git's ancestry, Config.IsAncestor)
// than the one its environment runs from the same branch, and a run found
// unfinished at start whose commit the branch head has moved past, or
// that a newer run of the branch deployed already, ends superseded with
// the reason instead of resuming. The branch head as the watcher last saw
// it is exempt: after a force-push back to an older commit, that commit's
// run deploys, and a done run of it deploys its release again through its
// deploy step (Enqueue of a head whose release is not live).
//
// Every write of a run (its steps, its log lines, its audit entries, its
// builds, release and deployment) is retried with back-off while the store
// refuses it (a full disk); log lines wait in memory, and no later step
// starts. A store that refuses for longer than Config.StoreRetry stops
// the run: it is recorded failed, with what could not be written and what
// to do, as soon as the store takes that. A queued run superseded by a
// newer one is recorded so by its branch's worker before the next run of
// the branch starts, retried the same way.
//
// A run that failed because ferry's infrastructure did (the store, a
// registry that did not answer or could not be reached, a tree the
// mirror could not give: decided from the errors' types) is marked
// Run.InfraFailed, and runs again from its first unfinished step while
// its commit is the branch head: with back-off in this process, and when
// ferry enqueues each branch head at start. A run that failed on the
// repository's merits (a manifest, the code, a test) is not run again.
//
// # Pull requests
//
// A pull request's run (EnqueuePull; Run.PullRequest is its number) has
// the branch pull/N or merge-requests/N, so it is a lane of its own and a
// commit the source's branch has too gets a second run. It runs the same
// steps, but deploys to the preview store.PreviewName(source, N), not to
// the first stage: no stage's Admit is asked, and Config.OnPreviewDeployed
// hears of it instead of OnDeployed, so it is never promoted. It converges
// on its request's head (Config.PullHead), never the branch's: a newer
// head of the same request supersedes it, and an infrastructure failure
// runs it again while it is the head. A done run enqueued again deploys
// again when its preview does not run its release (the preview was made
// again, empty).
package pipeline
