// Package store owns ferry's durable state behind small interfaces: runs,
// builds, releases, environments, deployments, promotions, approvals and
// the audit log, in SQLite by default.
package store
