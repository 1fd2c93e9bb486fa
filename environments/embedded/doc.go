// Package embedded owns the embedded target: functions of an environment
// run as child processes of ferry on loopback ports, behind ferry's
// gateway, with no cluster. Images are pulled by digest and unpacked once
// into a content-addressed cache that every environment shares; a Python
// or Node.js image built on scratch runs with the host's interpreter, a Go
// image runs its static binary.
//
// A function's variables are resolved per environment at each Apply (an
// EnvResolver, which the server backs with the environment's sealed
// secrets and configured overrides), all before any process starts, so a
// missing secret fails the Apply with the previous release still serving.
// A trigger runs only in the environments its spec.environments lists.
package embedded
