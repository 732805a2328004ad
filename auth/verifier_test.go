package auth_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/tollgate-dev/tollgate/arrival"
	"github.com/tollgate-dev/tollgate/auth"
)

func mustKey(t testing.TB, live bool) string {
	t.Helper()
	k, err := auth.NewKey(live)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func ptr[T any](v T) *T { return &v }

func TestVerify(t *testing.T) {
	clock := newClock()
	now := clock.Now()
	st := newFakeStore()
	valid := mustKey(t, true)
	st.add(valid, auth.KeyRecord{ID: "key_valid", AccountID: "acc_1", Scopes: []string{"leads:read"}, RatePlan: "600/1m"})
	testKey := mustKey(t, false)
	st.add(testKey, auth.KeyRecord{ID: "key_test", AccountID: "acc_1", Scopes: []string{"*"}})
	revoked := mustKey(t, true)
	st.add(revoked, auth.KeyRecord{ID: "key_revoked", AccountID: "acc_1", RevokedAt: ptr(now.Add(-time.Hour))})
	expired := mustKey(t, true)
	st.add(expired, auth.KeyRecord{ID: "key_expired", AccountID: "acc_1", ExpiresAt: ptr(now)})
	expiresSoon := mustKey(t, true)
	st.add(expiresSoon, auth.KeyRecord{ID: "key_soon", AccountID: "acc_1", ExpiresAt: ptr(now.Add(time.Millisecond))})
	unknown := mustKey(t, true)

	tests := []struct {
		name        string
		secret      string
		want        auth.Principal
		wantErr     error
		wantLookups int64
	}{
		{name: "valid", secret: valid, want: auth.Principal{AccountID: "acc_1", KeyID: "key_valid", Scopes: auth.Scopes{"leads:read"}, RatePlan: "600/1m", Live: true}, wantLookups: 1},
		{name: "test key", secret: testKey, want: auth.Principal{AccountID: "acc_1", KeyID: "key_test", Scopes: auth.Scopes{"*"}}, wantLookups: 1},
		{name: "missing", secret: "", wantErr: auth.ErrMissing},
		{name: "malformed length", secret: valid[:20], wantErr: auth.ErrMalformed},
		{name: "malformed checksum", secret: valid[:len(valid)-1] + flip(valid[len(valid)-1]), wantErr: auth.ErrMalformed},
		{name: "malformed prefix", secret: "sk_live_" + valid[8:], wantErr: auth.ErrMalformed},
		{name: "unknown", secret: unknown, wantErr: auth.ErrUnknown, wantLookups: 1},
		{name: "revoked", secret: revoked, wantErr: auth.ErrRevoked, wantLookups: 1},
		{name: "expired at exactly expires_at", secret: expired, wantErr: auth.ErrExpired, wantLookups: 1},
		{name: "valid 1ms before expires_at", secret: expiresSoon, want: auth.Principal{AccountID: "acc_1", KeyID: "key_soon", Live: true}, wantLookups: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := auth.NewVerifier(st, auth.WithClock(clock.Now))
			before := st.lookups.Load()
			got, err := v.Verify(context.Background(), tt.secret)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Verify() error = %v, want %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Verify() mismatch (-want +got):\n%s", diff)
			}
			if n := st.lookups.Load() - before; n != tt.wantLookups {
				t.Errorf("Verify() made %d store lookups, want %d", n, tt.wantLookups)
			}
		})
	}
}

func TestVerifyStoreFailure(t *testing.T) {
	clock := newClock()
	st := newFakeStore()
	k := mustKey(t, true)
	st.add(k, auth.KeyRecord{ID: "key_1", AccountID: "acc_1"})
	v := auth.NewVerifier(st, auth.WithClock(clock.Now))
	cause := errors.New("connection refused")
	st.setFail(cause)
	_, err := v.Verify(context.Background(), k)
	if !errors.Is(err, auth.ErrUnavailable) || !errors.Is(err, cause) {
		t.Fatalf("Verify() with failing store error = %v, want ErrUnavailable wrapping the cause", err)
	}
	for _, notWant := range []error{auth.ErrUnknown, auth.ErrRevoked, auth.ErrMalformed, auth.ErrExpired} {
		if errors.Is(err, notWant) {
			t.Errorf("Verify() with failing store error %v matches %v", err, notWant)
		}
	}
	// Failures are not cached: the next call after recovery succeeds.
	st.setFail(nil)
	if _, err := v.Verify(context.Background(), k); err != nil {
		t.Fatalf("Verify() after store recovery: %v", err)
	}
}

