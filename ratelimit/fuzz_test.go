package ratelimit_test

import (
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/ratelimit"
)

// maxPolicyLen bounds a rate plan as a key stores it (internal/api's
// maxRateLen): its normal form, String(), must always fit.
const maxPolicyLen = 128

// FuzzParsePolicy checks ParsePolicy, the parser of a key's rate plan and
// of --rate-default ("600/1m", "10/s;burst=20"), on random text, and
// String on random policies. Properties: it never panics; a refusal is an
// error with the zero Policy, never a policy; an accepted policy passes
// Validate (Limit and Window positive, Burst not negative, a tolerance
// every store can hold) and has no Name; its normal form String() is at
// most 128 bytes and parses back to the same limit, window and capacity,
// and to itself from then on (ParsePolicy(String()) is a fixed point);
// every valid policy built from random numbers is written by String in a
// form ParsePolicy reads back. Seeds live in
// testdata/fuzz/FuzzParsePolicy.
func FuzzParsePolicy(f *testing.F) {
	for _, s := range []string{"600/1m", "10/s;burst=20", "10000/1d", " 10 / 1m ", "3/1m30s", "10/.5s", "1/48h",
		"10/1s;burst=10", "9223372036854775807/1s;burst=1", "1/1ns;burst=2251799813685248", "1/106752d;burst=1",
		"10/13400d;burst=1", "0/1m", "-1/1m", "1/0s", "10/sec", "10", "10/1s;burst=", "+5/+1s", "1/1h0.000000001s", "5/µs", "10/s,10000/d"} {
		f.Add(s, 0, int64(0), 0)
	}
	f.Add("", 600, int64(time.Minute), 0)
	f.Add("", 1, int64(1), 1)
	f.Add("", 10, int64(13400*24*time.Hour), 1)
	f.Fuzz(func(t *testing.T, s string, limit int, window int64, burst int) {
		p, err := ratelimit.ParsePolicy(s)
		if err != nil {
			if p != (ratelimit.Policy{}) {
				t.Fatalf("ParsePolicy(%q) refused (%v) with %+v", s, err, p)
			}
			if !strings.HasPrefix(err.Error(), "ratelimit: parse policy ") {
				t.Fatalf("ParsePolicy(%q) error %q", s, err)
			}
		} else {
			if err := p.Validate(); err != nil || p.Limit <= 0 || p.Window <= 0 || p.Burst < 0 || p.Name != "" {
				t.Fatalf("ParsePolicy(%q) accepted %+v (Validate: %v)", s, p, err)
			}
			checkNormalForm(t, p)
		}

		// From a policy to text and back.
		q := ratelimit.Policy{Limit: limit, Window: time.Duration(window), Burst: burst}
		if q.Validate() == nil {
			checkNormalForm(t, q)
		}
	})
}

// checkNormalForm checks that p, a valid policy, is written in at most
// maxPolicyLen bytes by String, in a form ParsePolicy reads back to the
// same policy (with Burst 0 for a Burst equal to Limit, which String
// leaves out) and to itself ever after.
func checkNormalForm(t *testing.T, p ratelimit.Policy) {
	t.Helper()
	norm := p.String()
	if len(norm) > maxPolicyLen {
		t.Fatalf("%+v: normal form %q is %d bytes, over %d", p, norm, len(norm), maxPolicyLen)
	}
	q, err := ratelimit.ParsePolicy(norm)
	if err != nil {
		t.Fatalf("%+v: normal form %q does not parse: %v", p, norm, err)
	}
	want := ratelimit.Policy{Limit: p.Limit, Window: p.Window, Burst: p.Burst}
	if want.Burst == want.Limit {
		want.Burst = 0
	}
	if q != want || q.Capacity() != p.Capacity() {
		t.Fatalf("%+v: normal form %q parses to %+v, want %+v", p, norm, q, want)
	}
	if again := q.String(); again != norm {
		t.Fatalf("%+v: normal form %q parses to %+v, written %q", p, norm, q, again)
	}
}
