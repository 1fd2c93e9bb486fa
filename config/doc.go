// Package config holds the Kubernetes manifests ferry installs in a
// cluster: the CRDs generated from manifests/v1alpha1 (crd/, written by
// `make generate`, never by hand), embedded so that `ferry install` and
// the tests apply exactly what is committed.
package config
