// Package pipeline owns PipelineRuns: the ordered, resumable CI steps for
// one commit (checkout, validate, build, test, release, deploy) and the
// executors that run them, embedded or on Argo Workflows.
package pipeline
