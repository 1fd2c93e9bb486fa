package v1alpha1

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// EnvValue is the value of one variable of a function's env: a plain string
// (Value), or a reference to a secret of the environment the function runs
// in (ValueFrom), which ferry resolves at deploy time and puts only into the
// function's process. A manifest, a release and an export hold the
// reference, never the secret.
//
// In YAML and JSON a plain value is written as a string (SIZE: "128"), so
// manifests written before secrets existed keep their meaning; a reference
// as an object (DB_PASSWORD: {valueFrom: {secret: db-password}}).
//
// The CRD's schema gives the value no type, so the API server takes both
// forms (Schemaless, on a type, is ignored: the schema said "object" and
// refused every plain value, server-side apply included).
//
// +kubebuilder:validation:XPreserveUnknownFields
// +kubebuilder:validation:Type=""
type EnvValue struct {
	// Value is the variable's value.
	// +optional
	Value string `json:"value,omitempty"`
	// ValueFrom names where the value comes from instead.
	// +optional
	ValueFrom *EnvValueSource `json:"valueFrom,omitempty"`
}

// EnvValueSource says where a variable's value comes from.
type EnvValueSource struct {
	// Secret is the name of a secret of the environment (ferry secrets set
	// ENV NAME).
	Secret string `json:"secret"`
}

// Plain returns an EnvValue holding the string s.
func Plain(s string) EnvValue { return EnvValue{Value: s} }

// SecretRef returns an EnvValue naming the secret name.
func SecretRef(name string) EnvValue {
	return EnvValue{ValueFrom: &EnvValueSource{Secret: name}}
}

// Secret returns the secret the value names, or "" for a plain value.
func (e EnvValue) Secret() string {
	if e.ValueFrom == nil {
		return ""
	}
	return e.ValueFrom.Secret
}

// String shows the value as a rendered manifest or a log may: a plain value
// as is, a reference as the reference, never what it resolves to.
func (e EnvValue) String() string {
	if e.ValueFrom != nil {
		return "valueFrom: {secret: " + e.ValueFrom.Secret + "}"
	}
	return e.Value
}

// MarshalJSON writes a plain value as a string, so a release made of a
// manifest without references is byte for byte what it was before
// EnvValue existed.
func (e EnvValue) MarshalJSON() ([]byte, error) {
	if e.ValueFrom == nil {
		return json.Marshal(e.Value)
	}
	type object EnvValue // no methods: no recursion
	return json.Marshal(object(e))
}

// UnmarshalJSON reads either form.
func (e *EnvValue) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		*e = EnvValue{}
		return json.Unmarshal(b, &e.Value)
	}
	if len(b) == 0 || b[0] != '{' {
		return fmt.Errorf("an env value is a string or {valueFrom: {secret: NAME}}, not %s", b)
	}
	type object EnvValue
	var o object
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&o); err != nil {
		return fmt.Errorf("an env value: %w", err)
	}
	*e = EnvValue(o)
	return nil
}

// PlainEnv returns the plain values of the function's env, leaving out the
// variables that name a secret.
func (s *FunctionSpec) PlainEnv() map[string]string {
	var m map[string]string
	for k, e := range s.Env {
		if e.ValueFrom != nil {
			continue
		}
		if m == nil {
			m = map[string]string{}
		}
		m[k] = e.Value
	}
	return m
}
