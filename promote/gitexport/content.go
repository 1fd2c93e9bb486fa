package gitexport

import (
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/ferrycd/ferry/store"
)

// change is one export: the file to write and the commit to make.
type change struct {
	env     string
	path    string // in the repository, slash-separated
	content []byte
	message string
	when    time.Time // the deployment's time, the commit's author date; zero for now
}

// fileContent is the release's manifest after one comment line saying
// what it is. A comment keeps the file the same YAML (comments may come
// before directives and document markers too), and every field goes
// through oneLine, so that no value can end the comment and add YAML.
func fileContent(d store.Deployment, rel store.Release) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# ferry release %s of %s@%s, deployed to %s by %s",
		oneLine(rel.ID), oneLine(rel.Source), oneLine(rel.Commit), oneLine(d.Environment), actor(d))
	if ids := ids(d); len(ids) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(ids, ", "))
	}
	b.WriteString("\n")
	return append([]byte(b.String()), rel.Manifest...)
}

// commitMessage is "deploy <env>: release sha256:<12> by <actor>" and a
// body with the full details, one "Key: value" line each, which git log
// --grep and trailer parsers read.
func commitMessage(d store.Deployment, rel store.Release) string {
	var b strings.Builder
	fmt.Fprintf(&b, "deploy %s: release %s by %s\n\n", oneLine(d.Environment), shortID(oneLine(rel.ID)), actor(d))
	line := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, "%s: %s\n", k, oneLine(v))
		}
	}
	line("Release", rel.ID)
	line("Source", rel.Source)
	line("Commit", rel.Commit)
	line("Artifact", rel.Ref)
	line("Environment", d.Environment)
	line("Actor", d.Actor)
	if d.Promotion != 0 {
		line("Promotion", fmt.Sprint(d.Promotion))
	}
	if d.RunID != 0 {
		line("Run", fmt.Sprint(d.RunID))
	}
	if d.ID != 0 {
		line("Deployment", fmt.Sprint(d.ID))
	}
	line("Previous", d.Previous)
	return b.String()
}

// ids names what asked for the deployment and the deployment itself.
func ids(d store.Deployment) []string {
	var out []string
	if d.Promotion != 0 {
		out = append(out, fmt.Sprintf("promotion %d", d.Promotion))
	}
	if d.RunID != 0 {
		out = append(out, fmt.Sprintf("run %d", d.RunID))
	}
	if d.ID != 0 {
		out = append(out, fmt.Sprintf("deployment %d", d.ID))
	}
	return out
}

// actor is who deployed, for one line.
func actor(d store.Deployment) string {
	if a := oneLine(d.Actor); a != "" {
		return a
	}
	return "an unknown actor"
}

// shortID is a release id with its digest cut to 12 hex digits, as
// sha256:0123456789ab.
func shortID(id string) string {
	algo, hex, ok := strings.Cut(id, ":")
	if !ok {
		hex, algo = id, ""
	}
	if len(hex) > 12 {
		hex = hex[:12]
	}
	if algo == "" {
		return hex
	}
	return algo + ":" + hex
}

// oneLine makes s safe for one line of a comment or a commit subject:
// control characters and Unicode line and paragraph separators (which
// YAML and some editors take as line breaks) become spaces, runs of
// spaces one.
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}

// checkTemplate checks Config.Path.
func checkTemplate(tmpl string) error {
	if !strings.Contains(tmpl, envPlaceholder) {
		return fmt.Errorf("path %q has no %s: every environment would write the same file; use one such as %s", tmpl, envPlaceholder, defaultPath)
	}
	if strings.ContainsAny(strings.ReplaceAll(tmpl, envPlaceholder, ""), "{}") {
		return fmt.Errorf("path %q: %s is the only placeholder; use one such as %s", tmpl, envPlaceholder, defaultPath)
	}
	if _, err := envPath(tmpl, "env"); err != nil {
		return err
	}
	return nil
}

// envPath is the template's path for env, checked to be a plain relative
// path inside the repository.
func envPath(tmpl, env string) (string, error) {
	if env == "" || strings.ContainsAny(env, `/\`) || oneLine(env) != env {
		return "", fmt.Errorf("environment name %q cannot be part of a file's path: use letters, digits and '-'", env)
	}
	p := strings.ReplaceAll(tmpl, envPlaceholder, env)
	if err := checkPath(p); err != nil {
		return "", fmt.Errorf("path %q for environment %s: %w", p, env, err)
	}
	return p, nil
}

// checkPath refuses what Git would not store, or would store somewhere
// else than it says: absolute paths, empty, "." and ".." parts, .git, a
// backslash (a separator on Windows checkouts) and control characters.
func checkPath(p string) error {
	if strings.HasPrefix(p, "/") {
		return fmt.Errorf("give a path relative to the repository's root, without a leading /")
	}
	if strings.ContainsRune(p, '\\') || strings.ContainsFunc(p, unicode.IsControl) {
		return fmt.Errorf("a path may hold no backslash or control character")
	}
	for part := range strings.SplitSeq(p, "/") {
		switch {
		case part == "":
			return fmt.Errorf("a path may have no empty part (// or a trailing /)")
		case part == "." || part == "..":
			return fmt.Errorf("a path may have no %q part", part)
		case strings.EqualFold(strings.TrimRight(part, ". "), ".git"):
			return fmt.Errorf("a path may not go into .git")
		}
	}
	return nil
}
