package controller

import (
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/ferrycd/ferry/manifests/v1alpha1"
)

// ClusterRules are what the controller may do in the namespaces it
// watches (a ClusterRole, or a Role per namespace with --namespace):
// read ferry's objects and write their status; make, change and delete
// the kinds it makes (apply is patch); read pods for their waiting
// reasons and the environment's ConfigMap; record events. `ferry install`
// grants exactly these, and a test runs the controller with nothing
// more.
func ClusterRules() []rbacv1.PolicyRule {
	write := []string{"get", "list", "watch", "create", "update", "patch", "delete"}
	read := []string{"get", "list", "watch"}
	return []rbacv1.PolicyRule{
		{APIGroups: []string{v1alpha1.Group}, Resources: []string{"functions", "httptriggers", "crontriggers", "natstriggers", "kafkatriggers"}, Verbs: read},
		{APIGroups: []string{v1alpha1.Group}, Resources: []string{"functions/status", "httptriggers/status", "crontriggers/status", "natstriggers/status", "kafkatriggers/status"}, Verbs: []string{"get", "update", "patch"}},
		// Owner references that block the owner's deletion need this where
		// the OwnerReferencesPermissionEnforcement admission plugin runs.
		{APIGroups: []string{v1alpha1.Group}, Resources: []string{"functions/finalizers", "httptriggers/finalizers", "crontriggers/finalizers", "natstriggers/finalizers", "kafkatriggers/finalizers"}, Verbs: []string{"update"}},
		{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: write},
		{APIGroups: []string{""}, Resources: []string{"services", "configmaps"}, Verbs: write},
		// A Function's pods say why a rollout is stuck (ImagePullBackOff).
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: read},
		{APIGroups: []string{"autoscaling"}, Resources: []string{"horizontalpodautoscalers"}, Verbs: write},
		{APIGroups: []string{"batch"}, Resources: []string{"cronjobs"}, Verbs: write},

		{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"ingresses"}, Verbs: write},
		{APIGroups: []string{"gateway.networking.k8s.io"}, Resources: []string{"httproutes"}, Verbs: write},
		{APIGroups: []string{"events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"create", "update", "patch"}},
	}
}

// LeaderElectionRules are what --leader-elect needs in the Lease's
// namespace (a Role there): the Lease, which client-go reads, creates and
// renews, and the events it records about it (core/v1).
func LeaderElectionRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "create", "update"}},
		{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
	}
}
