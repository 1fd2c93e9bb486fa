package main

import (
	"os"
	"strings"
	"testing"
)

// TestReadSecretPromptsOnlyATerminal: standard input from /dev/null, a
// character device but no terminal, gets no prompt, only the error that
// says how to give the value.
func TestReadSecretPromptsOnlyATerminal(t *testing.T) {
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	var errw strings.Builder
	_, err = readSecret(null, &errw, "dev", "greeting", false)
	if err == nil || !strings.Contains(err.Error(), "the value is empty") {
		t.Fatalf("an empty value from /dev/null: %v", err)
	}
	if errw.Len() != 0 {
		t.Fatalf("a prompt for input that is no terminal: %q", errw.String())
	}
	if isTerminal(null) {
		t.Fatal("/dev/null taken for a terminal")
	}
}
