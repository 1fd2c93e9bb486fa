package embedded

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferrycd/ferry/manifests/v1alpha1"
)

// TestSecretsKeptOutOfTheLog: a function that fails on a secret's value
// says the value (Python: "invalid literal for int() with base 10:
// 'VALUE'"). Its log is served to viewers and written to a file, and a
// failed start's message quotes it, and that message is stored with the
// run, answered by the API and written to ferry's own log: none may hold
// the value. A plain variable's value is not hidden.
func TestSecretsKeptOutOfTheLog(t *testing.T) {
	const secret, plain = "s3cr3t-db-port-5f1c", "plain-value-77"
	r := newReleaser(t, "python")
	r.write("hello/main.py", "import os, sys\nprint('starting with', os.environ['LEVEL'], file=sys.stderr, flush=True)\nport = int(os.environ['DB_PORT'])\n")
	loud := r.release()

	imgs, err := newImages(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	logDir := t.TempDir()
	tg, err := New(Config{Environment: "local", Images: imgs, Gateway: newGateway(), GatewayURL: "http://127.0.0.1:1", LogDir: logDir,
		Env: func(_ context.Context, f *v1alpha1.Function) (map[string]string, []string, error) {
			return map[string]string{"DB_PORT": secret, "LEVEL": plain}, []string{secret, "ab"}, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tg.Delete(context.Background()) })

	err = tg.Apply(context.Background(), loud)
	if err == nil {
		t.Fatal("a function that raises at start was applied")
	}
	msg := err.Error()
	if strings.Contains(msg, secret) || !strings.Contains(msg, "invalid literal for int() with base 10: '"+redactedSecret+"'") {
		t.Errorf("the failed start's message holds the secret, or not the redacted line:\n%s", msg)
	}
	if !strings.Contains(msg, "starting with "+plain) {
		t.Errorf("a plain value was hidden too:\n%s", msg)
	}
	lines, err := tg.Logs("hello", LogQuery{})
	if err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	for _, l := range lines {
		all.WriteString(l.Text + "\n")
	}
	file, err := os.ReadFile(filepath.Join(logDir, "local", "hello.log"))
	if err != nil {
		t.Fatal(err)
	}
	for what, text := range map[string]string{"the log's lines": all.String(), "the log file": string(file)} {
		if strings.Contains(text, secret) || !strings.Contains(text, redactedSecret) {
			t.Errorf("%s hold the secret, or no redacted line:\n%s", what, text)
		}
	}
}

func TestSecretRedactor(t *testing.T) {
	if secretRedactor(nil) != nil || secretRedactor([]string{"", "abc"}) != nil {
		t.Error("a redactor with nothing long enough to hide")
	}
	r := secretRedactor([]string{"pass", "password-long", "pass"})
	if got := r.Replace("a password-long and a pass, passpass"); got != "a [secret] and a [secret], [secret][secret]" {
		t.Errorf("redacted: %q", got)
	}
	// A key of several lines is printed a line at a time.
	r = secretRedactor([]string{"-----BEGIN KEY-----\r\nMIIEvQIBADANBgkq\nhkiG9w0BAQEFAASC\nab\n-----END KEY-----\n"})
	for _, line := range []string{"MIIEvQIBADANBgkq", "key: hkiG9w0BAQEFAASC", "-----END KEY-----"} {
		if got := r.Replace(line); strings.ContainsAny(got, "MhE") {
			t.Errorf("a line of a key: %q redacted to %q", line, got)
		}
	}
}
