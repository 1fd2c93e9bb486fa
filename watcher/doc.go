// Package watcher owns Sources: the Git repositories ferry watches. It keeps
// a bare mirror per source, polls with jitter, takes webhook nudges, and
// emits an event for each new commit or force-push.
package watcher
