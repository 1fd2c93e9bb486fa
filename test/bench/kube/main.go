package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/ferrycd/ferry/environments/kube"
	"github.com/ferrycd/ferry/environments/kube/controller"
	"github.com/ferrycd/ferry/internal/kubetest"
	"github.com/ferrycd/ferry/manifests/v1alpha1"
)

// within bounds the whole wait: far above any figure, so only a stuck
// controller reaches it.
const within = 30 * time.Minute

func main() {
	ferry := flag.String("ferry", "", "the ferry binary to run as the controller")
	n := flag.Int("n", 500, "Functions and HTTPTriggers")
	flag.Parse()
	if err := run(*ferry, *n); err != nil {
		fmt.Fprintln(os.Stderr, "kube:", err)
		os.Exit(1)
	}
}

func run(ferry string, n int) error {
	if ferry == "" {
		return fmt.Errorf("give -ferry, the binary to run as the controller")
	}
	// why: on Ctrl-C the deferred stops still run, so no API server, etcd
	// or controller is left behind.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Println("starting a kube-apiserver and etcd")
	cluster, err := kubetest.StartShared()
	if err != nil {
		return err
	}
	defer cluster.Stop()
	if err := installHTTPRoute(cluster); err != nil {
		return err
	}
	s, err := controller.NewScheme()
	if err != nil {
		return err
	}
	c, err := client.New(cluster.Config, client.Options{Scheme: s})
	if err != nil {
		return err
	}
	const ns = "bench"
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return err
	}
	if err := c.Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: kube.ConfigMapName, Labels: map[string]string{kube.LabelManagedBy: kube.ManagedBy}},
		Data:       map[string]string{kube.KeyEnvironment: "bench", kube.KeyGateway: "infra/public"},
	}); err != nil {
		return err
	}
	fmt.Printf("creating %d Functions and %d HTTPTriggers (not timed)\n", n, n)
	if err := createObjects(ctx, c, ns, n); err != nil {
		return err
	}

	cmd := exec.Command(ferry, "controller", "--kubeconfig", cluster.Kubeconfig,
		"--metrics-bind-address", "0", "--health-probe-bind-address", "0",
		"--image", "bench.test/ferry@sha256:"+strings.Repeat("f", 64))
	logs, err := os.CreateTemp("", "ferry-controller-*.log")
	if err != nil {
		return err
	}
	defer os.Remove(logs.Name())
	cmd.Stdout, cmd.Stderr = logs, logs
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		<-exited
	}()

	deadline := start.Add(within)
	last := ""
	for {
		done, seen, err := progress(ctx, c, ns, n)
		if err != nil {
			return err
		}
		if done {
			break
		}
		if seen != last {
			fmt.Printf("  %5.1fs %s\n", time.Since(start).Seconds(), seen)
			last = seen
		}
		select {
		case err := <-exited:
			return fmt.Errorf("the controller exited (%v); its log is in %s", err, logs.Name())
		case <-ctx.Done():
			return fmt.Errorf("stopped")
		case <-time.After(250 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not done after %s: %s", within, last)
		}
	}
	took := time.Since(start)
	peak, err := peakMiB(cmd.Process.Pid)
	if err != nil {
		return err
	}
	fmt.Printf("every child made and every Function conditioned %.1fs after the controller started\n", took.Seconds())
	fmt.Printf("kube: reconcile_%d_s=%.1f controller_peak_mib=%.0f\n", n, took.Seconds(), peak)
	return nil
}

// installHTTPRoute installs Gateway API's HTTPRoute CRD from the module
// this build uses.
func installHTTPRoute(c *kubetest.Cluster) error {
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/gateway-api")
	cmd.Dir = kubetest.Root()
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("finding the gateway-api module: %w", err)
	}
	crd := filepath.Join(strings.TrimSpace(string(out)), "config", "crd", "standard", "gateway.networking.k8s.io_httproutes.yaml")
	_, err = envtest.InstallCRDs(c.Config, envtest.CRDInstallOptions{Paths: []string{crd}, ErrorIfPathMissing: true})
	return err
}

func createObjects(ctx context.Context, c client.Client, ns string, n int) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i := range n {
		name := fmt.Sprintf("fn-%03d", i)
		g.Go(func() error {
			one := int32(1)
			fn := &v1alpha1.Function{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
				Spec: v1alpha1.FunctionSpec{
					Runtime: v1alpha1.RuntimeGo,
					Image:   fmt.Sprintf("bench.test/fns/%s@sha256:%064x", name, i),
					Env:     map[string]v1alpha1.EnvValue{"GREETING": v1alpha1.Plain("hello")},
					Scale:   &v1alpha1.Scale{Min: &one},
				},
			}
			if err := c.Create(ctx, fn); err != nil {
				return err
			}
			return c.Create(ctx, &v1alpha1.HTTPTrigger{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
				Spec: v1alpha1.HTTPTriggerSpec{
					FunctionTarget: v1alpha1.FunctionTarget{Function: name},
					Path:           "/" + name,
				},
			})
		})
	}
	return g.Wait()
}

// progress counts what exists; done when every count is n.
func progress(ctx context.Context, c client.Client, ns string, n int) (bool, string, error) {
	kinds := []struct {
		name string
		gvk  schema.GroupVersionKind
	}{
		{"Deployments", appsv1.SchemeGroupVersion.WithKind("DeploymentList")},
		{"Services", corev1.SchemeGroupVersion.WithKind("ServiceList")},
		{"HPAs", autoscalingv2.SchemeGroupVersion.WithKind("HorizontalPodAutoscalerList")},
		{"HTTPRoutes", schema.GroupVersionKind{Group: "gateway.networking.k8s.io", Version: "v1", Kind: "HTTPRouteList"}},
	}
	done := true
	var parts []string
	for _, k := range kinds {
		l := &metav1.PartialObjectMetadataList{}
		l.SetGroupVersionKind(k.gvk)
		if err := c.List(ctx, l, client.InNamespace(ns), client.MatchingLabels{kube.LabelManagedBy: kube.ManagedBy}); err != nil {
			return false, "", err
		}
		done = done && len(l.Items) >= n
		parts = append(parts, fmt.Sprintf("%s %d", k.name, len(l.Items)))
	}
	var fns v1alpha1.FunctionList
	if err := c.List(ctx, &fns, client.InNamespace(ns)); err != nil {
		return false, "", err
	}
	conditioned, failed := 0, ""
	for _, f := range fns.Items {
		// Rolling out (no kubelet runs pods here) or Ready: every child was
		// applied. Failed would mean one was not.
		r := apimeta.FindStatusCondition(f.Status.Conditions, v1alpha1.ConditionReady)
		if r != nil && r.ObservedGeneration == f.Generation && (r.Reason == v1alpha1.ReasonProgressing || r.Reason == v1alpha1.ReasonSucceeded) {
			conditioned++
		} else if r != nil && r.Reason == v1alpha1.ReasonFailed {
			failed = f.Name + ": " + r.Message
		}
	}
	done = done && conditioned >= n
	parts = append(parts, fmt.Sprintf("Functions conditioned %d", conditioned))
	if failed != "" {
		parts = append(parts, "failing: "+failed)
	}
	return done, strings.Join(parts, ", "), nil
}

// peakMiB is a process's peak resident set (VmHWM), in MiB.
func peakMiB(pid int) (float64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("reading the controller's peak memory: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err != nil {
				return 0, err
			}
			return kb / 1024, nil
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}
