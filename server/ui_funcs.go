package server

import (
	"html/template"
	"net/url"
	"strings"
	"time"
)

// uiFuncs are the templates' helpers.
var uiFuncs = template.FuncMap{
	"join": strings.Join,
	// short is a digest or release id as people read it: 12 hex digits.
	"short": shortHex,
	// when is an absolute UTC time; the script turns .ago ones relative.
	"when": func(t time.Time) template.HTML {
		if t.IsZero() {
			return ""
		}
		return template.HTML(`<time class="ago" datetime="` + t.UTC().Format(time.RFC3339) + `">` +
			template.HTMLEscapeString(t.UTC().Format("2006-01-02 15:04:05 UTC")) + `</time>`)
	},
	// took is how long from a to b, or "" when either is unset.
	"took": func(a, b time.Time) string {
		if a.IsZero() || b.IsZero() {
			return ""
		}
		return b.Sub(a).Round(100 * time.Millisecond).String()
	},
	// state is a status's CSS class.
	"state": func(s string) string {
		return "s-" + strings.ReplaceAll(strings.ToLower(s), " ", "-")
	},
	// hex says whether s is a commit id, the only thing a copied shell
	// command may carry from the data.
	"hex":  isHexID,
	"path": url.PathEscape,
}

// shortHex shortens a digest ("sha256:…", "…@sha256:…") or a release id to
// its first 12 hex digits.
func shortHex(s string) string {
	if i := strings.LastIndex(s, "sha256:"); i >= 0 {
		s = s[i+len("sha256:"):]
	}
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

func isHexID(s string) bool {
	if len(s) < 7 || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
