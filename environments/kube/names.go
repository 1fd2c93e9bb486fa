package kube

// Labels and annotations ferry puts on what it applies, and the
// controller on what it makes. The target prunes by them, the
// controller selects pods by them, and `kubectl get -l` finds them.
const (
	// LabelManagedBy is the standard label; its value is ManagedBy.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	ManagedBy      = "ferry"
	// LabelEnvironment is the ferry environment an object belongs to.
	LabelEnvironment = "ferry.dev/environment"
	// LabelRelease is the release an object came from: the release
	// digest's first 40 hex digits (a label value holds at most 63
	// characters); AnnotationRelease holds the whole digest.
	LabelRelease      = "ferry.dev/release"
	AnnotationRelease = "ferry.dev/release-digest"
	// LabelFunction is on a function's Deployment, its pods and its
	// Service selector: the name of the Function.
	LabelFunction = "ferry.dev/function"
	// FieldManager is the field manager of ferry's server-side applies.
	FieldManager = "ferry"
	// FunctionPort is the port a function's container listens on (its
	// PORT), and ServicePort the port of its Service.
	FunctionPort = 8080
	ServicePort  = 80
)

// ReleaseLabel is the value of LabelRelease for a release digest
// (sha256:HEX).
func ReleaseLabel(digest string) string {
	const prefix = "sha256:"
	if len(digest) > len(prefix) && digest[:len(prefix)] == prefix {
		digest = digest[len(prefix):]
	}
	if len(digest) > 40 {
		digest = digest[:40]
	}
	return digest
}

// What the target writes into an environment's namespace beside the
// release's objects, and the controller reads.
const (
	// SecretName is the Secret holding the environment's secrets that
	// the release's functions reference (spec.env.X.valueFrom.secret:
	// NAME is the key NAME in it); the controller makes each such
	// variable a secretKeyRef into it, so no secret is in a Deployment.
	SecretName = "ferry-secrets"
	// ConfigMapName is the environment's settings for the controller.
	ConfigMapName = "ferry-environment"
	// Keys of ConfigMapName.
	KeyEnvironment  = "environment"  // the ferry environment's name
	KeyNATSURL      = "natsURL"      // where NATS triggers connect
	KeyKafkaBrokers = "kafkaBrokers" // comma-separated
	// KeyGateway is NAMESPACE/NAME of the Gateway that HTTPRoutes attach
	// to; KeyIngressClass, when set, makes Ingresses of that class
	// instead of HTTPRoutes.
	KeyGateway      = "gateway"
	KeyIngressClass = "ingressClass"
	// KeyHost is the host name the environment's HTTP triggers answer
	// on (Config.GatewayURL's): its HTTPRoutes and Ingresses match only
	// it, so on a Gateway or ingress class that environments share, a
	// preview's route never answers on prod's host.
	KeyHost = "host"
	// KeyImage is ferry's own image (by digest), which CronJobs
	// (`ferry fire`) and dispatcher Deployments (`ferry dispatch`) run;
	// empty means the controller's own --image.
	KeyImage = "image"
)
