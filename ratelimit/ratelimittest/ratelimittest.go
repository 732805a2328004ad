// Package ratelimittest is the conformance suite every ratelimit.Store must
// pass. Run it from a store's tests:
//
//	func TestConformance(t *testing.T) {
//		ratelimittest.Run(t, func(t *testing.T) ratelimit.Store { return newStore(t) })
//	}
//
// The suite cannot control a store's clock (a Redis store reads the server's
// TIME), so it uses policies whose refill over the test's run time is
// negligible (windows of an hour or a day) and checks durations within a
// tolerance of Slack. Every subtest uses its own keys, so newStore may return
// stores that share state.
package ratelimittest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tollgate-dev/tollgate/ratelimit"
)

// Slack is how far below its exact value a duration in a Result may be:
// real time passes between the store's clock reading and the test's
// expectations. Durations are never above their exact value.
const Slack = 10 * time.Second

// Run runs the conformance suite against the stores newStore returns. It is
// safe to call from parallel tests; its subtests call t.Parallel.
func Run(t *testing.T, newStore func(t *testing.T) ratelimit.Store) {
	t.Run("Decisions", func(t *testing.T) { t.Parallel(); testDecisions(t, newStore(t)) })
	t.Run("MultiPolicy", func(t *testing.T) { t.Parallel(); testMultiPolicy(t, newStore(t)) })
	t.Run("Invalid", func(t *testing.T) { t.Parallel(); testInvalid(t, newStore(t)) })
	t.Run("Extremes", func(t *testing.T) { t.Parallel(); testExtremes(t, newStore(t)) })
	t.Run("KeysIndependent", func(t *testing.T) { t.Parallel(); testKeysIndependent(t, newStore(t)) })
	t.Run("ConcurrentExact", func(t *testing.T) { t.Parallel(); testConcurrentExact(t, newStore(t)) })
}

// take is one call and its expected Result.
type take struct {
	cost int
	want ratelimit.Result
}

// approx compares durations allowing them to be up to Slack below the
// expected value (never above).
var approx = cmp.Comparer(func(a, b time.Duration) bool {
	if a > b {
		a, b = b, a
	}
	return b-a <= Slack
})

func check(t *testing.T, s ratelimit.Store, key string, policies []ratelimit.Policy, steps []take) {
	t.Helper()
	for i, st := range steps {
		got, err := s.Take(context.Background(), key, policies, st.cost)
		if err != nil {
			t.Fatalf("step %d: Take(%q, cost %d) error: %v", i, key, st.cost, err)
		}
		if got.RetryAfter > st.want.RetryAfter || got.ResetAfter > st.want.ResetAfter {
			t.Errorf("step %d: Take(%q, cost %d) = %+v: durations above exact %+v", i, key, st.cost, got, st.want)
		}
		if diff := cmp.Diff(st.want, got, approx, cmpopts.IgnoreFields(ratelimit.Result{}, "Degraded")); diff != "" {
			t.Errorf("step %d: Take(%q, cost %d) mismatch (-want +got):\n%s", i, key, st.cost, diff)
		}
		if got.Degraded {
			t.Errorf("step %d: Take(%q, cost %d) is Degraded; the store should be healthy", i, key, st.cost)
		}
	}
}

