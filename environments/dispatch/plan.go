package dispatch

import "github.com/ferrycd/ferry/manifests/v1alpha1"

// Plan is what one dispatcher process runs (`ferry dispatch --plan FILE`):
// the message triggers of one environment and where their functions
// answer. On Kubernetes the controller writes it as JSON into a ConfigMap
// that the dispatcher Deployment mounts, so the dispatcher needs no
// access to the API server.
type Plan struct {
	// Environment is the environment the triggers run in, for the events'
	// source and the logs.
	Environment string `json:"environment"`
	// NATSURL and KafkaBrokers are where the triggers connect.
	NATSURL      string   `json:"natsURL,omitempty"`
	KafkaBrokers []string `json:"kafkaBrokers,omitempty"`
	// NATSTriggers and KafkaTriggers are the triggers, as in the release.
	NATSTriggers  []v1alpha1.NATSTrigger  `json:"natsTriggers,omitempty"`
	KafkaTriggers []v1alpha1.KafkaTrigger `json:"kafkaTriggers,omitempty"`
	// Functions maps each function a trigger may call to the base URL
	// that answers it (http://NAME.NAMESPACE.svc:80 in a cluster).
	Functions map[string]string `json:"functions"`
	// FunctionLabels are the functions' labels, for triggers that select
	// their functions by label.
	FunctionLabels map[string]map[string]string `json:"functionLabels,omitempty"`
}
