package install

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/ferrycd/ferry/environments/kube"
	"github.com/ferrycd/ferry/internal/kubetest"
)

// TestApply installs on a real API server, in a namespace of the test's
// own, twice: every object is there, owned by ferry's field manager, and
// the second apply changes nothing. A user who is no administrator is
// told what install needs.
func TestApply(t *testing.T) {
	c := kubetest.Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	objs, err := Objects(Options{Namespace: "ferry-test", Image: testImage})
	if err != nil {
		t.Fatal(err)
	}
	var applied []string
	if err := Apply(ctx, c.Config, objs, 0, func(kind, name string) { applied = append(applied, kind+" "+name) }); err != nil {
		t.Fatal(err)
	}
	if len(applied) != len(objs) {
		t.Errorf("reported %d objects applied, want %d: %v", len(applied), len(objs), applied)
	}
	dyn, err := dynamic.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	deployments := dyn.Resource(schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}).Namespace("ferry-test")
	d, err := deployments.Get(ctx, ControllerName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if mf := d.GetManagedFields(); len(mf) != 1 || mf[0].Manager != kube.FieldManager || mf[0].Operation != metav1.ManagedFieldsOperationApply {
		t.Errorf("the Deployment's managed fields: %+v, want one apply by %s", mf, kube.FieldManager)
	}
	crd, err := dyn.Resource(crdResource).Get(ctx, "functions.ferry.dev", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !established(crd) {
		t.Error("functions.ferry.dev is not Established after Apply")
	}

	if err := Apply(ctx, c.Config, objs, 0, nil); err != nil {
		t.Fatal(err)
	}
	again, err := deployments.Get(ctx, ControllerName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if again.GetResourceVersion() != d.GetResourceVersion() {
		t.Errorf("a second Apply changed the Deployment (resourceVersion %s → %s)", d.GetResourceVersion(), again.GetResourceVersion())
	}

	nobody := rest.CopyConfig(c.Config)
	nobody.Impersonate = rest.ImpersonationConfig{UserName: "developer"}
	err = Apply(ctx, nobody, objs, 0, nil)
	if err == nil || !strings.Contains(err.Error(), "cluster administrator") {
		t.Errorf("Apply as a user with no rights: %v, want a message that install needs a cluster administrator", err)
	}
}
