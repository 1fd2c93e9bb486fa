package kube

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/ferrycd/ferry/manifests/v1alpha1"
)

// rewatchAfter ends a watch that saw nothing for this long, to list
// again: a watch an API server or a proxy cut without a word would
// otherwise be waited on until the timeout.
const rewatchAfter = 30 * time.Second

// waitReady waits until every Function of applied is Ready on the
// generation ferry applied and runs the image it names, as the
// controller reports in its status. A Function the controller marks
// Stalled fails the wait at once: nothing changes it but a new spec.
// On timeout the error names each function not ready with its Ready
// condition's reason and message.
func (t *Target) waitReady(ctx context.Context, applied []*unstructured.Unstructured) error {
	want := map[string]string{} // function -> image
	for _, u := range applied {
		img, _, _ := unstructured.NestedString(u.Object, "spec", "image")
		want[u.GetName()] = img
	}
	if len(want) == 0 {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, t.cfg.ReadyTimeout)
	defer cancel()
	seen := map[string]*v1alpha1.Function{}
	listed := false
	for {
		rv, err := t.readFunctions(wctx, seen)
		if err == nil {
			listed = true
			if done, err := t.judge(want, seen, false); done {
				return err
			}
			err = t.watchFunctions(wctx, rv, want, seen)
			if err == nil {
				return nil
			}
		}
		if ctx.Err() != nil {
			return fmt.Errorf("environment %s: waiting for the functions: %w", t.cfg.Environment, ctx.Err())
		}
		if wctx.Err() != nil {
			if !listed {
				return fmt.Errorf("environment %s: the release is applied, but its functions could not be read within %s: %w", t.cfg.Environment, t.cfg.ReadyTimeout, err)
			}
			_, err := t.judge(want, seen, true)
			return err
		}
		var st stalledError
		if errors.As(err, &st) {
			return err
		}
		// A watch that ended or failed: list again after a breath.
		select {
		case <-wctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// readFunctions lists the environment's Functions into seen and returns
// the list's resource version, for the watch.
func (t *Target) readFunctions(ctx context.Context, seen map[string]*v1alpha1.Function) (string, error) {
	l, err := t.dyn.Resource(kindFunction.resource).Namespace(t.namespace).List(ctx, metav1.ListOptions{LabelSelector: t.selector()})
	if err != nil {
		return "", t.apiError("listing functions", err)
	}
	clear(seen)
	for i := range l.Items {
		var f v1alpha1.Function
		if err := fromUnstructured(&l.Items[i], &f); err != nil {
			return "", err
		}
		seen[f.Name] = &f
	}
	return l.GetResourceVersion(), nil
}

// watchFunctions follows the Functions from rv until they are all ready
// (nil), one is stalled (a stalledError), or the watch ends (another
// error: the caller lists again).
func (t *Target) watchFunctions(ctx context.Context, rv string, want map[string]string, seen map[string]*v1alpha1.Function) error {
	w, err := t.dyn.Resource(kindFunction.resource).Namespace(t.namespace).Watch(ctx, metav1.ListOptions{
		LabelSelector: t.selector(), ResourceVersion: rv, AllowWatchBookmarks: true,
	})
	if err != nil {
		return t.apiError("watching functions", err)
	}
	defer w.Stop()
	idle := time.NewTimer(rewatchAfter)
	defer idle.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-idle.C:
			return errors.New("the watch was quiet; listing again")
		case ev, ok := <-w.ResultChan():
			if !ok {
				return errors.New("the watch ended")
			}
			idle.Reset(rewatchAfter)
			u, isObj := ev.Object.(*unstructured.Unstructured)
			switch {
			case ev.Type == watch.Error || !isObj:
				return errors.New("the watch failed")
			case ev.Type == watch.Bookmark:
				continue
			case ev.Type == watch.Deleted:
				delete(seen, u.GetName())
			default:
				var f v1alpha1.Function
				if err := fromUnstructured(u, &f); err != nil {
					return err
				}
				seen[f.Name] = &f
			}
			if done, err := t.judge(want, seen, false); done {
				return err
			}
		}
	}
}

// stalledError is a wait ended by a Stalled function.
type stalledError struct{ msg string }

func (e stalledError) Error() string { return e.msg }

// judge says whether the wait is over and how: every function ready
// (true, nil), one stalled (true, stalledError), or, when final, the
// timeout's error naming each function not ready.
func (t *Target) judge(want map[string]string, seen map[string]*v1alpha1.Function, final bool) (bool, error) {
	var notReady, stalled []string
	for _, name := range slices.Sorted(maps.Keys(want)) {
		f := seen[name]
		if f == nil {
			notReady = append(notReady, fmt.Sprintf("function %s: it is no longer in the cluster; did someone delete it?", name))
			continue
		}
		current := f.Status.ObservedGeneration == f.Generation
		ready := condition(f.Status.Conditions, v1alpha1.ConditionReady)
		if st := condition(f.Status.Conditions, v1alpha1.ConditionStalled); current && st != nil && st.Status == metav1.ConditionTrue {
			stalled = append(stalled, fmt.Sprintf("function %s: %s", name, reasonMessage(st)))
			continue
		}
		if current && ready != nil && ready.Status == metav1.ConditionTrue && f.Status.Image == want[name] {
			continue
		}
		notReady = append(notReady, t.describe(f, want[name]))
	}
	if len(stalled) > 0 {
		return true, stalledError{fmt.Sprintf("environment %s: the release is applied, but the controller cannot run %s; change the function and deploy again:\n%s",
			t.cfg.Environment, plural(len(stalled), "this function", "these functions"), strings.Join(stalled, "\n"))}
	}
	if len(notReady) == 0 {
		return true, nil
	}
	if !final {
		return false, nil
	}
	return true, fmt.Errorf("environment %s: the release is applied, but %d of %d functions were not ready within %s (Kubernetes keeps the pods of the previous release serving until new ones are ready):\n%s",
		t.cfg.Environment, len(notReady), len(want), t.cfg.ReadyTimeout, strings.Join(notReady, "\n"))
}

// describe says why f is not ready yet.
func (t *Target) describe(f *v1alpha1.Function, image string) string {
	ready := condition(f.Status.Conditions, v1alpha1.ConditionReady)
	switch {
	case ready == nil && f.Status.ObservedGeneration == 0:
		return fmt.Sprintf("function %s: no status yet; %s", f.Name, t.noControllerHint())
	case f.Status.ObservedGeneration != f.Generation:
		s := fmt.Sprintf("function %s: the controller has not reconciled this release yet (it saw generation %d of %d)", f.Name, f.Status.ObservedGeneration, f.Generation)
		if ready != nil {
			s += "; before: " + reasonMessage(ready)
		}
		return s
	case ready == nil:
		return fmt.Sprintf("function %s: no Ready condition", f.Name)
	case ready.Status == metav1.ConditionTrue:
		return fmt.Sprintf("function %s: ready, but it runs %s, not %s", f.Name, f.Status.Image, image)
	}
	return fmt.Sprintf("function %s: %s", f.Name, reasonMessage(ready))
}

func reasonMessage(c *metav1.Condition) string {
	if c.Message == "" {
		return c.Reason
	}
	return c.Reason + ": " + c.Message
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