func TestVerifyCache(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	st := newFakeStore()
	k := mustKey(t, true)
	st.add(k, auth.KeyRecord{ID: "key_1", AccountID: "acc_1", Scopes: []string{"*"}})
	v := auth.NewVerifier(st, auth.WithClock(clock.Now))

	verify := func(wantErr error, wantLookups int64) {
		t.Helper()
		_, err := v.Verify(ctx, k)
		if !errors.Is(err, wantErr) || (wantErr == nil) != (err == nil) {
			t.Fatalf("Verify() error = %v, want %v", err, wantErr)
		}
		if n := st.lookups.Load(); n != wantLookups {
			t.Fatalf("store lookups = %d, want %d", n, wantLookups)
		}
	}
	verify(nil, 1)
	verify(nil, 1) // cached

	// Revocation is seen once the TTL has passed, not before.
	st.update(k, func(r *auth.KeyRecord) { r.RevokedAt = ptr(clock.Now()) })
	clock.Add(auth.DefaultTTL - time.Nanosecond)
	verify(nil, 1)
	clock.Add(time.Nanosecond)
	verify(auth.ErrRevoked, 2)
	verify(auth.ErrRevoked, 2) // revoked answers are cached too

	// Expiry is checked on cache hits, against the clock.
	k2 := mustKey(t, false)
	st.add(k2, auth.KeyRecord{ID: "key_2", AccountID: "acc_1", ExpiresAt: ptr(clock.Now().Add(500 * time.Millisecond))})
	if _, err := v.Verify(ctx, k2); err != nil {
		t.Fatalf("Verify(k2): %v", err)
	}
	clock.Add(499 * time.Millisecond)
	if _, err := v.Verify(ctx, k2); err != nil {
		t.Fatalf("Verify(k2) 1ms before expiry: %v", err)
	}
	clock.Add(time.Millisecond)
	lookups := st.lookups.Load()
	if _, err := v.Verify(ctx, k2); !errors.Is(err, auth.ErrExpired) {
		t.Fatalf("Verify(k2) at expiry error = %v, want ErrExpired", err)
	}
	if st.lookups.Load() != lookups {
		t.Error("expiry check on a cache hit went to the store")
	}

	// A clock that goes backwards does not extend a cached answer.
	clock.Add(-time.Hour)
	lookups = st.lookups.Load()
	_, _ = v.Verify(ctx, k)
	if st.lookups.Load() != lookups+1 {
		t.Error("entry fetched in the future was served from cache")
	}
}

func TestVerifyNegativeCache(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	st := newFakeStore()
	k := mustKey(t, true)
	v := auth.NewVerifier(st, auth.WithClock(clock.Now), auth.WithNegativeTTL(200*time.Millisecond))
	for range 3 {
		if _, err := v.Verify(ctx, k); !errors.Is(err, auth.ErrUnknown) {
			t.Fatalf("Verify(unknown) error = %v, want ErrUnknown", err)
		}
	}
	if n := st.lookups.Load(); n != 1 {
		t.Fatalf("lookups for a repeated unknown key = %d, want 1", n)
	}
	// The key is created; it works once the negative TTL has passed.
	st.add(k, auth.KeyRecord{ID: "key_1", AccountID: "acc_1"})
	clock.Add(199 * time.Millisecond)
	if _, err := v.Verify(ctx, k); !errors.Is(err, auth.ErrUnknown) {
		t.Fatalf("Verify() within negative TTL error = %v, want ErrUnknown", err)
	}
	clock.Add(time.Millisecond)
	if _, err := v.Verify(ctx, k); err != nil {
		t.Fatalf("Verify() after negative TTL: %v", err)
	}
}

func TestVerifyNoCache(t *testing.T) {
	clock := newClock()
	st := newFakeStore()
	k := mustKey(t, true)
	st.add(k, auth.KeyRecord{ID: "key_1", AccountID: "acc_1"})
	v := auth.NewVerifier(st, auth.WithClock(clock.Now), auth.WithTTL(0), auth.WithNegativeTTL(0))
	for range 3 {
		if _, err := v.Verify(context.Background(), k); err != nil {
			t.Fatal(err)
		}
	}
	if n := st.lookups.Load(); n != 3 {
		t.Errorf("lookups with caching off = %d, want 3", n)
	}
	if n := v.CacheLen(); n != 0 {
		t.Errorf("CacheLen with caching off = %d, want 0", n)
	}
	// Uses are still recorded.
	if err := v.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if calls := st.touchCalls(); len(calls) != 1 || !calls[0]["key_1"].Equal(clock.Now()) {
		t.Errorf("TouchKeys calls = %v, want one with key_1 at %v", calls, clock.Now())
	}
}

