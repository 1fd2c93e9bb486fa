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
package pipeline
