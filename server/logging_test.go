package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ferrycd/ferry/pipeline"
	"github.com/ferrycd/ferry/promote"
	"github.com/ferrycd/ferry/store"
)

const loggedRelease = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestLogFormats(t *testing.T) {
	if _, err := newLogger(&bytes.Buffer{}, "xml"); err == nil || !strings.Contains(err.Error(), "text, json") {
		t.Errorf("an unknown format: %v", err)
	}

	var text bytes.Buffer
	lg, err := newLogger(&text, LogText)
	if err != nil {
		t.Fatal(err)
	}
	o := outcomes{log: lg}
	o.promotion(promote.Event{Kind: promote.EventApproved, Environment: "prod", Release: loggedRelease, Promotion: 4, Actor: "ann", Reason: "looks good"})
	line := text.String()
	for _, want := range []string{"approved by ann", "env=prod", "release=0123456789ab", "promotion=4", `reason="looks good"`} {
		if !strings.Contains(line, want) {
			t.Errorf("text line %q lacks %q", line, want)
		}
	}

	text.Reset()
	lg.With("a", 1).With("b", "two words").WithGroup("g").Info("hi", "c", 3)
	if got := text.String(); !strings.HasSuffix(got, ` hi a=1 b="two words" g.c=3`+"\n") {
		t.Errorf("attributes and groups: %q", got)
	}

	var js bytes.Buffer
	lg, err = newLogger(&js, LogJSON)
	if err != nil {
		t.Fatal(err)
	}
	o = outcomes{log: lg}
	o.run(pipeline.Event{Kind: pipeline.EventRunFinished, Run: store.Run{ID: 7, Source: "demo", Branch: "main", Commit: "c0ffee00c0ffee00", Status: store.StatusFailed},
		Step: "test", Error: "main_test.go:9: want 2, got 3"})
	o.promotion(promote.Event{Kind: promote.EventWaiting, Environment: "prod", Release: loggedRelease, Promotion: 5, Approvals: 2})
	lines := strings.Split(strings.TrimSpace(js.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 JSON lines, got %q", js.String())
	}
	var finished, waiting map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &finished); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &waiting); err != nil {
		t.Fatal(err)
	}
	if finished["msg"] != "run finished" || finished["status"] != "failed" || finished["step"] != "test" ||
		finished["error"] != "main_test.go:9: want 2, got 3" || finished["run"] != 7.0 || finished["level"] != "WARN" {
		t.Errorf("run finished: %v", finished)
	}
	if waiting["msg"] != "waiting for 2 approvals" || waiting["approvals"] != 2.0 || waiting["env"] != "prod" {
		t.Errorf("waiting: %v", waiting)
	}
}

func TestConfigLogFormat(t *testing.T) {
	cfg, err := ParseConfig([]byte("environments: [{name: dev}]\n"), "/srv/ferry", "ferry-serve.yaml")
	if err != nil || cfg.LogFormat != LogText {
		t.Errorf("the default log format: %q %v", cfg.LogFormat, err)
	}
	_, err = ParseConfig([]byte("logFormat: yaml\n"), "/srv/ferry", "ferry-serve.yaml")
	if err == nil || !strings.Contains(err.Error(), `logFormat: "yaml" is not a log format; give one of text, json`) {
		t.Errorf("a bad log format: %v", err)
	}
}

// TestTextLogForgery is a hostile function's answer to its trigger, which
// ferry serve logs as "… the function answered 500 Internal Server Error:
// BODY": a body with a newline must not start a line of ferry's own in the
// text format, nor an escape sequence reach the terminal raw; an attribute
// with a carriage return or an escape is quoted. The JSON format is one
// object per line whatever the text holds.
func TestTextLogForgery(t *testing.T) {
	const forged = "12:00:00 deployed to prod env=prod release=0123456789ab"
	body := "oops\n" + forged + "\r\x1b[2K\u2028\xff"
	var text bytes.Buffer
	lg, err := newLogger(&text, LogText)
	if err != nil {
		t.Fatal(err)
	}
	// As Serve's logf and triggers.go's fanOut write it.
	lg.Info(fmt.Sprintf("%s: function %s: event %s, %s: %v", "cron tick", "hello", "1", "tick", fmt.Errorf("the function answered 500 Internal Server Error: %s", body)))
	lg.Info("run finished", "error", "x\r"+forged, "branch", "a\x1b]0;pwned\x07", "bytes", "\xff\xfe")
	out := text.String()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("two records made %d lines:\n%s", len(lines), out)
	}
	for _, l := range lines {
		if strings.HasPrefix(l, forged) || strings.ContainsAny(l, "\r\x1b\x07\u2028") || !utf8.ValidString(l) {
			t.Errorf("a line holds a forged line, a control character or invalid UTF-8: %q", l)
		}
	}
	if !strings.Contains(lines[0], `oops\n12:00:00 deployed to prod`) || !strings.Contains(lines[0], `\x1b[2K\u2028\xff`) {
		t.Errorf("the message is not kept, escaped: %q", lines[0])
	}
	for _, want := range []string{`error="x\r12:00:00`, `branch="a\x1b]0;pwned\a"`, `bytes="\xff\xfe"`} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("attributes: %q lacks %s", lines[1], want)
		}
	}
	// Ordinary text is as it was.
	text.Reset()
	lg.Info("deployed to dev", "reason", "looks good", "café", "ünïcode")
	if got := text.String(); !strings.HasSuffix(got, ` deployed to dev reason="looks good" café=ünïcode`+"\n") {
		t.Errorf("an ordinary line: %q", got)
	}

	var js bytes.Buffer
	lg, err = newLogger(&js, LogJSON)
	if err != nil {
		t.Fatal(err)
	}
	lg.Info("the function answered: "+body, "error", "x\n"+forged)
	if n := strings.Count(js.String(), "\n"); n != 1 || strings.ContainsAny(js.String(), "\r\x1b") {
		t.Errorf("JSON: %d lines, or a raw control character: %q", n, js.String())
	}
	var m map[string]any
	if err := json.Unmarshal(js.Bytes(), &m); err != nil || !strings.Contains(m["msg"].(string), forged) {
		t.Errorf("JSON does not decode to the message: %v %v", err, m)
	}
}
