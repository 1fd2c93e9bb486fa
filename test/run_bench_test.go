package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// BenchmarkRunReload is the figure TestRunServesAndReloads does not
// assert: the time from an edit of examples/python's handler until
// `ferry run` serves it (the target is two seconds). Each edit
// writes a greeting no build has seen, so each is a real rebuild.
//
//	go test -run='^$' -bench=RunReload ./test/
//
// It runs a ferry built without -race (the tests' binary has it), so the
// figure is what a user gets.
func BenchmarkRunReload(b *testing.B) {
	bin := filepath.Join(b.TempDir(), "ferry")
	build := exec.Command("go", "build", "-o", bin, "./cmd/ferry")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("building ferry: %v\n%s", err, out)
	}
	dir := b.TempDir()
	if err := os.CopyFS(dir, os.DirFS(filepath.Join(root, "examples", "python"))); err != nil {
		b.Fatal(err)
	}
	addr, _, output := startRunOf(b, bin, dir)
	url := "http://" + addr + "/local/hello"
	handler := filepath.Join(dir, "hello", "main.py")
	original, err := os.ReadFile(handler)
	if err != nil {
		b.Fatal(err)
	}
	var total time.Duration
	edits := 0
	for b.Loop() {
		want := fmt.Sprintf("edit %d at %d", edits, time.Now().UnixNano())
		edited := time.Now()
		if err := os.WriteFile(handler, []byte(strings.Replace(string(original), "hello from python", want, 1)), 0o644); err != nil {
			b.Fatal(err)
		}
		for {
			if _, msg := greetingOf(url); msg == want {
				break
			}
			if time.Since(edited) > reloadHang {
				b.Fatalf("the edit was not served within %s:\n%s", reloadHang, output)
			}
			time.Sleep(5 * time.Millisecond)
		}
		total += time.Since(edited)
		edits++
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(edits), "ms/reload")
}
