// Package build owns turning a Function's source at a commit into an
// immutable, reproducible OCI image addressed by digest, the layer cache
// keyed by content, pushes to registries, release artifacts, and the
// embedded registry.
package build
