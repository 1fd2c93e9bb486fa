package pipeline_test

import (
	"context"
	"maps"
	"testing"

	"github.com/ferrycd/ferry/pipeline"
)

// Runs enqueued before the executor runs wait in their lanes, counted by
// source whatever their branch; a newer commit of a branch supersedes the
// queued one, which then no longer counts.
func TestQueuedCountsWaitingRunsBySource(t *testing.T) {
	f := newFixture(t)
	ex, err := pipeline.NewEmbedded(f.hostConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, r := range []struct{ source, branch, commit string }{
		{"demo", "main", "c1"}, {"demo", "main", "c2"}, {"demo", "next", "c3"}, {"other", "main", "c4"},
	} {
		if _, err := ex.Enqueue(ctx, r.source, r.branch, r.commit); err != nil {
			t.Fatal(err)
		}
	}
	q, ok := ex.(pipeline.Queued)
	if !ok {
		t.Fatal("the embedded executor does not tell its queue")
	}
	if got, want := q.Queued(), map[string]int{"demo": 2, "other": 1}; !maps.Equal(got, want) {
		t.Errorf("Queued() = %v, want %v", got, want)
	}
}
