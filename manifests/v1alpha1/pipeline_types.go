package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// DefaultPipelineName is the name of a Pipeline written without metadata,
// and of the pipeline ferry uses when a repository declares none.
const DefaultPipelineName = "default"

// PipelineSpec says how a release moves through environments.
type PipelineSpec struct {
	// Stages in order. The first receives every new release; each other
	// stage receives a release once it succeeded in every stage of its From
	// (by default, the stage listed before it).
	// +kubebuilder:validation:MinItems=1
	Stages []Stage `json:"stages"`
	// Previews configures an environment per pull request.
	// +optional
	Previews *Previews `json:"previews,omitempty"`
}

// Stage is one environment on a release's way to production.
type Stage struct {
	// Name of the environment (dev, staging, prod).
	Name string `json:"name"`
	// From lists the stages a release must have succeeded in before it may
	// come here. Default: the stage listed before this one.
	// +optional
	From []string `json:"from,omitempty"`
	// Auto promotes a release here as soon as it may come, with no approval.
	// +optional
	Auto bool `json:"auto,omitempty"`
	// Approval makes a release wait for approvals before it is deployed.
	// A stage has Auto or Approval, not both.
	// +optional
	Approval *ApprovalPolicy `json:"approval,omitempty"`
	// Verify runs after each deploy; a failed check rolls the stage back.
	// +optional
	Verify []Check `json:"verify,omitempty"`
	// Soak is how long the checks keep running after a deploy before the
	// release counts as succeeded. Default 0: each check runs once.
	// +optional
	Soak *metav1.Duration `json:"soak,omitempty"`
}

// ApprovalPolicy is who must say yes before a release enters a stage.
type ApprovalPolicy struct {
	// Required approvals. Default 1.
	// +kubebuilder:validation:Minimum=1
	// +optional
	Required *int32 `json:"required,omitempty"`
	// Approvers allowed to approve: user names, or "group:<name>". Empty
	// means anyone with the approver role.
	// +optional
	Approvers []string `json:"approvers,omitempty"`
	// SelfApproval lets the requester and the commit author approve.
	// Default false.
	// +optional
	SelfApproval bool `json:"selfApproval,omitempty"`
	// ExpireAfter drops an approval older than this. Default: never.
	// +optional
	ExpireAfter *metav1.Duration `json:"expireAfter,omitempty"`
}

// Check is one verification. Exactly one of HTTP and Event is set.
type Check struct {
	// Name shown in the promotion's record. Default: derived from the check.
	// +optional
	Name string `json:"name,omitempty"`
	// HTTP calls a path of the environment's gateway.
	// +optional
	HTTP *HTTPCheck `json:"http,omitempty"`
	// Event invokes a function with a CloudEvent.
	// +optional
	Event *EventCheck `json:"event,omitempty"`
}

// HTTPCheck requests a path through the gateway and checks the answer.
type HTTPCheck struct {
	// Path of an HTTPTrigger.
	Path string `json:"path"`
	// Method of the request. Default GET.
	// +optional
	Method string `json:"method,omitempty"`
	// Headers added to the request.
	// +optional
	Headers map[string]string `json:"headers,omitempty"`
	// Body of the request.
	// +optional
	Body string `json:"body,omitempty"`
	// ExpectStatus is the status the answer must have. Default 200.
	// +optional
	ExpectStatus int32 `json:"expectStatus,omitempty"`
	// BodyContains must appear in the answer's body.
	// +optional
	BodyContains string `json:"bodyContains,omitempty"`
	// JSONPath selects a value of the JSON answer ("$.status"), which must
	// equal Equals.
	// +optional
	JSONPath string `json:"jsonPath,omitempty"`
	// Equals is the JSON value JSONPath must select.
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	// +optional
	Equals *runtime.RawExtension `json:"equals,omitempty"`
	// MaxLatency fails an answer slower than this.
	// +optional
	MaxLatency *metav1.Duration `json:"maxLatency,omitempty"`
}

// EventCheck invokes a function with a CloudEvent and checks the answer.
type EventCheck struct {
	// Function to invoke.
	Function string `json:"function"`
	// Type is the event's ce-type. Default dev.ferry.verify.
	// +optional
	Type string `json:"type,omitempty"`
	// Data is the event's data, sent as JSON.
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	// +optional
	Data *runtime.RawExtension `json:"data,omitempty"`
	// ExpectStatus is the status the answer must have. Default 200.
	// +optional
	ExpectStatus int32 `json:"expectStatus,omitempty"`
	// BodyContains must appear in the answer's body.
	// +optional
	BodyContains string `json:"bodyContains,omitempty"`
}

// Previews configures the environment ferry makes for each pull request.
type Previews struct {
	// Enabled turns previews on. Default false: previews run pull
	// requests' code, so a repository turns them on.
	// +optional
	Enabled *bool `json:"enabled,omitempty"`
	// TTL deletes a preview this long after its last push, even if its pull
	// request stays open. Default 72h.
	// +optional
	TTL *metav1.Duration `json:"ttl,omitempty"`
}

// PipelineStatus is what ferry observed of a Pipeline.
type PipelineStatus struct {
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// Pipeline says how releases of a repository move between environments.
// A repository has at most one; without one, ferry uses dev (auto), staging
// (auto) and prod (one approval).
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
type Pipeline struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   PipelineSpec   `json:"spec"`
	Status PipelineStatus `json:"status,omitempty"`
}

// PipelineList is a list of Pipelines.
//
// +kubebuilder:object:root=true
type PipelineList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Pipeline `json:"items"`
}
