// Package controller owns ferry's in-cluster controller (`ferry
// controller`): controller-runtime reconcilers that turn the Function and
// trigger objects the Kubernetes target applies into what runs them, and
// report back in the objects' status with Flux's condition vocabulary and
// Kubernetes events.
//
//   - Function → Deployment (the image by digest; env with secrets as
//     references into the environment's Secret, never values; memory as
//     requests and limits; /healthz probes; non-root, read-only root, no
//     privilege escalation, no capabilities; rolling update with
//     maxUnavailable 0) + Service (port 80 → 8080) + HorizontalPodAutoscaler
//     from scale. scale.min 0 is refused (Stalled, InvalidSpec): nothing on
//     this target scales a Deployment from zero yet. scale.concurrency has
//     no HPA meaning (an HPA sees CPU, not requests in flight, without a
//     custom metrics adapter), so it is not used here.
//   - HTTPTrigger → a Gateway API HTTPRoute attached to the Gateway the
//     environment's ConfigMap names, or an Ingress when it names an
//     ingressClass. Paths match as on the embedded gateway: the path
//     exactly, with or without one trailing slash; on the ConfigMap's
//     host only, when it names one. An Ingress takes only paths of
//     letters, digits and -._~/: an Ingress controller may paste a path
//     into its configuration, shared with other tenants.
//   - CronTrigger → a CronJob running ferry's own image (`ferry fire`).
//   - NATSTrigger / KafkaTrigger → a ConfigMap holding a dispatch.Plan and a
//     Deployment running `ferry dispatch` on it.
//
// Every child is server-side applied (field manager "ferry-controller")
// with the parent as its controller owner, so a reconcile that changes
// nothing writes nothing, deleting a parent lets the garbage collector
// delete its children, and a deleted child is made again (Owns watches).
//
// The controller reads the environment's settings from the ConfigMap
// kube.ConfigMapName in each namespace (kube/names.go is the contract
// with the target that writes it).
//
// Decisions:
//   - Children are apply configurations, not typed objects: an apply
//     sends only the fields ferry sets, so the API server's defaults and
//     other managers' fields (the HPA's replicas) are never fought over.
//   - A Function's Deployment has no replicas: the HPA owns the count.
//     A Function without scale.min gets 1, not the embedded target's 0.
//   - Function pods get FERRY_LISTEN_ADDR=0.0.0.0: the invokers serve on
//     the pod's IP, where the Service and the kubelet's probes reach them.
//   - CronJobs and dispatchers run ferry's image with arguments only
//     (fire ..., dispatch ...): its entrypoint is ferry.
//   - Names come from a repository, so a child's name may already be
//     taken: by the operator's object (a Service, an Ingress) or another
//     of ferry's (Function nats-x and NATSTrigger x's dispatcher). The
//     controller takes over and deletes only objects whose controller
//     owner is the parent; any other is its parent's failure, by name.
//   - Every pod's /tmp is a memory emptyDir bounded by the function's
//     memory (64Mi for ferry's own pods), as the embedded target's is; a
//     Function beyond the bounds a release is validated against
//     (scale.max, memory, timeout) is Stalled.
//   - What the controller may do is ClusterRules and LeaderElectionRules;
//     a test runs it as a user granted those and nothing more.
package controller
