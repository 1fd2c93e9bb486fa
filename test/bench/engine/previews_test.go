package main

import "testing"

// TestPercentile: nearest rank, so p95 of ten values is the largest and
// p50 the fifth, whatever order they come in.
func TestPercentile(t *testing.T) {
	v := []float64{900, 100, 300, 200, 500, 400, 700, 600, 1000, 800}
	for _, c := range []struct{ p, want float64 }{{95, 1000}, {50, 500}, {10, 100}, {0, 100}, {100, 1000}} {
		if got := percentile(v, c.p); got != c.want {
			t.Errorf("percentile(p%.0f) = %.0f, want %.0f", c.p, got, c.want)
		}
	}
	if v[0] != 900 {
		t.Errorf("percentile sorted its argument in place: %v", v)
	}
}
