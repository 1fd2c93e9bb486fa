// Package manifests owns a repository's declaration: it loads ferry.yaml and
// .ferry/*.yaml from any fs.FS into the ferry.dev/v1alpha1 types, validates
// them with file:line:column errors that say what to do, confines every path
// to the repository, and renders a loaded set into the one canonical document
// that a release's identity hashes.
//
// Loading is strict (an unknown field, a wrong type or an unknown kind is an
// error), reports every error of a load together, and refuses hostile input
// (oversized files, too many objects, alias bombs, deep nesting) before it
// can cost much memory or time.
package manifests
