// Package kube is the Kubernetes target: a Release becomes Function and
// trigger objects in a namespace of a cluster, applied server-side with
// client-go (field manager "ferry") and pruned by label, and the
// in-cluster controller (kube/controller) makes them run.
package kube
