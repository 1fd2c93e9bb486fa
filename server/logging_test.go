package server

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

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
