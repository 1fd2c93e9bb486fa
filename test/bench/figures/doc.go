// Package figures holds what every benchmark program under test/bench
// reports with: the median of its runs and the verdict on a target.
package figures