func testDecisions(t *testing.T, s ratelimit.Store) {
	hour := ratelimit.Policy{Name: "hourly", Limit: 3, Window: time.Hour} // T = 20m
	ten := ratelimit.Policy{Name: "ten", Limit: 10, Window: time.Hour}    // T = 6m
	burst := ratelimit.Policy{Name: "burst", Limit: 6, Window: time.Hour, Burst: 2}
	unnamed := ratelimit.Policy{Limit: 2, Window: time.Hour}
	res := func(p ratelimit.Policy, allowed bool, remaining int, retry, reset time.Duration) ratelimit.Result {
		name := p.Name
		if name == "" {
			name = p.String()
		}
		return ratelimit.Result{Allowed: allowed, Limit: p.Limit, Remaining: remaining,
			RetryAfter: retry, ResetAfter: reset, Policy: name, Window: p.Window}
	}
	m := time.Minute
	tests := []struct {
		name   string
		policy ratelimit.Policy
		steps  []take
	}{
		{"burst then deny", hour, []take{
			{1, res(hour, true, 2, 0, 20*m)},
			{1, res(hour, true, 1, 0, 40*m)},
			{1, res(hour, true, 0, 0, 60*m)},
			{1, res(hour, false, 0, 20*m, 60*m)},
			{1, res(hour, false, 0, 20*m, 60*m)},
		}},
		{"cost above one", ten, []take{
			{4, res(ten, true, 6, 0, 24*m)},
			{7, res(ten, false, 6, 6*m, 24*m)}, // denied: nothing consumed
			{6, res(ten, true, 0, 0, 60*m)},
			{1, res(ten, false, 0, 6*m, 60*m)},
		}},
		{"cost equal to burst", ten, []take{
			{10, res(ten, true, 0, 0, 60*m)},
			{10, res(ten, false, 0, 60*m, 60*m)}, // finite retry
		}},
		{"cost zero peeks", ten, []take{
			{0, res(ten, true, 10, 0, 0)},
			{3, res(ten, true, 7, 0, 18*m)},
			{0, res(ten, true, 7, 0, 18*m)},
			{0, res(ten, true, 7, 0, 18*m)},
		}},
		{"burst below limit", burst, []take{
			{1, res(burst, true, 1, 0, 10*m)},
			{1, res(burst, true, 0, 0, 20*m)},
			{1, res(burst, false, 0, 10*m, 20*m)},
		}},
		{"unnamed policy", unnamed, []take{
			{1, res(unnamed, true, 1, 0, 30*m)},
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check(t, s, fmt.Sprintf("decisions-%d", i), []ratelimit.Policy{tt.policy}, tt.steps)
		})
	}
}

