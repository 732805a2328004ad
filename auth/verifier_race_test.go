package auth_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/auth"
)

// gatedStore answers from fakeStore but parks its first lookup after reading
// the record and before returning it.
type gatedStore struct {
	*fakeStore
	n    atomic.Int32
	read chan struct{} // the first lookup has read the record
	gate chan struct{} // closed to let it return
}

func (s *gatedStore) LookupKeyByHash(ctx context.Context, h [32]byte) (auth.KeyRecord, error) {
	r, err := s.fakeStore.LookupKeyByHash(ctx, h)
	if s.n.Add(1) == 1 {
		s.read <- struct{}{}
		<-s.gate
	}
	return r, err
}

// TestVerifierForgetBeatsLoadInFlight: a lookup that read the key before it
// was revoked, and returns after the revoking instance's Forget, must not
// cache its stale answer: the revoking instance refuses the key at once
// (internal/api/keys.go), not a TTL later.
func TestVerifierForgetBeatsLoadInFlight(t *testing.T) {
	clock := newClock()
	st := &gatedStore{fakeStore: newFakeStore(), read: make(chan struct{}), gate: make(chan struct{})}
	k := mustKey(t, true)
	st.add(k, auth.KeyRecord{ID: "key_1", AccountID: "acc_1"})
	v := auth.NewVerifier(st, auth.WithClock(clock.Now))
	done := make(chan error)
	go func() { _, err := v.Verify(context.Background(), k); done <- err }()
	<-st.read // the in-flight lookup saw the key valid
	st.update(k, func(r *auth.KeyRecord) { r.RevokedAt = ptr(clock.Now()) })
	v.Forget(auth.Hash(k)) // what the revoke handler does
	close(st.gate)
	if err := <-done; err != nil {
		t.Fatalf("in-flight Verify: %v", err)
	}
	if _, err := v.Verify(context.Background(), k); !errors.Is(err, auth.ErrRevoked) {
		t.Errorf("Verify after revoke+Forget = %v, want ErrRevoked (stale valid answer re-cached by an in-flight lookup)", err)
	}
}

// TestVerifierLatestUseFlushed: the latest use of a key reaches the store,
// even when it is recorded concurrently with another use, or on an entry
// that Forget (or a replacement, or an eviction) has just taken out of the
// cache. Each case runs many rounds: the races are narrow.
func TestVerifierLatestUseFlushed(t *testing.T) {
	// The interleaving the concurrent rounds below can only hope to hit:
	// a use recorded on an entry Forget has just taken out of the cache.
	t.Run("use after Forget", func(t *testing.T) {
		t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		st := newFakeStore()
		k := mustKey(t, true)
		st.add(k, auth.KeyRecord{ID: "key_1", AccountID: "acc_1"})
		v := auth.NewVerifier(st, auth.WithClock(func() time.Time { return t0 }), auth.WithTTL(time.Hour))
		if _, err := v.Verify(context.Background(), k); err != nil {
			t.Fatal(err)
		}
		later := t0.Add(time.Minute)
		if !v.ForgetThenTouch(auth.Hash(k), later) {
			t.Fatal("key not cached after Verify")
		}
		if err := v.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := st.lastTouch("key_1"); !got.Equal(later) {
			t.Errorf("last_used_at flushed = %v, want the latest use %v", got, later)
		}
	})
	for _, tt := range []struct {
		name   string
		forget bool
	}{
		{"two uses at once", false},
		{"two uses and a Forget at once", true},
	} {
		t.Run(tt.name, func(t *testing.T) { checkLatestUseFlushed(t, tt.forget) })
	}
}

func checkLatestUseFlushed(t *testing.T, forget bool) {
	lost := 0
	const iters = 20000
	for range iters {
		var tick atomic.Int64
		base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		clock := func() time.Time { return base.Add(time.Duration(tick.Add(1)) * 2 * time.Second) }
		st := newFakeStore()
		k := mustKey(t, true)
		st.add(k, auth.KeyRecord{ID: "key_1", AccountID: "acc_1"})
		v := auth.NewVerifier(st, auth.WithClock(clock), auth.WithTTL(time.Hour))
		if _, err := v.Verify(context.Background(), k); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() {
				if _, err := v.Verify(context.Background(), k); err != nil {
					t.Error(err)
				}
			})
		}
		if forget {
			wg.Go(func() { v.Forget(auth.Hash(k)) })
		}
		wg.Wait()
		if err := v.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		if want := base.Add(time.Duration(tick.Load()) * 2 * time.Second); !st.lastTouch("key_1").Equal(want) {
			lost++
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d runs flushed an older last_used_at than the latest use", lost, iters)
	}
}
