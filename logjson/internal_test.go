package logjson

import (
	"math/rand/v2"
	"strconv"
	"testing"
	"time"
)

// TestAppendMillis checks the integer formatting of duration_ms against
// the float formatting it replaces, on edge cases and random durations.
func TestAppendMillis(t *testing.T) {
	ds := []time.Duration{0, time.Nanosecond, 999 * time.Nanosecond, time.Microsecond, 10 * time.Microsecond,
		100 * time.Microsecond, 120 * time.Microsecond, time.Millisecond, 1500 * time.Microsecond,
		1001 * time.Microsecond, time.Second, 90 * time.Minute, -time.Microsecond, -2500 * time.Microsecond,
		1<<40*time.Microsecond + 7}
	r := rand.New(rand.NewPCG(1, 2))
	for range 100000 {
		ds = append(ds, time.Duration(r.Int64N(int64(time.Hour))), -time.Duration(r.Int64N(int64(time.Second))))
	}
	for _, d := range ds {
		want := strconv.AppendFloat(nil, durationMillis(d), 'f', -1, 64)
		if got := appendMillis(nil, d); string(got) != string(want) {
			t.Fatalf("appendMillis(%d) = %s, want %s", d, got, want)
		}
	}
}

// TestSafeWord checks the 8-bytes-at-once test against the byte table:
// every byte value at every position of an otherwise safe word, then a
// million random words mixing safe and unsafe bytes.
func TestSafeWord(t *testing.T) {
	want := func(w []byte) bool {
		for _, c := range w {
			if !safe[c] {
				return false
			}
		}
		return true
	}
	for pos := range 8 {
		for c := range 256 {
			w := []byte("abcdefgh")
			w[pos] = byte(c)
			if got := safeWord(load64(string(w), 0)); got != want(w) {
				t.Fatalf("safeWord(%q) = %v, want %v", w, got, want(w))
			}
		}
	}
	r := rand.New(rand.NewPCG(3, 4))
	special := []byte{0, 0x1f, 0x20, 0x21, '"', 0x23, '\\', 0x5b, 0x5d, 0x7e, 0x7f, 0x80, 0xff}
	w := make([]byte, 8)
	for range 1000000 {
		for i := range w {
			switch r.IntN(3) {
			case 0:
				w[i] = byte(r.IntN(256))
			case 1:
				w[i] = byte(0x20 + r.IntN(0x5f))
			default:
				w[i] = special[r.IntN(len(special))]
			}
		}
		if got := safeWord(load64(string(w), 0)); got != want(w) {
			t.Fatalf("safeWord(%q) = %v, want %v", w, got, want(w))
		}
	}
}
