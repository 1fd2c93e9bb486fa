// Package filelock owns the one way ferry's caches on disk keep two
// writers of one entry apart: an flock on a file per entry; and how one
// ferry keeps a data folder to itself (TryLock, LockDataDir).
package filelock
