package figures

import "slices"

// Median is the middle of v (the mean of the two middle values when v has
// an even length); v is not changed.
func Median(v []float64) float64 {
	s := slices.Sorted(slices.Values(v))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Verdict is how a target line ends: "met", or "MISSED" in capitals so
// that it stands out.
func Verdict(met bool) string {
	if met {
		return "met"
	}
	return "MISSED"
}
