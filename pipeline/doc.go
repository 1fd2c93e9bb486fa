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
// the reason instead of resuming.
//
// Every write of a run (its steps, its log lines, its audit entries, its
// builds, release and deployment) is retried with back-off while the store
// refuses it (a full disk); log lines wait in memory meanwhile, and no
// later step starts. A store that refuses for longer than
// Config.StoreRetry stops the run: it is recorded failed, with what could
// not be written and what to do, as soon as the store takes that, and
// marked InfraFailed, so that enqueueing its commit again (ferry does it
// for each branch head at start) runs it on from its first unfinished
// step. A run that failed on its own merits is not run again.
package pipeline
