package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Group and Version name the API every ferry object belongs to.
const (
	Group   = "ferry.dev"
	Version = "v1alpha1"
)

// GroupVersion is ferry.dev/v1alpha1; APIVersion is its string form as it
// appears in a manifest.
var (
	GroupVersion = schema.GroupVersion{Group: Group, Version: Version}
	APIVersion   = GroupVersion.String()
)

// The kinds a manifest may hold.
const (
	KindFunction     = "Function"
	KindHTTPTrigger  = "HTTPTrigger"
	KindCronTrigger  = "CronTrigger"
	KindNATSTrigger  = "NATSTrigger"
	KindKafkaTrigger = "KafkaTrigger"
	KindPipeline     = "Pipeline"
)

// Kinds lists every kind in the order a rendered manifest sorts them:
// functions first, because everything else refers to them.
var Kinds = []string{KindFunction, KindHTTPTrigger, KindCronTrigger, KindNATSTrigger, KindKafkaTrigger, KindPipeline}

var (
	// SchemeBuilder registers the types with a runtime.Scheme; the
	// Kubernetes target uses it, the loader does not need it.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)
	// AddToScheme adds ferry's types to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&Function{}, &FunctionList{},
		&HTTPTrigger{}, &HTTPTriggerList{},
		&CronTrigger{}, &CronTriggerList{},
		&NATSTrigger{}, &NATSTriggerList{},
		&KafkaTrigger{}, &KafkaTriggerList{},
		&Pipeline{}, &PipelineList{},
	)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
