// Package gitserver is a real Git smart-HTTP server for tests: git's own
// http-backend behind net/http/cgi, serving the bare repositories of one
// folder, with optional basic auth, as a Git host would.
package gitserver
