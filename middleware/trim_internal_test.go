package middleware

import (
	"strings"
	"testing"
)

// TestTrimOWS: trimOWS is strings.Trim(s, " \t"): spaces and tabs only,
// at both ends.
func TestTrimOWS(t *testing.T) {
	for _, s := range []string{"", " ", "\t", " \t ", "k", " k", "k ", "\tk\t", " \t k k \t ", "\u00a0k\u00a0", "\nk\n", " \u3000k"} {
		t.Run(s, func(t *testing.T) {
			if got, want := trimOWS(s), strings.Trim(s, " \t"); got != want {
				t.Errorf("trimOWS(%q) = %q, want %q", s, got, want)
			}
		})
	}
}
