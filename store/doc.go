// Package store owns ferry's durable state behind small interfaces: runs,
// builds, releases, environments, deployments, promotions, approvals and
// the audit log, in SQLite by default.
//
// Open returns the SQLite store: one file in WAL mode, its schema migrated
// on open from the versions embedded in the binary, with one writer at a
// time and readers alongside it.
package store
