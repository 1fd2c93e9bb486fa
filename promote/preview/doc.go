// Package preview owns pull-request previews: the environment pr-N-SOURCE
// ferry keeps for each open pull request of a source whose Pipeline
// enables previews, from the request's opening to its close, its ttl of
// inactivity, or its eviction for the cap.
//
// The Manager decides; the server carries out through Config's callbacks
// (read the Pipeline, fetch the request's head, queue a pipeline run,
// make and remove the environment, tell people), so this package imports
// neither the server nor the pipeline and is tested alone.
//
// # Decisions
//
//   - Whether a source has previews is read from the Pipeline at the
//     source's branch head, never at the pull request's own commit: a
//     commit must not loosen its own gates. The ttl is read when a
//     preview opens and kept with it.
//   - The commit built is the one Git has for the request's head (Fetch),
//     never a webhook payload's.
//   - A fork's request, or one whose origin ferry cannot confirm (seen by
//     polling, without a webhook to say), is built only when the
//     configuration allows forks or an allowed user adds the preview
//     label; the label approves the head it was added for, so each new
//     push from a fork waits for the label again.
//   - At the cap, the longest idle preview (oldest last push or deploy)
//     is torn down to make room, and told, so its pull request can say so.
//   - All state is in the store: a restarted manager makes the previews'
//     environments again (Make is idempotent), queues their heads again
//     (Enqueue is idempotent, and deploys a done run again to an
//     environment made again empty), and goes on.
package preview
