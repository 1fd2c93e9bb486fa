//go:build !linux

package sandbox

// HardenSelf does nothing outside Linux, which has no PR_SET_DUMPABLE.
func HardenSelf() error { return nil }
