package test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestHelpDefaultsOnce walks every command's help, with FERRY_SERVER and
// FERRY_TOKEN set as a user would have them, and fails on a flag whose
// default is said twice (the help text's own "default …" and pflag's
// "(default …)"), or on a variable's value shown as a default.
func TestHelpDefaultsOnce(t *testing.T) {
	const serverValue, tokenValue = "http://203.0.113.7:9999", "help-test-token-value"
	help := func(path []string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, ferryBin, append(path, "--help")...)
		cmd.Env = append(os.Environ(), "FERRY_SERVER="+serverValue, "FERRY_TOKEN="+tokenValue)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Fatalf("ferry %s --help: %v\n%s", strings.Join(path, " "), err, out.String())
		}
		return out.String()
	}
	queue := [][]string{{}}
	walked := 0
	for len(queue) > 0 {
		path := queue[0]
		queue = queue[1:]
		text := help(path)
		walked++
		name := strings.TrimSpace("ferry " + strings.Join(path, " "))
		if strings.Contains(text, serverValue) || strings.Contains(text, tokenValue) {
			t.Errorf("%s --help shows the value of FERRY_SERVER or FERRY_TOKEN:\n%s", name, text)
		}
		section := ""
		for _, line := range strings.Split(text, "\n") {
			switch {
			case strings.HasSuffix(line, ":") && !strings.HasPrefix(line, " "):
				section = line
				continue
			case section == "Available Commands:" && strings.HasPrefix(line, "  "):
				sub := strings.Fields(line)[0]
				if sub != "help" && sub != "completion" {
					queue = append(queue, append(append([]string{}, path...), sub))
				}
			case strings.HasSuffix(section, "Flags:") && strings.Count(strings.ToLower(line), "default") > 1:
				t.Errorf("%s: a flag says its default twice:\n%s", name, line)
			}
		}
	}
	if walked < 25 {
		t.Errorf("walked only %d commands' help; the walk lost its way", walked)
	}
}
