package test

import (
	"fmt"
	"testing"

	"github.com/ferrycd/ferry/internal/saysonce"
	"github.com/ferrycd/ferry/server"
	"github.com/ferrycd/ferry/test/gitserver"
)

// A source the API takes but the watcher refuses (a branch Git does not
// allow) is not added: the answer is an error, the source is not listed,
// and the audit log holds no entry of an addition that did not happen.
func TestRefusedSourceLeavesNoAuditEntry(t *testing.T) {
	srv := gitserver.Start(t, "", "")
	demo := plainRepo(t, srv, "demo")
	other := plainRepo(t, srv, "other")
	p := startServe(t, writeServeConfig(t, fmt.Sprintf(`- {name: demo, url: %q, branch: main, interval: 1h}`, demo)))
	c := p.client(t)
	for i, branch := range []string{"refs/heads/main", "-main", "a..b"} {
		name := fmt.Sprintf("bad%d", i)
		_, err := c.AddSource(t.Context(), server.SourceRequest{Name: name, URL: other, Branch: branch, Interval: "1h"})
		if err == nil {
			t.Errorf("source %s with branch %q was added", name, branch)
			continue
		}
		saysonce.Check(t, "the refusal of branch "+branch, err.Error())
		t.Logf("branch %q: %v", branch, err)
		evs, err := c.Events(t.Context(), "source/"+name, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs.Items {
			t.Errorf("branch %q: the audit log holds %s %s by %s (%s), yet the source was not added", branch, e.Action, e.Object, e.Actor, e.Detail)
		}
	}
	srcs, err := c.Sources(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(srcs) != 1 {
		t.Errorf("sources %+v, want demo only", srcs)
	}
}
