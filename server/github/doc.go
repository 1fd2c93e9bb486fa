// Package github tells GitHub what ferry did, and hears approvals from it.
//
// It owns three things, all through go-github:
//
//   - the client: a token, or a GitHub App whose installation token is
//     fetched and refreshed five minutes before it expires (client.go);
//   - the notify.Sink named "github" (sink.go): a commit status per
//     pipeline step, one comment per preview found again by a hidden
//     marker and edited in place, and a GitHub deployment (with its
//     statuses) per preview and per deployment to a configured
//     environment. Plan only encodes; Deliver makes the calls, so the
//     outbox keeps every update through an outage or a restart;
//   - approvals from comments (approve.go): "/ferry approve ENV" and
//     "/ferry reject ENV REASON" count for the GitHub user only when the
//     configuration maps the login to a ferry identity with the approver
//     role and GitHub says the user has at least the configured
//     permission on the repository.
//
// Decisions:
//
//   - Nothing from a webhook's payload is trusted beyond which comment to
//     read: the comment's body, author and commit, and a pull request's
//     commits, are read from the API.
//   - A source maps to a repository by the configuration's
//     `github: owner/name`, else by its URL on GitHub's host; a source that
//     maps to none sends nothing to GitHub.
//   - Errors are sorted once (errors.go): rate limits become a
//     *notify.RetryError with GitHub's wait, 5xx and network errors plain
//     errors (the notifier backs off), refusals no retry fixes a
//     *notify.PermanentError.
package github
