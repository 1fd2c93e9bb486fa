// Package testbuild starts what tests that build the examples need: an
// embedded registry and a builder pushing to it. It is apart from
// test/testreg, which build's own tests use, so that build can be
// imported here without a cycle.
package testbuild