func TestVerifyCacheBounded(t *testing.T) {
	clock := newClock()
	st := newFakeStore()
	v := auth.NewVerifier(st, auth.WithClock(clock.Now), auth.WithMaxEntries(32))
	for i := range 1000 {
		k := mustKey(t, true)
		if i%2 == 0 {
			st.add(k, auth.KeyRecord{ID: fmt.Sprint("key_", i), AccountID: "acc_1"})
		}
		_, _ = v.Verify(context.Background(), k)
		if n := v.CacheLen(); n > 32 {
			t.Fatalf("after %d keys CacheLen = %d, want ≤ 32", i+1, n)
		}
	}
	// Uses of evicted keys are not lost.
	if err := v.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	calls := st.touchCalls()
	if len(calls) != 1 || len(calls[0]) != 500 {
		t.Fatalf("TouchKeys calls = %d (first with %d keys), want 1 with 500", len(calls), len(firstOr(calls)))
	}
}

func firstOr(c []map[string]time.Time) map[string]time.Time {
	if len(c) == 0 {
		return nil
	}
	return c[0]
}

func TestFlush(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	t0 := clock.Now()
	st := newFakeStore()
	k1, k2 := mustKey(t, true), mustKey(t, true)
	st.add(k1, auth.KeyRecord{ID: "key_1", AccountID: "acc_1"})
	st.add(k2, auth.KeyRecord{ID: "key_2", AccountID: "acc_1"})
	v := auth.NewVerifier(st, auth.WithClock(clock.Now))

	if err := v.Flush(ctx); err != nil || len(st.touchCalls()) != 0 {
		t.Fatalf("Flush with nothing used: err %v, %d store calls; want nil, 0", err, len(st.touchCalls()))
	}
	for range 100 {
		mustVerify(t, v, k1)
	}
	clock.Add(300 * time.Millisecond)
	mustVerify(t, v, k2)
	clock.Add(900 * time.Millisecond) // past the TTL and the touch granularity
	mustVerify(t, v, k1)
	if err := v.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	want := []map[string]time.Time{{
		"key_1": t0.Add(1200 * time.Millisecond),
		"key_2": t0.Add(300 * time.Millisecond),
	}}
	if diff := cmp.Diff(want, st.touchCalls()); diff != "" {
		t.Fatalf("TouchKeys batches mismatch (-want +got):\n%s", diff)
	}

	// A failed flush keeps its uses for the next one.
	clock.Add(time.Second)
	mustVerify(t, v, k2)
	st.setFail(errors.New("down"))
	if err := v.Flush(ctx); err == nil {
		t.Fatal("Flush with failing store: nil error")
	}
	st.setFail(nil)
	if err := v.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	calls := st.touchCalls()
	if diff := cmp.Diff(map[string]time.Time{"key_2": t0.Add(2200 * time.Millisecond)}, calls[len(calls)-1]); diff != "" {
		t.Errorf("retried TouchKeys mismatch (-want +got):\n%s", diff)
	}
}

func mustVerify(t *testing.T, v *auth.Verifier, k string) auth.Principal {
	t.Helper()
	p, err := v.Verify(context.Background(), k)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return p
}

func TestForget(t *testing.T) {
	clock := newClock()
	st := newFakeStore()
	k := mustKey(t, true)
	st.add(k, auth.KeyRecord{ID: "key_1", AccountID: "acc_1"})
	v := auth.NewVerifier(st, auth.WithClock(clock.Now))
	mustVerify(t, v, k)
	st.update(k, func(r *auth.KeyRecord) { r.RevokedAt = ptr(clock.Now()) })
	v.Forget(auth.Hash(k))
	if _, err := v.Verify(context.Background(), k); !errors.Is(err, auth.ErrRevoked) {
		t.Fatalf("Verify() after Forget error = %v, want ErrRevoked", err)
	}
	// The use recorded before Forget is still flushed.
	if err := v.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if calls := st.touchCalls(); len(calls) != 1 || calls[0]["key_1"].IsZero() {
		t.Errorf("TouchKeys calls = %v, want one with key_1", calls)
	}
}

func TestVerifyConcurrent(t *testing.T) {
	clock := newClock()
	st := newFakeStore()
	keys := make([]string, 8)
	for i := range keys {
		keys[i] = mustKey(t, true)
		st.add(keys[i], auth.KeyRecord{ID: fmt.Sprint("key_", i), AccountID: "acc_1"})
	}
	v := auth.NewVerifier(st, auth.WithClock(clock.Now), auth.WithMaxEntries(16))
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				if _, err := v.Verify(context.Background(), keys[(g+i)%len(keys)]); err != nil {
					t.Errorf("Verify: %v", err)
					return
				}
				if i%50 == 0 {
					clock.Add(100 * time.Millisecond)
					_ = v.Flush(context.Background())
				}
			}
		})
	}
	wg.Wait()
}

