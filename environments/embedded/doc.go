// Package embedded owns the embedded target: functions of an environment
// run as child processes of ferry on loopback ports, behind ferry's
// gateway, with no cluster. Images are pulled by digest and unpacked once
// into a content-addressed cache that every environment shares; a Python
// or Node.js image built on scratch runs with the host's interpreter, a Go
// image runs its static binary.
package embedded
