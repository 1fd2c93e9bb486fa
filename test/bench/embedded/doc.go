// Command embedded measures ferry's embedded target on this machine: the
// gateway's overhead, cold starts and release switches. test/bench/embedded.sh
// builds and runs it; see test/bench/README.md for what each figure means.
//
// Run with -load URL it is instead the load generator: it calls URL from
// -workers goroutines for -duration and prints one JSON line of results.
// The benchmark starts it as a second process, so that the load generator
// and the gateway do not share a Go runtime.
package main
