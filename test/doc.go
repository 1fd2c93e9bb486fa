// Package test holds ferry's end-to-end tests and the helpers that start
// the real servers they talk to. The tests run the built ferry binary as a
// user would.
package test
