// Command kube measures ferry's Kubernetes controller from cold: N
// Functions and N HTTPTriggers are in a real API server before `ferry
// controller` starts, and the figure is the time from its start until
// every Deployment, Service, HorizontalPodAutoscaler and HTTPRoute exists
// and every Function has a Ready condition for its generation, with the
// controller's peak memory (its resident set's high-water mark).
// test/bench/kube.sh builds and runs it; see test/bench/README.md.
package main
