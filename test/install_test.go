package test

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/ferrycd/ferry/internal/kubetest"
	"github.com/ferrycd/ferry/test/testreg"
)

// controllerSA is the controller's ServiceAccount as the API server names
// it in a SubjectAccessReview.
const controllerSA = "system:serviceaccount:ferry-system:ferry-controller"

// pinned is an image reference by digest that no registry needs to hold:
// installing only names it.
const pinned = "registry.example.com/ferry@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// kubectl runs the cluster's kubectl as its administrator, with stdin,
// and returns its output and error.
func kubectl(t *testing.T, c *kubetest.Cluster, stdin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(c.Bin, "kubectl"), append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil && errb.Len() > 0 {
		t.Logf("kubectl %s: %s", strings.Join(args, " "), errb.String())
	}
	return out.String(), err
}

// mustKubectl is kubectl that fails the test when kubectl fails.
func mustKubectl(t *testing.T, c *kubetest.Cluster, stdin string, args ...string) string {
	t.Helper()
	out, err := kubectl(t, c, stdin, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// versions lists KIND/NAME=RESOURCEVERSION of every object of a YAML
// stream as the API server holds it.
func versions(t *testing.T, c *kubetest.Cluster, manifests string) []string {
	t.Helper()
	out := mustKubectl(t, c, manifests, "get", "-f", "-", "-o",
		`jsonpath={range .items[*]}{.kind}/{.metadata.namespace}/{.metadata.name}={.metadata.resourceVersion}{"\n"}{end}`)
	return strings.Fields(out)
}

// TestInstallDryRunApplies: what `ferry install --dry-run -o yaml`
// prints, a real API server accepts through kubectl, every object is
// there after, and applying it again changes nothing.
func TestInstallDryRunApplies(t *testing.T) {
	// why: its own API server (or node) and ports; it overlaps the others.
	t.Parallel()
	c := kubetest.Start(t)
	r := ferry(t, "install", "--dry-run", "-o", "yaml", "--image", pinned)
	if r.code != 0 {
		t.Fatalf("ferry install --dry-run: exit %d\n%s", r.code, r.stderr)
	}
	if again := ferry(t, "install", "--dry-run", "-o", "yaml", "--image", pinned); again.stdout != r.stdout {
		t.Fatal("two dry runs printed different YAML")
	}
	mustKubectl(t, c, r.stdout, "apply", "--server-side", "-f", "-")
	first := versions(t, c, r.stdout)
	if len(first) != 12 {
		t.Fatalf("kubectl found %d objects, want 12 (5 CRDs, namespace, service account, 4 RBAC, deployment):\n%s", len(first), strings.Join(first, "\n"))
	}
	var kinds []string
	for _, v := range first {
		kinds = append(kinds, v[:strings.IndexByte(v, '/')])
	}
	for _, k := range []string{"CustomResourceDefinition", "Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Deployment"} {
		if !slices.Contains(kinds, k) {
			t.Errorf("no %s among the objects applied: %v", k, kinds)
		}
	}
	mustKubectl(t, c, r.stdout, "apply", "--server-side", "-f", "-")
	if second := versions(t, c, r.stdout); !slices.Equal(first, second) {
		t.Errorf("a second apply changed objects:\nbefore %v\nafter  %v", first, second)
	}
}

// TestInstallLeastPrivilege installs for real through a kubeconfig and
// context, then asks the API server what the controller's ServiceAccount
// may do: what it needs, and nothing else.
func TestInstallLeastPrivilege(t *testing.T) {
	// why: its own API server (or node) and ports; it overlaps the others.
	t.Parallel()
	c := kubetest.Start(t)
	args := []string{"install", "--kubeconfig", c.Kubeconfig, "--context", "envtest", "--image", pinned}
	r := ferry(t, args...)
	if r.code != 0 {
		t.Fatalf("ferry install: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "installed") {
		t.Errorf("ferry install printed %q", r.stdout)
	}
	if got := mustKubectl(t, c, "", "get", "crd", "functions.ferry.dev", "-o", `jsonpath={.status.conditions[?(@.type=="Established")].status}`); got != "True" {
		t.Errorf("functions.ferry.dev Established = %q", got)
	}
	dep := mustKubectl(t, c, "", "get", "deployment", "-n", "ferry-system", "ferry-controller", "-o",
		`jsonpath={.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].args} {.metadata.managedFields[0].manager}`)
	if !strings.HasPrefix(dep, pinned+" ") || !strings.Contains(dep, `"--image=`+pinned+`"`) || !strings.HasSuffix(dep, " ferry") {
		t.Errorf("the controller Deployment: %s; want image and --image %s, field manager ferry", dep, pinned)
	}
	// why: the items' versions, sorted; the list kubectl merges from three
	// kinds has an empty version of its own whose place in the output varies.
	rvs := func() string {
		out := strings.Fields(mustKubectl(t, c, "", "get", "deployment,clusterrole,role", "-A", "-l", "app.kubernetes.io/name=ferry-controller", "-o", "jsonpath={..resourceVersion}"))
		slices.Sort(out)
		return strings.Join(out, " ")
	}
	before := rvs()
	if r := ferry(t, args...); r.code != 0 {
		t.Fatalf("ferry install again: exit %d\n%s", r.code, r.stderr)
	}
	if after := rvs(); after != before || len(strings.Fields(before)) < 3 {
		t.Errorf("installing again changed the objects: %s → %s", before, after)
	}

	// SubjectAccessReviews through kubectl, rather than kubectl auth
	// can-i, which needs each resource served: no Gateway API CRDs are
	// installed here, and the controller's rule for HTTPRoutes is still
	// asked about.
	for _, tc := range []struct {
		can                                           bool
		verb, group, resource, subresource, namespace string
	}{
		{true, "patch", "apps", "deployments", "", "default"},
		{true, "watch", "apps", "deployments", "", ""},
		{true, "create", "", "services", "", "team-a"},
		{true, "delete", "batch", "cronjobs", "", "team-a"},
		{true, "patch", "autoscaling", "horizontalpodautoscalers", "", "team-a"},
		{true, "patch", "gateway.networking.k8s.io", "httproutes", "", "team-a"},
		{true, "patch", "networking.k8s.io", "ingresses", "", "team-a"},
		{true, "get", "", "configmaps", "", "team-a"},
		{true, "list", "ferry.dev", "functions", "", ""},
		{true, "update", "ferry.dev", "functions", "status", "default"},
		{true, "patch", "ferry.dev", "kafkatriggers", "status", "default"},
		{true, "list", "", "pods", "", "team-a"},
		{true, "create", "events.k8s.io", "events", "", "team-a"},
		{true, "update", "coordination.k8s.io", "leases", "", "ferry-system"},
		{true, "create", "", "events", "", "ferry-system"},

		{false, "get", "", "secrets", "", "default"},
		{false, "list", "", "secrets", "", "ferry-system"},
		{false, "delete", "", "namespaces", "", ""},
		{false, "create", "", "pods", "", "default"},
		{false, "delete", "", "pods", "", "default"},
		{false, "create", "", "pods", "exec", "default"},
		{false, "update", "ferry.dev", "functions", "", "default"},
		{false, "delete", "ferry.dev", "functions", "", "default"},
		{false, "update", "coordination.k8s.io", "leases", "", "default"},
		{false, "create", "rbac.authorization.k8s.io", "clusterroles", "", ""},
		{false, "create", "rbac.authorization.k8s.io", "rolebindings", "", "ferry-system"},
		{false, "delete", "apiextensions.k8s.io", "customresourcedefinitions", "", ""},
		{false, "list", "storage.k8s.io", "storageclasses", "", ""},
		{false, "create", "certificates.k8s.io", "certificatesigningrequests", "", ""},
		{false, "create", "", "serviceaccounts", "token", "ferry-system"},
		{false, "impersonate", "", "users", "", ""},
		{false, "get", "gateway.networking.k8s.io", "gateways", "", "team-a"},
	} {
		review := fmt.Sprintf(`{"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview","spec":{"user":%q,"groups":["system:serviceaccounts","system:serviceaccounts:ferry-system","system:authenticated"],"resourceAttributes":{"verb":%q,"group":%q,"resource":%q,"subresource":%q,"namespace":%q}}}`,
			controllerSA, tc.verb, tc.group, tc.resource, tc.subresource, tc.namespace)
		got := mustKubectl(t, c, review, "create", "-f", "-", "-o", "jsonpath={.status.allowed}") == "true"
		if got != tc.can {
			what := strings.TrimSuffix(tc.resource+"/"+tc.subresource, "/")
			if tc.group != "" {
				what += "." + tc.group
			}
			t.Errorf("can the controller %s %s in namespace %q? %v, want %v", tc.verb, what, tc.namespace, got, tc.can)
		}
	}
}

// TestInstallRefuses: an image not pinned by digest, and a real install
// with no context named.
func TestInstallRefuses(t *testing.T) {
	r := ferry(t, "install", "--dry-run", "-o", "yaml", "--image", "registry.example.com/ferry:latest")
	if r.code == 0 || !strings.Contains(r.stderr, "not pinned by digest") {
		t.Errorf("a tagged image: exit %d, %q", r.code, r.stderr)
	}
	r = ferry(t, "install", "--image", pinned)
	if r.code == 0 || !strings.Contains(r.stderr, "--context") {
		t.Errorf("no --context: exit %d, %q", r.code, r.stderr)
	}
}

// TestKubectlPrinterColumns: kubectl shows a Function's and an
// HTTPTrigger's printer columns, by name and by short name.
func TestKubectlPrinterColumns(t *testing.T) {
	// why: its own API server (or node) and ports; it overlaps the others.
	t.Parallel()
	c := kubetest.Start(t)
	const digest = "sha256:4f2a9c8e1b7d0a3c5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d"
	image := "registry.example.com/team/hello@" + digest
	mustKubectl(t, c, `
apiVersion: ferry.dev/v1alpha1
kind: Function
metadata:
  name: hello
  namespace: default
spec:
  runtime: go
---
apiVersion: ferry.dev/v1alpha1
kind: HTTPTrigger
metadata:
  name: hello-http
  namespace: default
spec:
  path: /hello
  function: hello
`, "apply", "--server-side", "-f", "-")
	now := time.Now().UTC().Format(time.RFC3339)
	mustKubectl(t, c, "", "patch", "function", "hello", "-n", "default", "--subresource=status", "--type=merge", "-p",
		`{"status":{"observedGeneration":1,"image":"`+image+`","digest":"4f2a9c8e1b7d","replicas":1,"conditions":[{"type":"Ready","status":"True","reason":"Succeeded","message":"Deployment/hello-available","observedGeneration":1,"lastTransitionTime":"`+now+`"}]}}`)
	mustKubectl(t, c, "", "patch", "httptrigger", "hello-http", "-n", "default", "--subresource=status", "--type=merge", "-p",
		`{"status":{"observedGeneration":1,"conditions":[{"type":"Ready","status":"True","reason":"Succeeded","message":"routed","observedGeneration":1,"lastTransitionTime":"`+now+`"}]}}`)

	table := func(args ...string) (header, row []string) {
		t.Helper()
		lines := strings.Split(strings.TrimSpace(mustKubectl(t, c, "", append([]string{"get", "-n", "default"}, args...)...)), "\n")
		if len(lines) != 2 {
			t.Fatalf("kubectl get %s printed %d lines, want a header and one row:\n%s", strings.Join(args, " "), len(lines), strings.Join(lines, "\n"))
		}
		return strings.Fields(lines[0]), strings.Fields(lines[1])
	}
	check := func(what string, got, want []string) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Errorf("%s: %q, want %q", what, got, want)
		}
	}
	for _, res := range []string{"functions", "fn", "function.ferry.dev"} {
		header, row := table(res)
		check("kubectl get "+res+" header", header, []string{"NAME", "RUNTIME", "DIGEST", "READY", "AGE"})
		if len(row) == 5 {
			check("kubectl get "+res+" row", row[:4], []string{"hello", "go", "4f2a9c8e1b7d", "True"})
		} else {
			t.Errorf("kubectl get %s row: %q", res, row)
		}
	}
	header, row := table("functions", "-o", "wide")
	check("kubectl get functions -o wide header", header, []string{"NAME", "RUNTIME", "DIGEST", "READY", "STATUS", "IMAGE", "AGE"})
	if len(row) == 7 {
		check("kubectl get functions -o wide row", row[:6], []string{"hello", "go", "4f2a9c8e1b7d", "True", "Deployment/hello-available", image})
	} else {
		t.Errorf("kubectl get functions -o wide row: %q", row)
	}
	header, row = table("httptriggers")
	check("kubectl get httptriggers header", header, []string{"NAME", "PATH", "FUNCTION", "READY", "AGE"})
	if len(row) == 5 {
		check("kubectl get httptriggers row", row[:4], []string{"hello-http", "/hello", "hello", "True"})
	} else {
		t.Errorf("kubectl get httptriggers row: %q", row)
	}
}

var (
	staticOnce sync.Once
	staticBin  string
	staticErr  error
	staticOut  []byte
)

// staticFerry is ferry built as its image needs it: CGO_ENABLED=0 and
// without -race (the tests' own binary has -race, so it is dynamic).
func staticFerry(t *testing.T) string {
	t.Helper()
	staticOnce.Do(func() {
		// Beside the tests' ferry, in the folder TestMain removes.
		staticBin = filepath.Join(filepath.Dir(ferryBin), "ferry-static")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-X main.version=v0.0.0-test", "-o", staticBin, "./cmd/ferry")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		staticOut, staticErr = cmd.CombinedOutput()
	})
	if staticErr != nil {
		t.Fatalf("building a static ferry: %v\n%s", staticErr, staticOut)
	}
	return staticBin
}

// TestImagePush: `ferry image push` of a static ferry gives the same
// digest twice, and the image pulled back by it holds /ferry, which
// runs; the tests' own ferry, built with -race, is refused.
func TestImagePush(t *testing.T) {
	// why: its own API server (or node) and ports; it overlaps the others.
	t.Parallel()
	reg := testreg.Embedded(t, "").Addr
	repo := reg + "/ferry"
	dyn := ferry(t, "image", "push", repo)
	if dyn.code == 0 || !strings.Contains(dyn.stderr, "CGO_ENABLED=0") {
		t.Errorf("pushing a dynamically linked ferry: exit %d, %q; want a refusal that says how to build it", dyn.code, dyn.stderr)
	}

	bin := staticFerry(t)
	push := func() string {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, "image", "push", repo).Output()
		if err != nil {
			t.Fatalf("ferry image push: %v", err)
		}
		return strings.TrimSpace(string(out))
	}
	ref := push()
	if !strings.HasPrefix(ref, repo+"@sha256:") {
		t.Fatalf("ferry image push printed %q, want %s@sha256:...", ref, repo)
	}
	if again := push(); again != ref {
		t.Errorf("pushed twice: %s, then %s", ref, again)
	}
	d, err := name.NewDigest(ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(d, remote.WithContext(t.Context()))
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatalf("the image does not validate: %v", err)
	}
	pulled := extractFile(t, img, "ferry")
	out, err := exec.Command(pulled, "version").Output()
	if err != nil || !strings.Contains(string(out), "v0.0.0-test") {
		t.Errorf("/ferry from the image: %v, %q", err, out)
	}

	// --push pushes and installs the image it pushed.
	r, err := exec.Command(bin, "install", "--dry-run", "-o", "yaml", "--push", repo).Output()
	if err != nil {
		t.Fatalf("ferry install --push --dry-run: %v", err)
	}
	if !strings.Contains(string(r), "image: "+ref+"\n") {
		t.Errorf("ferry install --push %s does not run %s", repo, ref)
	}
}

// extractFile writes the file p of img's filesystem into a temporary
// folder, executable, and returns where.
func extractFile(t *testing.T, img v1.Image, p string) string {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			t.Fatalf("no %s in the image", p)
		}
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimPrefix(hdr.Name, "/") != p {
			continue
		}
		out := filepath.Join(t.TempDir(), path.Base(p))
		f, err := os.OpenFile(out, os.O_CREATE|os.O_WRONLY, 0o755)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(f, tr); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		return out
	}
}
