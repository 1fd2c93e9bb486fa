package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The runtimes ferry builds and runs.
const (
	RuntimeGo     = "go"
	RuntimePython = "python"
	RuntimeNodeJS = "nodejs"
)

// Runtimes lists the supported runtimes in the order error messages name them.
var Runtimes = []string{RuntimeGo, RuntimePython, RuntimeNodeJS}

// FunctionSpec is what a team declares about one unit of code.
type FunctionSpec struct {
	// Runtime is the language the function is written in.
	// +kubebuilder:validation:Enum=go;python;nodejs
	Runtime string `json:"runtime"`

	// Handler names the entry point. python: "<module>.<function>" (default
	// main.handle); nodejs: "<file>.<export>" (default index.handler); go: the
	// exported function of the package in Source (default Handle).
	// +optional
	Handler string `json:"handler,omitempty"`

	// Source is the function's folder, relative to the repository root.
	// It must stay inside the repository. Default ".".
	// +optional
	Source string `json:"source,omitempty"`

	// Env is set in the function's environment. Names ferry sets itself
	// (PORT, FUNCTION_*, K_*) are refused. A value is a string, or
	// {valueFrom: {secret: NAME}} for a secret of the environment the
	// function runs in, which ferry reads when it deploys.
	// +optional
	Env map[string]EnvValue `json:"env,omitempty"`

	// Timeout bounds one invocation; a call that runs longer gets 504.
	// Default 30s, at most 15m.
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`

	// Memory is the memory limit of one instance. Default 128Mi.
	// +optional
	Memory *resource.Quantity `json:"memory,omitempty"`

	// Scale bounds the number of instances.
	// +optional
	Scale *Scale `json:"scale,omitempty"`

	// Test runs in the pipeline after the build, in a scratch copy of Source.
	// +optional
	Test *TestSpec `json:"test,omitempty"`

	// Image is the function's image, pinned by digest
	// (HOST/REPO/NAME@sha256:...). ferry sets it when it makes a release; a
	// repository's manifest leaves it out, since ferry builds the image.
	// +optional
	Image string `json:"image,omitempty"`
}

// Scale bounds how many instances of a function run, and how many requests
// each may serve at once.
type Scale struct {
	// Min instances kept running; 0 lets the function scale to zero.
	// +kubebuilder:validation:Minimum=0
	// +optional
	Min *int32 `json:"min,omitempty"`
	// Max instances. Default 10.
	// +kubebuilder:validation:Minimum=1
	// +optional
	Max *int32 `json:"max,omitempty"`
	// Concurrency is the number of requests one instance serves at once;
	// more wait, and the gateway answers 429 when the queue is full.
	// Default 100.
	// +kubebuilder:validation:Minimum=1
	// +optional
	Concurrency *int32 `json:"concurrency,omitempty"`
}

// TestSpec is a function's own test, run by the pipeline before a release.
type TestSpec struct {
	// Command runs with the function's Source as working directory.
	// +kubebuilder:validation:MinItems=1
	Command []string `json:"command"`
	// Timeout of the whole test. Default 10m.
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// Env is added to the test's environment.
	// +optional
	Env map[string]string `json:"env,omitempty"`
}

// FunctionStatus is what a controller observed of a Function.
type FunctionStatus struct {
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Image is the running image, by digest.
	// +optional
	Image string `json:"image,omitempty"`
	// Digest is the running image's digest, shortened to 12 hex digits
	// for the printer column (kubectl get functions).
	// +optional
	Digest string `json:"digest,omitempty"`
	// URL reaches the function through the gateway.
	// +optional
	URL string `json:"url,omitempty"`
	// Replicas is the number of instances running.
	// +optional
	Replicas int32 `json:"replicas,omitempty"`
	// Conditions: Ready, Reconciling, Stalled (ConditionReady and the
	// others in conditions.go).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// Function is a unit of code that ferry builds into an image and runs.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=fn
// +kubebuilder:printcolumn:name="Runtime",type=string,JSONPath=`.spec.runtime`
// +kubebuilder:printcolumn:name="Digest",type=string,JSONPath=`.status.digest`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`,priority=1
// +kubebuilder:printcolumn:name="Image",type=string,JSONPath=`.status.image`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Function struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   FunctionSpec   `json:"spec"`
	Status FunctionStatus `json:"status,omitempty"`
}

// FunctionList is a list of Functions.
//
// +kubebuilder:object:root=true
type FunctionList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Function `json:"items"`
}
