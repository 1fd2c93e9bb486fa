// Package notify tells places outside ferry what happened: GitHub (commit
// statuses, pull-request comments, deployments), chats (Slack-compatible
// incoming webhooks) and generic webhooks. Each outcome is planned into
// deliveries that wait in the store's outbox, so that a receiver that is
// down, slow or rate-limited neither loses a notice nor slows the engine.
package notify
