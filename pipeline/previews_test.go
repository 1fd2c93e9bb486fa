package pipeline_test

import (
	"context"
	"testing"
	"testing/fstest"
	"time"

	"github.com/ferrycd/ferry/pipeline"
)

// Previews are off unless the repository's Pipeline enables them; the
// ttl is its own or the default.
func TestPreviewSettings(t *testing.T) {
	for name, tc := range map[string]struct {
		pipeline string
		on       bool
		ttl      time.Duration
	}{
		"no Pipeline":    {"", false, 0},
		"not enabled":    {"stages: [{name: dev, auto: true}]\n", false, 0},
		"enabled":        {"stages: [{name: dev, auto: true}]\n  previews: {enabled: true}\n", true, 72 * time.Hour},
		"enabled, 2h":    {"stages: [{name: dev, auto: true}]\n  previews: {enabled: true, ttl: 2h}\n", true, 2 * time.Hour},
		"enabled: false": {"stages: [{name: dev, auto: true}]\n  previews: {enabled: false, ttl: 2h}\n", false, 0},
	} {
		t.Run(name, func(t *testing.T) {
			manifest := ""
			if tc.pipeline != "" {
				manifest += "apiVersion: ferry.dev/v1alpha1\nkind: Pipeline\nmetadata: {name: default}\nspec:\n  " + tc.pipeline
			}
			tree := fstest.MapFS{"ferry.yaml": {Data: []byte(manifest)}}
			on, ttl, err := pipeline.PreviewSettings(context.Background(), tree)
			if err != nil || on != tc.on || ttl != tc.ttl {
				t.Errorf("PreviewSettings = %v, %v, %v; want %v, %v", on, ttl, err, tc.on, tc.ttl)
			}
		})
	}
	bad := fstest.MapFS{"ferry.yaml": {Data: []byte("apiVersion: ferry.dev/v1alpha1\nkind: Pipeline\nspec: {stages: []}\n")}}
	if on, _, err := pipeline.PreviewSettings(context.Background(), bad); err == nil || on {
		t.Errorf("an invalid Pipeline: %v, %v; want an error, previews off", on, err)
	}
}
