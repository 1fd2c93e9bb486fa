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
//     exactly, with or without one trailing slash.
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
package controller
