// Package v1alpha1 owns the ferry.dev/v1alpha1 API types: Function, the four
// trigger kinds and Pipeline.
//
// The same Go types are what a user writes in ferry.yaml and what a later
// Kubernetes target serves as CRDs, so an object flows unchanged from Git to
// a cluster. Loading, validation and rendering live in the parent package
// manifests; this package holds only data, markers and generated deepcopy.
//
// +kubebuilder:object:generate=true
// +groupName=ferry.dev
package v1alpha1
