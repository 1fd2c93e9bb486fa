// Package githubtest is a stand-in for the GitHub REST API in tests: an
// httptest server that decodes every request with go-github's own types,
// checks its method, path, headers and body against GitHub's documented
// shapes, fails the test on anything else, and keeps what it was told
// (statuses, comments, deployments) for the test to look at.
//
// It covers the calls ferry makes, no more: a call it does not know is a
// test failure, so a new call needs a handler here first.
//
// Payload gives the other direction: a webhook delivery as GitHub
// documents it, with the fields a test is about changed.
package githubtest
