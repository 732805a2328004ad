//go:build race

package middleware_test

// raceEnabled reports whether the race detector is on: it changes
// allocation counts.
const raceEnabled = true
