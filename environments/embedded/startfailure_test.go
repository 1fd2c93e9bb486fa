package embedded

import (
	"context"
	"strings"
	"testing"

	"github.com/ferrycd/ferry/internal/saysonce"
)

// TestStartFailureMessage: a release whose function dies at start says
// why once (the function named once, no release digest: the caller names
// the release and the environment), says that the previous release keeps
// serving only when there is one, and never ends on a dangling colon: a
// function that logged nothing says so.
func TestStartFailureMessage(t *testing.T) {
	r := newReleaser(t, "python")
	ctx := context.Background()
	good := r.release()
	r.write("hello/main.py", "import os\nos._exit(3)\n")
	silent := r.release()
	r.write("hello/main.py", "raise RuntimeError('boom at start')\n")
	loud := r.release()

	// Nothing live: nothing keeps serving.
	tg, _ := newTestTarget(t)
	err := tg.Apply(ctx, silent)
	const died = "function hello exited with status 3 before it was healthy"
	if err == nil || err.Error() != died+"; it logged nothing" {
		t.Errorf("the first release dying silently: %v\nwant: %s; it logged nothing", err, died)
	}

	if err := tg.Apply(ctx, good); err != nil {
		t.Fatal(err)
	}
	err = tg.Apply(ctx, silent)
	if want := died + "; the previous release keeps serving; it logged nothing"; err == nil || err.Error() != want {
		t.Errorf("a release dying silently: %v\nwant: %s", err, want)
	}

	err = tg.Apply(ctx, loud)
	if err == nil {
		t.Fatal("a release that raises at start was applied")
	}
	msg := err.Error()
	saysonce.Check(t, "a release that raises at start", msg)
	first, rest, _ := strings.Cut(msg, "\n")
	const head = " before it was healthy; the previous release keeps serving; its last log lines (all in "
	if !strings.HasPrefix(first, "function hello exited with status ") || !strings.Contains(first, head) || !strings.HasSuffix(first, "):") || !strings.Contains(rest, "boom at start") || strings.HasSuffix(msg, ":") || strings.HasSuffix(msg, "\n") {
		t.Errorf("a release that raises at start:\n%s", msg)
	}
	for _, said := range []string{"function hello", "keeps serving", good.Digest.String(), loud.Digest.String(), "local"} {
		if n := strings.Count(first, said); n > 1 {
			t.Errorf("%q said %d times: %s", said, n, first)
		}
	}
	if strings.Contains(first, "sha256:") {
		t.Errorf("the target names the release; its caller does: %s", first)
	}
}
