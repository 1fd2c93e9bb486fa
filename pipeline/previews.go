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
	p := set.Pipeline
	if p == nil {
		p = manifests.FilledDefaultPipeline()
	}
	pv := p.Spec.Previews
	if pv == nil || pv.Enabled == nil || !*pv.Enabled {
		return false, 0, nil
	}
	if pv.TTL != nil {
		ttl = pv.TTL.Duration
	}
	return true, ttl, nil
}