func testMultiPolicy(t *testing.T, s ratelimit.Store) {
	short := ratelimit.Policy{Name: "short", Limit: 2, Window: time.Hour}    // T = 30m
	long := ratelimit.Policy{Name: "long", Limit: 5, Window: 24 * time.Hour} // T = 4h48m
	h := time.Hour
	both := []ratelimit.Policy{short, long}
	ctx := context.Background()

	t.Run("denied by short consumes nothing in long", func(t *testing.T) {
		key := "multi-short"
		check(t, s, key, both, []take{
			{1, ratelimit.Result{Allowed: true, Limit: 2, Remaining: 1, ResetAfter: 30 * time.Minute, Policy: "short", Window: h}},
			{1, ratelimit.Result{Allowed: true, Limit: 2, Remaining: 0, ResetAfter: h, Policy: "short", Window: h}},
			{1, ratelimit.Result{Allowed: false, Limit: 2, Remaining: 0, RetryAfter: 30 * time.Minute, ResetAfter: h, Policy: "short", Window: h}},
			{1, ratelimit.Result{Allowed: false, Limit: 2, Remaining: 0, RetryAfter: 30 * time.Minute, ResetAfter: h, Policy: "short", Window: h}},
		})
		// Two admitted, two denied: long must have counted exactly two.
		got, err := s.Take(ctx, key, []ratelimit.Policy{long}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got.Remaining != 3 {
			t.Errorf("long policy remaining = %d after 2 admitted and 2 denied, want 3", got.Remaining)
		}
	})

	t.Run("denied by long consumes nothing in short", func(t *testing.T) {
		key := "multi-long"
		wide := ratelimit.Policy{Name: "wide", Limit: 10, Window: h} // T = 6m
		tight := ratelimit.Policy{Name: "tight", Limit: 3, Window: 24 * h}
		ps := []ratelimit.Policy{wide, tight}
		check(t, s, key, ps, []take{
			{2, ratelimit.Result{Allowed: true, Limit: 3, Remaining: 1, ResetAfter: 16 * h, Policy: "tight", Window: 24 * h}},
			{2, ratelimit.Result{Allowed: false, Limit: 3, Remaining: 1, RetryAfter: 8 * h, ResetAfter: 16 * h, Policy: "tight", Window: 24 * h}},
		})
		got, err := s.Take(ctx, key, []ratelimit.Policy{wide}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got.Remaining != 8 {
			t.Errorf("wide policy remaining = %d after cost 2 admitted and cost 2 denied, want 8", got.Remaining)
		}
	})

	t.Run("most restrictive reported", func(t *testing.T) {
		hourly := ratelimit.Policy{Name: "hourly", Limit: 10, Window: h}
		daily := ratelimit.Policy{Name: "daily", Limit: 100, Window: 24 * h}
		check(t, s, "multi-report", []ratelimit.Policy{daily, hourly}, []take{
			{1, ratelimit.Result{Allowed: true, Limit: 10, Remaining: 9, ResetAfter: 6 * time.Minute, Policy: "hourly", Window: h}},
		})
		// Same remaining: the longer reset wins.
		a := ratelimit.Policy{Name: "a", Limit: 2, Window: h}
		b := ratelimit.Policy{Name: "b", Limit: 2, Window: 2 * h}
		check(t, s, "multi-tie", []ratelimit.Policy{a, b}, []take{
			{1, ratelimit.Result{Allowed: true, Limit: 2, Remaining: 1, ResetAfter: h, Policy: "b", Window: 2 * h}},
		})
	})

	t.Run("policies shared across policy sets", func(t *testing.T) {
		key := "multi-shared"
		if _, err := s.Take(ctx, key, both, 1); err != nil {
			t.Fatal(err)
		}
		got, err := s.Take(ctx, key, []ratelimit.Policy{short}, 1)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Allowed || got.Remaining != 0 {
			t.Errorf("short alone after one take with both = %+v, want allowed with 0 remaining", got)
		}
		got, err = s.Take(ctx, key, []ratelimit.Policy{long}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got.Remaining != 4 {
			t.Errorf("long remaining = %d, want 4 (one take with both, one with short alone)", got.Remaining)
		}
	})

	t.Run("duplicate policy counts once", func(t *testing.T) {
		check(t, s, "multi-dup", []ratelimit.Policy{short, short}, []take{
			{1, ratelimit.Result{Allowed: true, Limit: 2, Remaining: 1, ResetAfter: 30 * time.Minute, Policy: "short", Window: h}},
		})
	})
}

func testInvalid(t *testing.T, s ratelimit.Store) {
	ok := ratelimit.Policy{Name: "ok", Limit: 5, Window: time.Minute}
	tests := []struct {
		name     string
		policies []ratelimit.Policy
		cost     int
		is       error // nil: any error
	}{
		{"no policies", nil, 1, nil},
		{"negative cost", []ratelimit.Policy{ok}, -1, nil},
		{"zero limit", []ratelimit.Policy{{Limit: 0, Window: time.Second}}, 1, nil},
		{"zero window", []ratelimit.Policy{{Limit: 1}}, 1, nil},
		{"negative burst", []ratelimit.Policy{{Limit: 1, Window: time.Second, Burst: -1}}, 1, nil},
		{"tolerance beyond MaxTolerance", []ratelimit.Policy{{Limit: 1, Window: time.Hour, Burst: 1 << 40}}, 1, nil},
		// 2^51 ns is fine, but a store counting microseconds rounds the
		// interval up to 1 µs: 2^51 µs. Every store refuses it alike.
		{"tolerance beyond MaxTolerance in microseconds", []ratelimit.Policy{{Limit: 1, Window: 1, Burst: 1 << 51}}, 1, nil},
		{"cost exceeds burst", []ratelimit.Policy{ok}, 6, ratelimit.ErrCostExceedsBurst},
		{"cost exceeds second policy", []ratelimit.Policy{ok, {Limit: 100, Window: time.Hour, Burst: 2}}, 3, ratelimit.ErrCostExceedsBurst},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Take(context.Background(), "invalid", tt.policies, tt.cost)
			if err == nil {
				t.Fatalf("Take(%v, %d) = %+v, want error", tt.policies, tt.cost, got)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("Take(%v, %d) error = %v, want errors.Is %v", tt.policies, tt.cost, err, tt.is)
			}
			if errors.Is(err, ratelimit.ErrUnavailable) {
				t.Errorf("Take(%v, %d) error = %v: an invalid call is not an outage", tt.policies, tt.cost, err)
			}
		})
	}
	// The same refusals for a key whose state already exists.
	if _, err := s.Take(context.Background(), "invalid-known", []ratelimit.Policy{ok}, 0); err != nil {
		t.Fatalf("Take(cost 0): %v", err)
	}
	for _, cost := range []int{-1, 6} {
		if got, err := s.Take(context.Background(), "invalid-known", []ratelimit.Policy{ok}, cost); err == nil {
			t.Errorf("Take(known key, cost %d) = %+v, want error", cost, got)
		}
	}
	if got, err := s.Take(context.Background(), "invalid-known", []ratelimit.Policy{ok}, 5); err != nil || !got.Allowed {
		t.Errorf("Take(known key, cost 5) after invalid calls = %+v, %v; want allowed", got, err)
	}
	// The invalid calls consumed nothing.
	got, err := s.Take(context.Background(), "invalid", []ratelimit.Policy{ok}, 5)
	if err != nil || !got.Allowed {
		t.Errorf("Take(cost 5) after invalid calls = %+v, %v; want allowed", got, err)
	}
}

// testExtremes: every policy Validate accepts is decided, however far it
// is from everyday values.
func testExtremes(t *testing.T, s ratelimit.Store) {
	// More units than nanoseconds in the window: the interval is rounded
	// up to one unit of the store's clock.
	huge := ratelimit.Policy{Name: "huge", Limit: math.MaxInt64, Window: time.Second, Burst: 1}
	for i := range 3 {
		got, err := s.Take(context.Background(), "extreme-huge", []ratelimit.Policy{huge}, 1)
		if err != nil || got.Limit != math.MaxInt64 || got.Degraded || got.ResetAfter > time.Millisecond || got.RetryAfter > time.Millisecond {
			t.Errorf("Take #%d under %v = %+v, %v; want a decision with a reset within a millisecond", i, huge, got, err)
		}
	}
	// The longest tolerance there is, in microseconds.
	w := ratelimit.MaxTolerance / time.Microsecond * time.Microsecond
	longest := ratelimit.Policy{Name: "longest", Limit: 1, Window: w}
	check(t, s, "extreme-longest", []ratelimit.Policy{longest}, []take{
		{1, ratelimit.Result{Allowed: true, Limit: 1, Remaining: 0, ResetAfter: w, Policy: "longest", Window: w}},
		{1, ratelimit.Result{Allowed: false, Limit: 1, Remaining: 0, RetryAfter: w, ResetAfter: w, Policy: "longest", Window: w}},
	})
}

func testKeysIndependent(t *testing.T, s ratelimit.Store) {
	p := []ratelimit.Policy{{Name: "one", Limit: 1, Window: time.Hour}}
	ctx := context.Background()
	for _, key := range []string{"indep-a", "indep-b", "indep-a\x00", "INDEP-A", ""} {
		got, err := s.Take(ctx, key, p, 1)
		if err != nil || !got.Allowed {
			t.Errorf("first Take(%q) = %+v, %v; want allowed", key, got, err)
		}
	}
	got, err := s.Take(ctx, "indep-a", p, 1)
	if err != nil || got.Allowed {
		t.Errorf("second Take(indep-a) = %+v, %v; want denied", got, err)
	}
}

// testConcurrentExact: 64 goroutines × 40 attempts on one key with limit
// 100 per hour (refill over the test ≈ 0) admit exactly 100.
func testConcurrentExact(t *testing.T, s ratelimit.Store) {
	const goroutines, attempts, limit = 64, 40, 100
	policies := []ratelimit.Policy{{Name: "exact", Limit: limit, Window: time.Hour}}
	var admitted, denied atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, goroutines)
	for range goroutines {
		wg.Go(func() {
			<-start
			for range attempts {
				r, err := s.Take(context.Background(), "concurrent", policies, 1)
				if err != nil {
					errs <- err
					return
				}
				if r.Allowed {
					admitted.Add(1)
				} else {
					denied.Add(1)
					if r.RetryAfter <= 0 || r.Remaining != 0 {
						errs <- fmt.Errorf("denied result %+v: want RetryAfter > 0 and Remaining 0", r)
						return
					}
				}
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := admitted.Load(); got != limit {
		t.Errorf("admitted %d of %d concurrent attempts, want exactly %d", got, goroutines*attempts, limit)
	}
	if got, want := admitted.Load()+denied.Load(), int64(goroutines*attempts); got != want {
		t.Errorf("decided %d attempts, want %d", got, want)
	}
}
