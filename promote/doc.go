// Package promote owns Releases in Environments: policies, approvals,
// verification, promotion, rollback by digest, history and locks.
package promote
