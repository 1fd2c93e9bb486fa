// Package install owns what `ferry install` puts in a cluster: ferry's
// CRDs (config.CRDs, as committed), the controller's namespace, its
// ServiceAccount, the RBAC it needs and nothing more, and the controller
// Deployment running ferry's own image by digest. Objects makes them, in
// the order they must be applied; WriteYAML prints them; Apply
// server-side-applies them (field manager "ferry") and waits for the
// CRDs to be Established.
//
// Least privilege is decided here, once, for the controller in
// environments/kube/controller: read ferry's five kinds and write their
// status; own the children it makes (Deployments, Services,
// HorizontalPodAutoscalers, HTTPRoutes or Ingresses, CronJobs,
// ConfigMaps); read pods for why a rollout is stuck; record events. It
// never reads Secrets (a function's pod names the Secret, the kubelet
// reads it), uses no wildcard, and holds its leader-election Lease
// through a Role in its own namespace only. The rules equal the
// controller's own ClusterRules and LeaderElectionRules, which its tests
// run it with.
package install
