package pipeline

import (
	"context"
	"fmt"
	"io/fs"
	"time"

	"github.com/ferrycd/ferry/manifests"
)

// PreviewSettings reads whether the repository tree's Pipeline enables
// pull-request previews, and their ttl (manifests' defaults filled in:
// off, 72h). The server gives it the tree at the source's branch head,
// never a pull request's commit, which must not loosen its own gates: it
// is the preview manager's Config.Enabled.
func PreviewSettings(ctx context.Context, tree fs.FS) (on bool, ttl time.Duration, err error) {
	set, err := manifests.Load(ctx, tree)
	if err != nil {
		return false, 0, fmt.Errorf("reading the Pipeline: %w", err)
	}
	// why no nil checks: Load fills every default in (manifests.Default),
	// the Pipeline, its previews, enabled and ttl among them.
	pv := set.Pipeline.Spec.Previews
	if !*pv.Enabled {
		return false, 0, nil
	}
	return true, pv.TTL.Duration, nil
}
