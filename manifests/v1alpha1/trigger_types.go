package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// FunctionTarget says which functions a trigger calls: one by name, or every
// function whose labels match a selector (fan-out). Exactly one is set.
type FunctionTarget struct {
	// Function is the name of the function to call.
	// +optional
	Function string `json:"function,omitempty"`
	// FunctionSelector calls every function whose labels match.
	// +optional
	FunctionSelector *metav1.LabelSelector `json:"functionSelector,omitempty"`
}

// TriggerStatus is what a controller observed of any trigger.
type TriggerStatus struct {
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Functions the trigger resolved to, sorted.
	// +optional
	Functions []string `json:"functions,omitempty"`
	// Conditions: Ready, Reconciling, Stalled.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// HTTPTriggerSpec routes requests on a path of the environment's gateway to a
// function.
type HTTPTriggerSpec struct {
	FunctionTarget `json:",inline"`

	// Environments the trigger runs in. Default: every environment the
	// release is deployed to, so a nightly job that must run once names
	// its environment ([prod]).
	// +optional
	Environments []string `json:"environments,omitempty"`
	// Path is matched exactly, after removing a trailing slash. It starts
	// with "/".
	// +kubebuilder:validation:Pattern=`^/`
	Path string `json:"path"`
	// Methods the trigger answers; empty means every method. Two triggers
	// may share a path only when their methods do not overlap.
	// +optional
	Methods []string `json:"methods,omitempty"`
}

// HTTPTrigger calls a function for each HTTP request on a path.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Path",type=string,JSONPath=`.spec.path`
// +kubebuilder:printcolumn:name="Function",type=string,JSONPath=`.spec.function`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type HTTPTrigger struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   HTTPTriggerSpec `json:"spec"`
	Status TriggerStatus   `json:"status,omitempty"`
}

// HTTPTriggerList is a list of HTTPTriggers.
//
// +kubebuilder:object:root=true
type HTTPTriggerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []HTTPTrigger `json:"items"`
}

// CronTriggerSpec calls functions on a schedule.
type CronTriggerSpec struct {
	FunctionTarget `json:",inline"`

	// Environments the trigger runs in. Default: every environment the
	// release is deployed to, so a nightly job that must run once names
	// its environment ([prod]).
	// +optional
	Environments []string `json:"environments,omitempty"`
	// Schedule in cron form: five fields ("0 3 * * *") or a descriptor
	// (@hourly, @daily, @every 5m).
	Schedule string `json:"schedule"`
	// TimeZone of the schedule, an IANA name. Default UTC, so a schedule
	// means the same on every host.
	// +optional
	TimeZone string `json:"timeZone,omitempty"`
	// Data is the event's data, sent as JSON.
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	// +optional
	Data *runtime.RawExtension `json:"data,omitempty"`
}

// CronTrigger calls functions on a schedule.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Schedule",type=string,JSONPath=`.spec.schedule`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type CronTrigger struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   CronTriggerSpec `json:"spec"`
	Status TriggerStatus   `json:"status,omitempty"`
}

// CronTriggerList is a list of CronTriggers.
//
// +kubebuilder:object:root=true
type CronTriggerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []CronTrigger `json:"items"`
}

// TopicTriggerSpec is the shape shared by the message triggers: which
// functions, which topic (a NATS subject or a Kafka topic), which consumer
// group, and how failures are retried.
type TopicTriggerSpec struct {
	FunctionTarget `json:",inline"`

	// Environments the trigger runs in. Default: every environment the
	// release is deployed to, so a nightly job that must run once names
	// its environment ([prod]).
	// +optional
	Environments []string `json:"environments,omitempty"`
	// Topic is the Kafka topic or NATS subject (NATS wildcards allowed).
	Topic string `json:"topic"`
	// Group is the Kafka consumer group or NATS queue group, so that each
	// message is handled once per environment. Default: derived from the
	// environment and the trigger's name, so dev and prod never share one.
	// +optional
	Group string `json:"group,omitempty"`
	// Retry says how a message whose call failed is retried.
	// +optional
	Retry *RetryPolicy `json:"retry,omitempty"`
}

// RetryPolicy retries a failed call with exponential backoff.
type RetryPolicy struct {
	// Attempts in all, the first one included. Default 5.
	// +kubebuilder:validation:Minimum=1
	// +optional
	Attempts *int32 `json:"attempts,omitempty"`
	// Backoff before the first retry; it doubles on each retry. Default 1s.
	// +optional
	Backoff *metav1.Duration `json:"backoff,omitempty"`
	// MaxBackoff caps the backoff. Default 1m.
	// +optional
	MaxBackoff *metav1.Duration `json:"maxBackoff,omitempty"`
}

// NATSTrigger calls functions for each message on a NATS subject.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Topic",type=string,JSONPath=`.spec.topic`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type NATSTrigger struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   TopicTriggerSpec `json:"spec"`
	Status TriggerStatus    `json:"status,omitempty"`
}

// NATSTriggerList is a list of NATSTriggers.
//
// +kubebuilder:object:root=true
type NATSTriggerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []NATSTrigger `json:"items"`
}

// Where a Kafka consumer group with no committed offset starts.
const (
	OffsetLatest   = "latest"
	OffsetEarliest = "earliest"
)

// KafkaTriggerSpec is a TopicTriggerSpec plus where a new group starts.
type KafkaTriggerSpec struct {
	TopicTriggerSpec `json:",inline"`
	// InitialOffset is where a group with no committed offset starts:
	// latest (default) or earliest.
	// +kubebuilder:validation:Enum=latest;earliest
	// +optional
	InitialOffset string `json:"initialOffset,omitempty"`
}

// KafkaTrigger calls functions for each record on a Kafka topic.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Topic",type=string,JSONPath=`.spec.topic`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type KafkaTrigger struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   KafkaTriggerSpec `json:"spec"`
	Status TriggerStatus    `json:"status,omitempty"`
}

// KafkaTriggerList is a list of KafkaTriggers.
//
// +kubebuilder:object:root=true
type KafkaTriggerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []KafkaTrigger `json:"items"`
}

// RunsIn reports whether a trigger with environments envs runs in env:
// every environment when envs is empty.
func RunsIn(envs []string, env string) bool {
	if len(envs) == 0 {
		return true
	}
	for _, e := range envs {
		if e == env {
			return true
		}
	}
	return false
}
