package saysonce

import "testing"

func TestRepeat(t *testing.T) {
	for msg, want := range map[string]string{
		"function hello: function hello: exited with status 3":                                 "function hello",
		"function hello: function hello exited with status 3":                                  "function hello",
		"source demo: fetching: fetching: timeout":                                             "fetching",
		"environment dev: the the release":                                                     "the the",
		"source demo: no answer within 60s":                                                    "",
		"function hello exited with status 3 before it was healthy; its last log lines:\nboom": "",
		"retry 1 1 later": "",
		"fetching missing: source missing: fetching http://h/missing.git: not found": "missing",
		"function hello: syntax error: main.py:1: '(' was never closed":              "",
		"deploying release abc to dev failed: function hello: image: not found":      "",
	} {
		if got := Repeat(msg); got != want {
			t.Errorf("Repeat(%q) = %q, want %q", msg, got, want)
		}
	}
}
