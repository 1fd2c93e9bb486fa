package manifests

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkLoad loads and validates the repository that holds every kind.
func BenchmarkLoad(b *testing.B) {
	fsys := os.DirFS(filepath.Join("testdata", "render", "full"))
	for b.Loop() {
		if _, err := Load(context.Background(), fsys); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRender renders it; a release id is a hash of this.
func BenchmarkRender(b *testing.B) {
	set, err := Load(context.Background(), os.DirFS(filepath.Join("testdata", "render", "full")))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := Render(set); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRefuseAliasBomb measures what refusing a billion-laughs
// document costs.
func BenchmarkRefuseAliasBomb(b *testing.B) {
	fsys := os.DirFS(filepath.Join("..", "examples", "bad", "alias-bomb"))
	for b.Loop() {
		if _, err := Load(context.Background(), fsys); err == nil {
			b.Fatal("the alias bomb loaded")
		}
	}
}
