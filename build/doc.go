// Package build owns turning a Function's source at a commit into an
// immutable, reproducible OCI image addressed by digest, the layer cache
// keyed by content, pushes to registries, release artifacts, and the
// embedded registry.
//
// A Python or Node.js function's files are parsed before its image is
// made (check.go): code that does not parse fails the build with
// file:line rather than becoming a release that fails when it starts. The
// parse runs the host's interpreter on a copy of the source, in the
// sandbox when one is given (WithSandbox): the source is the
// repository's, so the interpreter gets none of ferry's environment.
package build
