package server

import (
	"fmt"

	"github.com/ferrycd/ferry/promote"
)

// checkAllowedImages checks allowedImages: each entry a registry and
// optionally a repository path (registry.example.com/team/), matched on
// whole path segments; never a tag, a digest or a wildcard. An empty list
// allows nothing that ferry did not build.
func (c *Config) checkAllowedImages() []string {
	var errs []string
	seen := map[string]int{}
	for i, s := range c.AllowedImages {
		p, err := promote.ParseImagePrefix(s)
		if err != nil {
			errs = append(errs, fmt.Sprintf("allowedImages[%d]: %v", i, err))
			continue
		}
		if j, dup := seen[p.String()]; dup {
			errs = append(errs, fmt.Sprintf("allowedImages[%d]: %s is allowedImages[%d] again; remove one", i, p, j))
		}
		seen[p.String()] = i
	}
	return errs
}
