//go:build race

package ratelimit_test

// raceEnabled reports whether the race detector is on; it slows the
// property test about tenfold, so that test runs fewer sequences by default.
const raceEnabled = true
