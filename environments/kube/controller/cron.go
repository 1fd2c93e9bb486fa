package controller

import (
	"context"
	"fmt"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	batchv1ac "k8s.io/client-go/applyconfigurations/batch/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ferrycd/ferry/environments/kube"
	"github.com/ferrycd/ferry/manifests"
	"github.com/ferrycd/ferry/manifests/v1alpha1"
)

// cronReconciler makes a CronTrigger's CronJob.
//
// One CronJob per trigger, with one container per function it calls:
// one tick is one Job, so concurrencyPolicy Forbid skips a tick while
// any call of the last one runs, as the embedded target's
// SkipIfStillRunning does; and the containers call in parallel, each
// function's failure its own, as the embedded fan-out does.
type cronReconciler struct{ base }

// What the embedded target's cron sends: the same type, and a source
// naming the environment and the trigger.
const cronEventType = "dev.ferry.cron.tick"

// cronJobNameMax: a CronJob's Jobs append 11 characters to its name,
// and a Job's name is at most 63.
const cronJobNameMax = 52

func (r *cronReconciler) setup(mgr ctrl.Manager) error {
	b := ctrl.NewControllerManagedBy(mgr).
		Named("crontrigger").
		For(&v1alpha1.CronTrigger{}).
		Owns(&batchv1.CronJob{})
	return watchFunctions(b, mgr.GetClient(), func() client.ObjectList { return &v1alpha1.CronTriggerList{} }).Complete(r)
}

func (r *cronReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	return reconcileWith(ctx, &r.base, req, &v1alpha1.CronTrigger{}, r.reconcile)
}

func (r *cronReconciler) reconcile(ctx context.Context, t *v1alpha1.CronTrigger) error {
	t.Status.ObservedGeneration = t.Generation
	env, err := r.settings(ctx, t.Namespace)
	if err != nil {
		return err
	}
	name := childName("", t.Name, cronJobNameMax)
	if !v1alpha1.RunsIn(t.Spec.Environments, env.environment) {
		t.Status.Functions = nil
		if err := r.deleteChild(ctx, t, &batchv1.CronJob{ObjectMeta: objectMeta(t.Namespace, name)}); err != nil {
			return err
		}
		markReady(t, notHere(t.Spec.Environments, env.environment))
		return nil
	}
	fns, err := r.resolve(ctx, t.Namespace, t.Spec.FunctionTarget)
	if err != nil {
		return err
	}
	t.Status.Functions = names(fns)
	if len(fns) == 0 {
		markFailed(t, v1alpha1.ReasonFunctionNotFound, targetText(t.Spec.FunctionTarget)+" is not in namespace "+t.Namespace+"; apply it, or fix the trigger")
		return nil
	}
	if env.image == "" {
		markFailed(t, v1alpha1.ReasonFailed, noImage)
		return nil
	}
	var out batchv1.CronJob
	if err := r.applyChild(ctx, t, cronJob(t, name, env, fns), &out, name); err != nil {
		return err
	}
	markReady(t, fmt.Sprintf("CronJob %s calls %d function(s) on %q (%s)", name, len(fns), out.Spec.Schedule, zoneOf(t)))
	return nil
}

// noImage says how to give the controller ferry's image.
const noImage = "no image of ferry to run: set " + kube.KeyImage + " in ConfigMap " + kube.ConfigMapName + " or start the controller with --image"

func zoneOf(t *v1alpha1.CronTrigger) string {
	if t.Spec.TimeZone != "" {
		return t.Spec.TimeZone
	}
	return manifests.DefaultTimeZone
}

func cronJob(t *v1alpha1.CronTrigger, name string, env settings, fns []v1alpha1.Function) *batchv1ac.CronJobApplyConfiguration {
	source := "/ferry/" + env.environment + "/cron/" + t.Name
	pod := hardenedPod(defaultTmpSize).WithRestartPolicy(corev1.RestartPolicyNever)
	for i, fn := range fns {
		timeout := manifests.DefaultTimeout
		if fn.Spec.Timeout != nil {
			timeout = fn.Spec.Timeout.Duration
		}
		args := []string{"fire",
			"--url", functionURL(t.Namespace, fn.Name) + "/",
			"--type", cronEventType,
			"--source", source,
			// why more: the function answers 504 itself at its timeout.
			"--timeout", (timeout + 5*time.Second).String(),
		}
		if t.Spec.Data != nil && len(t.Spec.Data.Raw) > 0 {
			args = append(args, "--data", string(t.Spec.Data.Raw))
		}
		cname := fn.Name
		if len(validation.IsDNS1123Label(cname)) > 0 {
			cname = fmt.Sprintf("fire-%d", i)
		}
		pod.WithContainers(corev1ac.Container().
			WithName(cname).
			WithImage(env.image).
			WithArgs(args...).
			WithSecurityContext(containerSecurity()).
			WithVolumeMounts(tmpMount()))
	}
	return batchv1ac.CronJob(name, t.Namespace).
		WithLabels(childLabels(t)).
		WithAnnotations(childAnnotations(t)).
		WithOwnerReferences(ownerRef(t, v1alpha1.KindCronTrigger)).
		WithSpec(batchv1ac.CronJobSpec().
			WithSchedule(t.Spec.Schedule).
			WithTimeZone(zoneOf(t)).
			WithConcurrencyPolicy(batchv1.ForbidConcurrent).
			WithJobTemplate(batchv1ac.JobTemplateSpec().
				WithLabels(childLabels(t)).
				WithSpec(batchv1ac.JobSpec().
					// One tick, one try, as on the embedded target.
					WithBackoffLimit(0).
					WithTemplate(corev1ac.PodTemplateSpec().
						WithLabels(childLabels(t)).
						WithSpec(pod)))))
}
