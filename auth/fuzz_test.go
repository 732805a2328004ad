package auth_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/auth"
)

// FuzzParseKey checks that ParseKey never panics, that what it accepts has
// the documented shape, and that Verify makes no store lookup for anything
// ParseKey rejects (and exactly one for what it accepts, caching off).
// A caching Verifier, which looks in its cache before parsing, must agree
// with ParseKey too: it accepts the one stored key and rejects everything
// else with ParseKey's error or ErrUnknown. Seeds live in
// testdata/fuzz/FuzzParseKey.
func FuzzParseKey(f *testing.F) {
	k, err := auth.NewKey(true)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(k)
	f.Add(k[:len(k)-1] + "0")
	f.Add(strings.ToUpper(k))
	st := newFakeStore()
	v := auth.NewVerifier(st, auth.WithTTL(0), auth.WithNegativeTTL(0))
	cachedStore := newFakeStore()
	cachedStore.add(k, auth.KeyRecord{ID: "key_k", AccountID: "acc_1"})
	cached := auth.NewVerifier(cachedStore)
	ctx := context.Background()
	if _, err := cached.Verify(ctx, k); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, parseErr := auth.ParseKey(s)
		if parseErr == nil {
			if len(s) != auth.KeyLen {
				t.Fatalf("ParseKey(%q) accepted length %d", s, len(s))
			}
			if p.Prefix+p.Random+p.Checksum != s {
				t.Fatalf("ParseKey(%q) = %+v: parts do not rebuild the key", s, p)
			}
			if p.Prefix != auth.PrefixLive && p.Prefix != auth.PrefixTest {
				t.Fatalf("ParseKey(%q) accepted prefix %q", s, p.Prefix)
			}
		} else if !errors.Is(parseErr, auth.ErrMalformed) && !errors.Is(parseErr, auth.ErrMissing) {
			t.Fatalf("ParseKey(%q) error %v is neither ErrMalformed nor ErrMissing", s, parseErr)
		}

		before := st.lookups.Load()
		_, err := v.Verify(ctx, s)
		lookups := st.lookups.Load() - before
		switch {
		case parseErr != nil && lookups != 0:
			t.Fatalf("Verify(%q) made %d store lookups for a key ParseKey rejects (%v)", s, lookups, parseErr)
		case parseErr != nil && !errors.Is(err, parseErr):
			t.Fatalf("Verify(%q) error = %v, want %v", s, err, parseErr)
		case parseErr == nil && (lookups != 1 || !errors.Is(err, auth.ErrUnknown)):
			t.Fatalf("Verify(%q) = %v with %d lookups, want ErrUnknown with 1", s, err, lookups)
		}

		p2, err := cached.Verify(ctx, s)
		switch {
		case s == k && (err != nil || p2.KeyID != "key_k"):
			t.Fatalf("caching Verify(stored key) = %+v, %v", p2, err)
		case s != k && parseErr != nil && !errors.Is(err, parseErr):
			t.Fatalf("caching Verify(%q) error = %v, want %v", s, err, parseErr)
		case s != k && parseErr == nil && !errors.Is(err, auth.ErrUnknown):
			t.Fatalf("caching Verify(%q) error = %v, want ErrUnknown", s, err)
		}
	})
}
