package store

import (
	"errors"
	"testing"
)

func TestEnvSecrets(t *testing.T) {
	s, path := openTest(t)
	ctx := t.Context()
	replaced := must[bool](t)(s.PutEnvSecret(ctx, EnvSecret{Environment: "dev", Name: "DB", Value: "sealed:v1:one"}))
	if replaced {
		t.Error("a new secret counted as replaced")
	}
	must[bool](t)(s.PutEnvSecret(ctx, EnvSecret{Environment: "prod", Name: "DB", Value: "sealed:v1:prod"}))
	first := must[EnvSecret](t)(s.GetEnvSecret(ctx, "dev", "DB"))
	replaced = must[bool](t)(s.PutEnvSecret(ctx, EnvSecret{Environment: "dev", Name: "DB", Value: "sealed:v1:two"}))
	if !replaced {
		t.Error("a replaced secret counted as new")
	}
	s = reopen(t, s, path)
	got := must[EnvSecret](t)(s.GetEnvSecret(ctx, "dev", "DB"))
	same(t, "value", got.Value, "sealed:v1:two")
	same(t, "created kept", got.Created, first.Created)
	if got.Updated.Before(first.Updated) {
		t.Errorf("updated went back: %v < %v", got.Updated, first.Updated)
	}
	same(t, "other environment", must[EnvSecret](t)(s.GetEnvSecret(ctx, "prod", "DB")).Value, "sealed:v1:prod")

	l := must[[]EnvSecret](t)(s.ListEnvSecrets(ctx, "dev"))
	if len(l) != 1 || l[0].Name != "DB" || l[0].Value != "" || l[0].Created.IsZero() {
		t.Fatalf("list = %+v, want DB without its value", l)
	}
	check(t, s.DeleteEnvSecret(ctx, "dev", "DB"))
	if _, err := s.GetEnvSecret(ctx, "dev", "DB"); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted secret: %v", err)
	}
	isErr(t, s.DeleteEnvSecret(ctx, "dev", "DB"), ErrNotFound, "secret DB of environment dev: not found")
	same(t, "prod untouched", len(must[[]EnvSecret](t)(s.ListEnvSecrets(ctx, "prod"))), 1)
}
