package controller

import (
	"reflect"
	"sort"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/ferrycd/ferry/environments/kube/install"
)

// TestInstallGrantsTheseRules: `ferry install` grants what the controller
// was tested with (TestSecondCluster), no more and no less.
func TestInstallGrantsTheseRules(t *testing.T) {
	for _, c := range []struct {
		what             string
		install, control []rbacv1.PolicyRule
	}{
		{"cluster", install.Rules(), ClusterRules()},
		{"lease", install.LeaseRules(), LeaderElectionRules()},
	} {
		if got, want := grants(c.install), grants(c.control); !reflect.DeepEqual(got, want) {
			t.Errorf("%s rules: install grants\n%v\nthe controller needs\n%v", c.what, got, want)
		}
	}
}

// grants flattens rules into sorted group/resource/verb triples.
func grants(rules []rbacv1.PolicyRule) []string {
	var out []string
	for _, r := range rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					out = append(out, g+"/"+res+":"+v)
				}
			}
		}
	}
	sort.Strings(out)
	return out
}
