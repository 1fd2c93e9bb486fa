package ui

import "embed"

// Templates are the pages: layout.html frames every page, and each other
// file defines one page's "title" and "live" (the part live updates
// replace) and, when it has one, "fixed" (the part they leave alone).
//
//go:embed templates/*.html
var Templates embed.FS

// Static is served under /assets/.
//
//go:embed static
var Static embed.FS
