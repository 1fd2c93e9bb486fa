// Package testreg starts real OCI registries for the tests of any
// package: ferry's embedded registry (build/registry) in-process, and
// distribution's own registry binary as a separate process, optionally
// behind htpasswd authentication, so code that talks to "any OCI
// registry" is tested against a second, independent one.
//
// Process builds the registry binary once with hack/tool.sh, pinned in
// hack/tools/go.mod, into the repository's .cache folder; the first run
// takes a minute or two.
package testreg
