package v1alpha1

import (
	"github.com/fluxcd/pkg/apis/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The condition types a controller sets on ferry's objects, in Flux's
// vocabulary so that tools that read Flux's objects (kstatus, flux's own
// CLI, dashboards) read ferry's the same way: Ready says whether the
// object does its job; Reconciling is True while the controller works
// towards the spec; Stalled is True when it cannot without a change to
// the spec (a bad value, a refused scale), so nothing retries it.
const (
	ConditionReady       = meta.ReadyCondition
	ConditionReconciling = meta.ReconcilingCondition
	ConditionStalled     = meta.StalledCondition
)

// Reasons of the conditions. Flux's generic ones where they fit, and
// ferry's own for what only a function has.
const (
	ReasonSucceeded   = meta.SucceededReason
	ReasonFailed      = meta.FailedReason
	ReasonProgressing = meta.ProgressingReason
	// ReasonInvalidSpec: the spec asks for what this target cannot do
	// (scale.min 0 on Kubernetes, a function that does not exist).
	ReasonInvalidSpec = "InvalidSpec"
	// ReasonRolloutFailed: the new pods do not become ready.
	ReasonRolloutFailed = "RolloutFailed"
	// ReasonFunctionNotFound: a trigger names a function that is not there.
	ReasonFunctionNotFound = "FunctionNotFound"
)

// GetConditions returns the Function's conditions.
func (f *Function) GetConditions() []metav1.Condition { return f.Status.Conditions }

// SetConditions replaces the Function's conditions.
func (f *Function) SetConditions(c []metav1.Condition) { f.Status.Conditions = c }

// GetConditions returns the trigger's conditions.
func (t *HTTPTrigger) GetConditions() []metav1.Condition { return t.Status.Conditions }

// SetConditions replaces the trigger's conditions.
func (t *HTTPTrigger) SetConditions(c []metav1.Condition) { t.Status.Conditions = c }

// GetConditions returns the trigger's conditions.
func (t *CronTrigger) GetConditions() []metav1.Condition { return t.Status.Conditions }

// SetConditions replaces the trigger's conditions.
func (t *CronTrigger) SetConditions(c []metav1.Condition) { t.Status.Conditions = c }

// GetConditions returns the trigger's conditions.
func (t *NATSTrigger) GetConditions() []metav1.Condition { return t.Status.Conditions }

// SetConditions replaces the trigger's conditions.
func (t *NATSTrigger) SetConditions(c []metav1.Condition) { t.Status.Conditions = c }

// GetConditions returns the trigger's conditions.
func (t *KafkaTrigger) GetConditions() []metav1.Condition { return t.Status.Conditions }

// SetConditions replaces the trigger's conditions.
func (t *KafkaTrigger) SetConditions(c []metav1.Condition) { t.Status.Conditions = c }
