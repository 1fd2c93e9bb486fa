// Package test holds ferry's end-to-end tests and the helpers that start
// the real servers they talk to. The tests run the built ferry binary as a
// user would; the dashboard's tests drive it in a real headless Chromium
// (browser_test.go), which hack/deps.sh installs.
package test
