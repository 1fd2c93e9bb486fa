// Package testenv gives tests of the layers below server a real target
// (the embedded one, running real function processes behind its gateway
// on loopback) as an environments.Target, so that those layers, tests
// included, never name a concrete target themselves: only server, cmd and
// test do (hack/imports.sh).
package testenv
