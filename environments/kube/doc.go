// Package kube is the Kubernetes target: a Release becomes Function and
// trigger objects in a namespace of a cluster, applied server-side with
// client-go (field manager "ferry") and pruned by label, and the
// in-cluster controller (kube/controller) makes them run.
//
// Decisions:
//   - One environment per namespace. The environment's ConfigMap claims
//     the namespace; a second environment configured into it is refused,
//     since the two would apply over each other's objects.
//   - The inventory is the labels: everything ferry applies for an
//     environment carries its name and the release's, so pruning is one
//     list per kind, and nothing is kept outside the cluster.
//   - What the target cannot run is refused before anything changes, all
//     reasons at once: scale.min 0, an image that needs the host's
//     interpreter, a secret the environment lacks.
//   - Readiness is the controller's word: Apply waits on each Function's
//     Ready condition for the generation it applied and on status.image,
//     and a Stalled one ends the wait at once.
//   - Without a gateway URL, ferry plays the gateway for its own calls
//     (verification, ferry invoke): it routes by the HTTPTriggers as the
//     embedded gateway does and reaches a ready pod through a
//     port-forward, websocket first and SPDY where the API server wants
//     it, as kubectl does.
package kube
