package manifests

import (
	"fmt"
	"regexp"
	"slices"

	"k8s.io/apimachinery/pkg/api/validate/content"

	"github.com/ferrycd/ferry/manifests/v1alpha1"
)

// secretNameRE is what a secret's name may be: like a variable's name, plus
// '-' and '.', so that both DB_PASSWORD and db-password work. It is a path
// segment of the API and never needs quoting in a shell.
var secretNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,62}$`)

// SecretNameProblem says what is wrong with a secret's name, or "" when
// nothing is. The server checks names given to ferry secrets with it, the
// validator names in valueFrom, so both accept the same.
func SecretNameProblem(name string) string {
	switch {
	case name == "":
		return "a secret needs a name"
	case !secretNameRE.MatchString(name):
		return fmt.Sprintf("%q is not a valid secret name; use at most 63 letters, digits, '_', '-' and '.', starting with a letter or '_' (such as DB_PASSWORD or db-password)", name)
	}
	return ""
}

// EnvironmentNameProblem says what is wrong with an environment's name as a
// trigger's environments list gives it, or "" when nothing is. The rule is
// a pipeline stage's: a DNS-1123 label.
func EnvironmentNameProblem(name string) string {
	if name == "" {
		return "an empty environment name; name an environment such as prod"
	}
	if len(content.IsDNS1123Label(name)) > 0 {
		return fmt.Sprintf("%q is not a valid environment name; %s", name, nameRule(name))
	}
	return ""
}

// envValue checks one variable of a function's env: a string, or a
// reference to a secret with a valid name; never both.
func (v *validator) envValue(f *v1alpha1.Function, field string, e v1alpha1.EnvValue) {
	// A mistake inside valueFrom was reported while decoding; what it left
	// blank is not a second mistake.
	if e.ValueFrom == nil || v.set.Origin(f).reported(field+".valueFrom") {
		return
	}
	if e.Value != "" {
		v.errorf(f, field, "has both value and valueFrom; keep value for a plain string or valueFrom for a secret, not both")
		return
	}
	if e.ValueFrom.Secret == "" {
		v.errorf(f, field+".valueFrom.secret", "missing; name the secret (set it with: ferry secrets set ENV NAME)")
		return
	}
	if p := SecretNameProblem(e.ValueFrom.Secret); p != "" {
		v.errorf(f, field+".valueFrom.secret", "%s", p)
	}
}

// triggerEnvironments checks a trigger's environments list. Only the
// names' form is checked: which environments exist is the server's
// configuration, which a repository does not know (and which may differ
// between two servers running the same repository), so a name that
// matches none is the server's to warn about at deploy, not an error here.
func (v *validator) triggerEnvironments(t Object, envs []string) {
	for i, e := range envs {
		field := fmt.Sprintf("spec.environments[%d]", i)
		if p := EnvironmentNameProblem(e); p != "" {
			v.errorf(t, field, "%s", p)
			continue
		}
		if j := slices.Index(envs, e); j < i {
			v.errorf(t, field, "%q is listed twice; remove one", e)
		}
	}
}
