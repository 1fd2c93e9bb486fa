// Package kubetest starts real Kubernetes API servers (kube-apiserver and
// etcd, built from Go modules by hack/kube.sh into a cache folder outside
// the clone) for tests, through controller-runtime's envtest, with
// ferry's CRDs installed. No fake client: what the tests see is what a
// cluster answers.
package kubetest