func TestRunFlushesOnStop(t *testing.T) {
	st := newFakeStore()
	k := mustKey(t, true)
	st.add(k, auth.KeyRecord{ID: "key_1", AccountID: "acc_1"})
	v := auth.NewVerifier(st)
	mustVerify(t, v, k)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := v.Run(ctx, time.Hour); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if calls := st.touchCalls(); len(calls) != 1 {
		t.Errorf("TouchKeys calls after Run stopped = %d, want 1", len(calls))
	}
}

func BenchmarkVerifyCached(b *testing.B) {
	st := newFakeStore()
	k := mustKey(b, true)
	st.add(k, auth.KeyRecord{ID: "key_1", AccountID: "acc_1", Scopes: []string{"leads:read", "leads:write"}})
	v := auth.NewVerifier(st, auth.WithTTL(time.Hour))
	ctx := context.Background()
	if _, err := v.Verify(ctx, k); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, k); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyCachedParallel(b *testing.B) {
	st := newFakeStore()
	k := mustKey(b, true)
	st.add(k, auth.KeyRecord{ID: "key_1", AccountID: "acc_1", Scopes: []string{"*"}})
	v := auth.NewVerifier(st, auth.WithTTL(time.Hour))
	ctx := context.Background()
	if _, err := v.Verify(ctx, k); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := v.Verify(ctx, k); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkParseKeyMalformed(b *testing.B) {
	k := mustKey(b, true)
	bad := k[:len(k)-1] + flip(k[len(k)-1])
	b.ReportAllocs()
	for b.Loop() {
		_, _ = auth.ParseKey(bad)
	}
}

func TestVerifyCachedAllocs(t *testing.T) {
	st := newFakeStore()
	k := mustKey(t, true)
	st.add(k, auth.KeyRecord{ID: "key_1", AccountID: "acc_1", Scopes: []string{"*"}})
	v := auth.NewVerifier(st, auth.WithTTL(time.Hour))
	ctx := context.Background()
	mustVerify(t, v, k)
	if n := testing.AllocsPerRun(1000, func() { _, _ = v.Verify(ctx, k) }); n > 1 {
		t.Errorf("Verify(cached) allocs = %v, want ≤ 1", n)
	}
}

func TestIsPrincipalKey(t *testing.T) {
	type other struct{}
	for _, c := range []struct {
		key  any
		want bool
	}{{auth.PrincipalKey, true}, {other{}, false}, {nil, false}, {"principal", false}} {
		if got := auth.IsPrincipalKey(c.key); got != c.want {
			t.Errorf("IsPrincipalKey(%#v) = %v, want %v", c.key, got, c.want)
		}
	}
}

// TestVerifyArrivalTime: a Verifier on the system clock judges expiry at
// the request's arrival time when the context carries one read from that
// clock; one given a clock, or a time from another clock, is not affected.
func TestVerifyArrivalTime(t *testing.T) {
	st := newFakeStore()
	k := mustKey(t, true)
	st.add(k, auth.KeyRecord{ID: "key_k", AccountID: "acc_1", ExpiresAt: ptr(time.Now().Add(time.Hour))})
	later := arrival.With(context.Background(), time.Now().Add(2*time.Hour)) // monotonic, from time.Now
	fake := arrival.With(context.Background(), time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC))
	tests := []struct {
		name    string
		opts    []auth.Option
		ctx     context.Context
		wantErr error
	}{
		{"system clock, arrival after expiry", nil, later, auth.ErrExpired},
		{"system clock, arrival from another clock", nil, fake, nil},
		{"system clock, no arrival", nil, context.Background(), nil},
		{"own clock, arrival ignored", []auth.Option{auth.WithClock(time.Now)}, later, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := auth.NewVerifier(st, tt.opts...)
			if _, err := v.Verify(tt.ctx, k); !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Errorf("Verify() error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// TestVerifyArrivalOutOfOrder: a request that arrived before the one that
// loaded the cache entry (so the entry looks younger than zero) uses the
// entry; it neither asks the store again nor replaces it.
func TestVerifyArrivalOutOfOrder(t *testing.T) {
	st := newFakeStore()
	k := mustKey(t, true)
	st.add(k, auth.KeyRecord{ID: "key_k", AccountID: "acc_1"})
	v := auth.NewVerifier(st)
	t0 := time.Now()
	for _, at := range []time.Time{t0.Add(time.Millisecond), t0, t0.Add(time.Millisecond)} {
		if _, err := v.Verify(arrival.With(context.Background(), at), k); err != nil {
			t.Fatal(err)
		}
	}
	if n := st.lookups.Load(); n != 1 {
		t.Errorf("store lookups = %d, want 1", n)
	}
}
