// Package kubenode starts a real single-node Kubernetes cluster for
// tests (hack/node.sh: etcd, kube-apiserver, containerd with runc, a
// kubelet, kube-controller-manager and kube-scheduler on loopback), so a
// test can run ferry's images as pods and call them over HTTP at their
// pod IP. One node runs per machine at a time: Start waits for the
// script's lock, so parallel test packages queue. Stop, which runs at
// the test's cleanup whatever its outcome, leaves nothing behind, and
// says so when it does.
package kubenode
