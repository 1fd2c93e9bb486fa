// Package store owns ferry's durable state behind small interfaces: runs,
// builds, releases, environments, deployments, promotions, approvals and
// the audit log, in SQLite by default.
//
// Open returns the SQLite store: one file in WAL mode, its schema migrated
// on open from the versions embedded in the binary, with one writer at a
// time and readers alongside it.
//
// The audit log is never silently short: a change that people or ferry
// make on purpose carries its entry (WithEvent) and is written in the same
// transaction, so a full disk refuses both with an *AuditError; an action
// that changes nothing here (a fetch asked for) appends its entry first
// and acts only once it is written.
package store
