package ratelimit_test

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tollgate-dev/tollgate/arrival"
	"github.com/tollgate-dev/tollgate/ratelimit"
	"github.com/tollgate-dev/tollgate/ratelimit/ratelimittest"
)

// fakeClock is a clock tests move by hand. Safe for concurrent use.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	reads int
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reads++
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestMemoryConformance(t *testing.T) {
	ratelimittest.Run(t, func(t *testing.T) ratelimit.Store {
		return ratelimit.NewMemoryStore(ratelimit.MemoryOptions{})
	})
}

func TestMemoryConformanceFakeClock(t *testing.T) {
	ratelimittest.Run(t, func(t *testing.T) ratelimit.Store {
		return ratelimit.NewMemoryStore(ratelimit.MemoryOptions{Now: newFakeClock().Now})
	})
}

// TestMemoryRefill checks refill and exact boundaries with a fake clock.
func TestMemoryRefill(t *testing.T) {
	ten := ratelimit.Policy{Name: "ten", Limit: 10, Window: time.Second} // T = 100ms
	ms := time.Millisecond
	type step struct {
		advance time.Duration
		cost    int
		want    ratelimit.Result
	}
	res := func(allowed bool, remaining int, retry, reset time.Duration) ratelimit.Result {
		return ratelimit.Result{Allowed: allowed, Limit: 10, Remaining: remaining, RetryAfter: retry,
			ResetAfter: reset, Policy: "ten", Window: time.Second}
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"refill one interval", []step{
			{0, 10, res(true, 0, 0, 1000*ms)},
			{0, 1, res(false, 0, 100*ms, 1000*ms)},
			{99 * ms, 1, res(false, 0, 1*ms, 901*ms)},
			{1 * ms, 1, res(true, 0, 0, 1000*ms)}, // exactly at TAT − τ: admitted
			{50 * ms, 1, res(false, 0, 50*ms, 950*ms)},
		}},
		{"idle refills to burst, not beyond", []step{
			{0, 5, res(true, 5, 0, 500*ms)},
			{time.Hour, 0, res(true, 10, 0, 0)},
			{0, 10, res(true, 0, 0, 1000*ms)},
		}},
		{"partial refill rounds remaining down", []step{
			{0, 10, res(true, 0, 0, 1000*ms)},
			{250 * ms, 0, res(true, 2, 0, 750*ms)},
			{0, 3, res(false, 2, 50*ms, 750*ms)},
			{0, 2, res(true, 0, 0, 950*ms)},
		}},
		{"steady rate admits one per interval", []step{
			{0, 10, res(true, 0, 0, 1000*ms)},
			{100 * ms, 1, res(true, 0, 0, 1000*ms)},
			{100 * ms, 1, res(true, 0, 0, 1000*ms)},
			{100 * ms, 2, res(false, 1, 100*ms, 900*ms)},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			s := ratelimit.NewMemoryStore(ratelimit.MemoryOptions{Now: clock.Now})
			for i, st := range tt.steps {
				clock.Advance(st.advance)
				got, err := s.Take(context.Background(), "k", []ratelimit.Policy{ten}, st.cost)
				if err != nil {
					t.Fatalf("step %d: Take error: %v", i, err)
				}
				if diff := cmp.Diff(st.want, got); diff != "" {
					t.Errorf("step %d: Take(cost %d) mismatch (-want +got):\n%s", i, st.cost, diff)
				}
			}
		})
	}
}

func TestMemoryTakeAt(t *testing.T) {
	s := ratelimit.NewMemoryStore(ratelimit.MemoryOptions{})
	p := []ratelimit.Policy{{Name: "p", Limit: 2, Window: time.Second}}
	t0 := time.Now()
	for i, tt := range []struct {
		name    string
		at      time.Time
		allowed bool
	}{
		{"first", t0, true},
		{"second", t0, true},
		{"third denied", t0.Add(499 * time.Millisecond), false},
		{"refilled", t0.Add(500 * time.Millisecond), true},
		{"earlier time is not a refill", t0, false},
	} {
		got, err := s.TakeAt(tt.at, "k", p, 1)
		if err != nil {
			t.Fatal(err)
		}
		if got.Allowed != tt.allowed {
			t.Errorf("%d %s: TakeAt(+%v).Allowed = %v, want %v", i, tt.name, tt.at.Sub(t0), got.Allowed, tt.allowed)
		}
	}
}

func TestMemoryReadsClockOnce(t *testing.T) {
	clock := newFakeClock()
	s := ratelimit.NewMemoryStore(ratelimit.MemoryOptions{Now: clock.Now})
	ps := []ratelimit.Policy{{Name: "a", Limit: 10, Window: time.Second}, {Name: "b", Limit: 1000, Window: time.Hour}}
	for i := range 5 {
		before := clock.reads
		if _, err := s.Take(context.Background(), "k", ps, 1); err != nil {
			t.Fatal(err)
		}
		if got := clock.reads - before; got != 1 {
			t.Errorf("Take #%d read the clock %d times, want 1", i, got)
		}
	}
}

func TestMemoryZeroAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts are checked in the full run")
	}
	ctx := context.Background()
	tests := []struct {
		name     string
		policies []ratelimit.Policy
	}{
		{"one policy", []ratelimit.Policy{{Name: "a", Limit: 1000, Window: time.Second}}},
		{"three policies", []ratelimit.Policy{
			{Name: "a", Limit: 10, Window: time.Second},
			{Name: "b", Limit: 600, Window: time.Minute},
			{Name: "c", Limit: 10000, Window: 24 * time.Hour},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := ratelimit.NewMemoryStore(ratelimit.MemoryOptions{})
			if _, err := s.Take(ctx, "key", tt.policies, 1); err != nil {
				t.Fatal(err)
			}
			allocs := testing.AllocsPerRun(1000, func() {
				// Half of these are denials once the burst is spent.
				_, _ = s.Take(ctx, "key", tt.policies, 1)
			})
			if allocs != 0 {
				t.Errorf("Take on an existing key: %v allocs/op, want 0", allocs)
			}
		})
	}
}

func TestMemoryBoundedKeys(t *testing.T) {
	tests := []struct {
		name    string
		maxKeys int
		keys    int
		advance time.Duration // between keys
		wantMax int
	}{
		// Every key still limiting: the bound holds by evicting.
		{"active keys over the bound", 1024, 20000, 0, 1024},
		// Keys go idle after 1s; sweeps keep each shard under 64 keys.
		{"idle keys are swept", 1 << 20, 100000, 10 * time.Millisecond, 256 * 64},
	}
	p := []ratelimit.Policy{{Name: "p", Limit: 1, Window: time.Second}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			s := ratelimit.NewMemoryStore(ratelimit.MemoryOptions{Now: clock.Now, MaxKeys: tt.maxKeys})
			for i := range tt.keys {
				clock.Advance(tt.advance)
				if _, err := s.Take(context.Background(), fmt.Sprint("key-", i), p, 1); err != nil {
					t.Fatal(err)
				}
			}
			if got := s.Len(); got > tt.wantMax {
				t.Errorf("Len() = %d after %d keys, want <= %d", got, tt.keys, tt.wantMax)
			}
		})
	}
}

// TestMemoryNoEvictionBelowBound: a key still limiting is never dropped
// while the store is below its bound.
func TestMemoryNoEvictionBelowBound(t *testing.T) {
	clock := newFakeClock()
	s := ratelimit.NewMemoryStore(ratelimit.MemoryOptions{Now: clock.Now})
	p := []ratelimit.Policy{{Name: "p", Limit: 1, Window: time.Hour}}
	ctx := context.Background()
	if r, _ := s.Take(ctx, "victim", p, 1); !r.Allowed {
		t.Fatal("first take denied")
	}
	for i := range 50000 {
		clock.Advance(time.Millisecond)
		if _, err := s.Take(ctx, fmt.Sprint("other-", i), p, 1); err != nil {
			t.Fatal(err)
		}
	}
	if r, _ := s.Take(ctx, "victim", p, 1); r.Allowed {
		t.Errorf("victim admitted again after 50s of a 1h window: its state was dropped while still limiting")
	}
}

// TestMemoryEvictsIdleFirst fills one shard to its bound with keys still
// limiting under a 1/1h policy and keys that have gone idle, then adds new
// keys: each new key takes the place of an idle one, never of a limiting
// one (which would give it a fresh burst), however far the shard's growth
// has moved its sweep trigger.
func TestMemoryEvictsIdleFirst(t *testing.T) {
	hourly := []ratelimit.Policy{{Name: "hourly", Limit: 1, Window: time.Hour}}
	fast := []ratelimit.Policy{{Name: "fast", Limit: 1000, Window: time.Second}}
	tests := []struct {
		name                  string
		perShard              int // the bound of each shard
		idle, limiting, fresh int // keys put into shard 0
		// rounds > 1: the fresh keys are under the fast policy, and go idle
		// before the next round brings as many new ones.
		rounds int
	}{
		{name: "idle keys make room", perShard: 100, idle: 20, limiting: 80, fresh: 20, rounds: 1},
		// As many idle keys as the room a full shard keeps after a sweep
		// (1/16 of its bound): still no limiting key goes.
		{name: "idle keys at the headroom", perShard: 160, idle: 10, limiting: 150, fresh: 10, rounds: 1},
		{name: "bound above the last sweep trigger", perShard: 200, idle: 50, limiting: 150, fresh: 50, rounds: 1},
		{name: "small bound", perShard: 2, idle: 1, limiting: 1, fresh: 1, rounds: 1},
		{name: "idle keys replaced again and again", perShard: 100, idle: 10, limiting: 90, fresh: 10, rounds: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			s := ratelimit.NewMemoryStore(ratelimit.MemoryOptions{Now: clock.Now, MaxKeys: ratelimit.NumShards * tt.perShard})
			next := 0
			keys := func(n int) []string { // n new keys of shard 0
				var ks []string
				for ; len(ks) < n; next++ {
					if k := fmt.Sprint("key-", next); ratelimit.ShardOf(s, k) == 0 {
						ks = append(ks, k)
					}
				}
				return ks
			}
			take := func(key string, p []ratelimit.Policy) ratelimit.Result {
				t.Helper()
				r, err := s.Take(context.Background(), key, p, 1)
				if err != nil {
					t.Fatalf("Take(%q) error: %v", key, err)
				}
				return r
			}
			limiting := keys(tt.limiting)
			for _, k := range limiting {
				if r := take(k, hourly); !r.Allowed {
					t.Fatalf("first Take(%q) = %+v, want allowed", k, r)
				}
			}
			for _, k := range keys(tt.idle) {
				take(k, fast)
			}
			for round := range tt.rounds {
				clock.Advance(2 * time.Second) // the fast keys are idle again
				for _, k := range keys(tt.fresh) {
					p := hourly
					if tt.rounds > 1 {
						p = fast
					}
					if r := take(k, p); !r.Allowed {
						t.Fatalf("round %d: first Take(%q) = %+v, want allowed", round, k, r)
					}
					if tt.rounds == 1 {
						limiting = append(limiting, k)
					}
					if got := s.Len(); got > tt.perShard {
						t.Fatalf("round %d: Len() = %d, want <= %d", round, got, tt.perShard)
					}
				}
				for _, k := range limiting {
					if r := take(k, hourly); r.Allowed {
						t.Fatalf("round %d: Take(%q) admitted again within its hour: its state was evicted while idle keys remained", round, k)
					}
				}
			}
		})
	}
}

// TestMemoryConcurrentMixed races takes on many keys with different policy
// sets; run with -race.
// TestMemoryRefusedTakeLeavesNoEntry: a Take refused for a policy that
// no store can represent leaves nothing behind, whichever policy is the
// bad one (a half-made entry, idle at once, would be invisible to the
// shard's next sweep).
func TestMemoryRefusedTakeLeavesNoEntry(t *testing.T) {
	ok := ratelimit.Policy{Limit: 1, Window: time.Hour}
	huge := ratelimit.Policy{Limit: 1, Window: time.Hour, Burst: 1 << 40} // tolerance past MaxTolerance
	for _, tt := range []struct {
		name     string
		policies []ratelimit.Policy
	}{
		{"alone", []ratelimit.Policy{huge}},
		{"first", []ratelimit.Policy{huge, ok}},
		{"second", []ratelimit.Policy{ok, huge}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := ratelimit.NewMemoryStore(ratelimit.MemoryOptions{})
			if _, err := s.Take(context.Background(), "k", tt.policies, 1); err == nil {
				t.Fatal("Take accepted a policy past MaxTolerance")
			}
			if n := s.Len(); n != 0 {
				t.Errorf("Len = %d after a refused Take, want 0", n)
			}
		})
	}
}

func TestMemoryConcurrentMixed(t *testing.T) {
	s := ratelimit.NewMemoryStore(ratelimit.MemoryOptions{MaxKeys: 512})
	sets := [][]ratelimit.Policy{
		{{Name: "a", Limit: 5, Window: time.Second}},
		{{Name: "a", Limit: 5, Window: time.Second}, {Name: "b", Limit: 50, Window: time.Minute}},
		{{Name: "b", Limit: 50, Window: time.Minute}, {Name: "c", Limit: 2, Window: time.Millisecond}},
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				key := fmt.Sprint("k", (i*7+g)%1500)
				if _, err := s.Take(context.Background(), key, sets[(i+g)%len(sets)], i%3); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestMemoryExactUnderChurn hammers one key with single- and multi-policy
// decisions while other goroutines add thousands of keys (growing, sweeping
// and rebuilding the key's shard): the key's limit holds exactly.
func TestMemoryExactUnderChurn(t *testing.T) {
	clock := newFakeClock()
	s := ratelimit.NewMemoryStore(ratelimit.MemoryOptions{Now: clock.Now})
	a := ratelimit.Policy{Name: "a", Limit: 100, Window: time.Hour}
	b := ratelimit.Policy{Name: "b", Limit: 60, Window: time.Hour}
	churn := []ratelimit.Policy{{Name: "churn", Limit: 1, Window: time.Millisecond}}
	var admitted, admittedBoth atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			policies := []ratelimit.Policy{a}
			if g%2 == 1 {
				policies = []ratelimit.Policy{a, b}
			}
			for range 100 {
				r, err := s.Take(context.Background(), "hot", policies, 1)
				if err != nil {
					t.Error(err)
					return
				}
				if r.Allowed {
					admitted.Add(1)
					if len(policies) == 2 {
						admittedBoth.Add(1)
					}
				}
			}
		})
	}
	for g := range 4 {
		wg.Go(func() {
			for i := range 3000 {
				clock.Advance(time.Millisecond) // churn keys go idle: sweeps drop them
				if _, err := s.Take(context.Background(), fmt.Sprint("churn-", g, "-", i), churn, 1); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	// 12 s of fake time pass: refill of a (100/h) is 0.33, of b 0.2.
	if got := admitted.Load(); got != 100 {
		t.Errorf("admitted %d under policy a (100/h), want exactly 100", got)
	}
	if got := admittedBoth.Load(); got > 60 {
		t.Errorf("admitted %d under policies a and b (60/h), want at most 60", got)
	}
}

// TestMemoryManyPolicies: more policies than the allocation-free fast
// path handles still decide together.
func TestMemoryManyPolicies(t *testing.T) {
	s := ratelimit.NewMemoryStore(ratelimit.MemoryOptions{Now: newFakeClock().Now})
	var ps []ratelimit.Policy
	for i := range 6 {
		ps = append(ps, ratelimit.Policy{Name: fmt.Sprint("p", i), Limit: 10 - i, Window: time.Hour})
	}
	for i := range 6 {
		r, err := s.Take(context.Background(), "k", ps, 1)
		if err != nil {
			t.Fatal(err)
		}
		want := i < 5 // p5 allows 5
		if r.Allowed != want || r.Policy != "p5" || r.Remaining != max(4-i, 0) {
			t.Errorf("Take #%d = %+v, want allowed %v by p5 with %d remaining", i, r, want, max(4-i, 0))
		}
	}
	// Each policy counted exactly the 5 admitted requests.
	for i, p := range ps {
		r, err := s.Take(context.Background(), "k", []ratelimit.Policy{p}, 0)
		if err != nil || r.Remaining != 10-i-5 {
			t.Errorf("peek %s = %+v, %v; want %d remaining", p.Name, r, err, 10-i-5)
		}
	}
}

// TestMemoryTakeArrival: a store on the system clock decides at the
// request's arrival time when the context carries one read from that
// clock; a store with its own clock, or a time from another clock, is not
// affected.
func TestMemoryTakeArrival(t *testing.T) {
	hourly := []ratelimit.Policy{{Name: "h", Limit: 1, Window: time.Hour}}
	t0 := time.Now()
	later := arrival.With(context.Background(), t0.Add(2*time.Hour)) // monotonic, from time.Now
	fake := arrival.With(context.Background(), time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	tests := []struct {
		name string
		opts ratelimit.MemoryOptions
		ctx  context.Context
		want bool // second Take admitted: only if it was decided two hours on
	}{
		{"system clock, arrival two hours on", ratelimit.MemoryOptions{}, later, true},
		{"system clock, arrival from another clock", ratelimit.MemoryOptions{}, fake, false},
		{"system clock, no arrival", ratelimit.MemoryOptions{}, context.Background(), false},
		{"own clock, arrival ignored", ratelimit.MemoryOptions{Now: func() time.Time { return t0 }}, later, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := ratelimit.NewMemoryStore(tt.opts)
			if r, err := s.TakeAt(t0, "k", hourly, 1); err != nil || !r.Allowed {
				t.Fatalf("first TakeAt = %+v, %v", r, err)
			}
			r, err := s.Take(tt.ctx, "k", hourly, 1)
			if err != nil {
				t.Fatal(err)
			}
			if r.Allowed != tt.want {
				t.Errorf("second Take admitted = %v, want %v", r.Allowed, tt.want)
			}
		})
	}
}

// TestMemoryKeepsStateForLateDecisions: a decision made at an earlier time
// than a sweep that ran before it (TakeAt, or a request whose arrival time
// was read before a slow key lookup) still finds its key's state when the
// sweep is less than a second later: keys stay a second after going idle.
// Once that second has passed, the sweep drops them.
func TestMemoryKeepsStateForLateDecisions(t *testing.T) {
	hourly := []ratelimit.Policy{{Name: "hourly", Limit: 1, Window: time.Hour}}
	for _, tt := range []struct {
		name      string
		sweepAt   time.Duration // after the keys' first takes, when their hour ends at 1h
		wantSwept bool
	}{
		{name: "sweep 0.5s after idle", sweepAt: time.Hour + 500*time.Millisecond},
		{name: "sweep just before the second is over", sweepAt: time.Hour + time.Second - 1},
		{name: "sweep a second after idle", sweepAt: time.Hour + time.Second, wantSwept: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			s := ratelimit.NewMemoryStore(ratelimit.MemoryOptions{Now: func() time.Time { return t0 }})
			var keys []string // of shard 0: enough that the next insert sweeps it
			for i := 0; len(keys) < 65; i++ {
				if k := fmt.Sprint("k", i); ratelimit.ShardOf(s, k) == 0 {
					keys = append(keys, k)
				}
			}
			for _, k := range keys[:64] {
				if r, err := s.TakeAt(t0, k, hourly, 1); err != nil || !r.Allowed {
					t.Fatalf("first TakeAt(%q) = %+v, %v", k, r, err)
				}
			}
			// A new key at sweepAt makes the shard sweep its idle keys.
			if _, err := s.TakeAt(t0.Add(tt.sweepAt), keys[64], hourly, 1); err != nil {
				t.Fatal(err)
			}
			if got, want := s.Len(), map[bool]int{false: 65, true: 1}[tt.wantSwept]; got != want {
				t.Fatalf("Len() after the sweep = %d, want %d", got, want)
			}
			if tt.wantSwept {
				return
			}
			// A request that arrived 300ms before the hour ended, decided
			// now: its key's hour is not over, so it is refused.
			if r, _ := s.TakeAt(t0.Add(time.Hour-300*time.Millisecond), keys[0], hourly, 1); r.Allowed {
				t.Errorf("key admitted twice within its hour: the sweep dropped the state a late decision needed")
			}
		})
	}
}

// TestMemoryExtremeTimes: a TakeAt (or an injected clock) far from the
// store's epoch, past what its nanosecond arithmetic holds, neither admits
// a spent key, nor wedges a key with an empty Result, nor resets it.
func TestMemoryExtremeTimes(t *testing.T) {
	hourly := ratelimit.Policy{Name: "h", Limit: 1, Window: time.Hour}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name string
		at   time.Time
	}{
		{"zero time", time.Time{}},
		{"year 1", time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"300 years on", t0.AddDate(300, 0, 0)},
		// The decision at this time admits into a TAT of exactly the
		// sentinel a multi-policy lock uses.
		{"TAT at the lock sentinel", t0.Add(time.Duration(math.MaxInt64 - 1 - int64(time.Hour)))},
		{"TAT at the dead sentinel", t0.Add(time.Duration(math.MaxInt64 - int64(time.Hour)))},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, policies := range [][]ratelimit.Policy{{hourly}, {hourly, {Name: "d", Limit: 5, Window: 24 * time.Hour}}} {
				s := ratelimit.NewMemoryStore(ratelimit.MemoryOptions{Now: func() time.Time { return t0 }})
				if r, err := s.TakeAt(t0, "k", policies, 1); err != nil || !r.Allowed {
					t.Fatalf("first TakeAt = %+v, %v", r, err)
				}
				r, err := s.TakeAt(tt.at, "k", policies, 1)
				if err != nil {
					t.Fatal(err)
				}
				if tt.at.Before(t0) && r.Allowed {
					t.Errorf("%d policies: TakeAt(%v) admitted a key spent later, at %v: %+v", len(policies), tt.at, t0, r)
				}
				// Back at t0 (a second on): the key is still spent, and
				// described as such.
				r, err = s.TakeAt(t0.Add(time.Second), "k", policies, 1)
				if err != nil {
					t.Fatal(err)
				}
				if r.Limit != 1 || r.Policy != "h" {
					t.Errorf("%d policies: TakeAt(t0+1s) after TakeAt(%v) = %+v, want a Result of policy h", len(policies), tt.at, r)
				}
				if tt.at.Before(t0) && r.Allowed {
					t.Errorf("%d policies: TakeAt(t0+1s) after TakeAt(%v) admitted again within the hour", len(policies), tt.at)
				}
			}
		})
	}
}

// TestMemoryDenialHintNotStale races admissions that move a key's TAT
// against denials of requests dated earlier (TakeAt in the past, or
// requests whose arrival time was read before a slow lookup), which
// record the TAT they were denied against as the key's denial hint. A
// denial that starts after an admission returned must be decided against
// that admission's TAT at least, not from a hint recorded against the TAT
// before it; and once the goroutines are done, a denial read from the
// hint must describe the key's TAT as a cost-0 peek does (which never
// reads the hint).
func TestMemoryDenialHintNotStale(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const rounds = 8
	admissions := int64(2000)
	if raceEnabled {
		admissions = 500
	}
	for _, multi := range []bool{false, true} {
		t.Run(fmt.Sprint("multi-policy admissions=", multi), func(t *testing.T) {
			perSecond := ratelimit.Policy{Name: "s", Limit: 1, Window: time.Second}
			admit := []ratelimit.Policy{perSecond}
			if multi {
				admit = append(admit, ratelimit.Policy{Name: "d", Limit: 1 << 20, Window: time.Hour})
			}
			s := ratelimit.NewMemoryStore(ratelimit.MemoryOptions{Now: func() time.Time { return t0 }})
			var stale, staleEnd atomic.Int64
			for round := range rounds {
				key := fmt.Sprint("k", round)
				if r, err := s.TakeAt(t0, key, admit, 1); err != nil || !r.Allowed { // spent until t0+1s
					t.Fatalf("first TakeAt = %+v, %v", r, err)
				}
				var done atomic.Int64 // admissions returned; the TAT is t0 + (done+1)s at least
				var wg sync.WaitGroup
				wg.Go(func() { // one admission a second, each moving the TAT
					for i := int64(1); i <= admissions; i++ {
						if r, err := s.TakeAt(t0.Add(time.Duration(i)*time.Second), key, admit, 1); err != nil || !r.Allowed {
							t.Errorf("admission %d = %+v, %v", i, r, err)
							done.Store(admissions)
							return
						}
						done.Store(i)
					}
				})
				for range 4 {
					wg.Go(func() { // denials at t0
						for {
							k := done.Load()
							if k == admissions {
								return
							}
							r, err := s.TakeAt(t0, key, []ratelimit.Policy{perSecond}, 1)
							if err != nil {
								t.Error(err)
								return
							}
							if want := time.Duration(k+1) * time.Second; r.Allowed || r.ResetAfter < want {
								if stale.Add(1) <= 3 {
									t.Errorf("round %d: denial at t0 after %d admissions = %+v, want ResetAfter >= %v", round, k, r, want)
								}
							}
						}
					})
				}
				wg.Wait()
				peek, err1 := s.TakeAt(t0, key, []ratelimit.Policy{perSecond}, 0)
				denied, err2 := s.TakeAt(t0, key, []ratelimit.Policy{perSecond}, 1)
				if err1 != nil || err2 != nil {
					t.Fatal(err1, err2)
				}
				if denied.Allowed || denied.ResetAfter != peek.ResetAfter || denied.RetryAfter != peek.ResetAfter {
					if staleEnd.Add(1) <= 3 {
						t.Errorf("round %d: denial at t0 = %+v, but the key's state is %+v: decided from a stale hint", round, denied, peek)
					}
				}
			}
			if n, m := stale.Load(), staleEnd.Load(); n+m > 0 {
				t.Errorf("%d denials decided from a stale hint during the races, %d of %d rounds left one behind", n, m, rounds)
			}
		})
	}
}

// TestMemoryExactUnderShardChurn hammers one key with single- and
// multi-policy decisions, some dated half a second back, while other
// goroutines fill the key's own shard with keys that go idle: the shard
// grows, sweeps and rebuilds its table, and with a small bound evicts
// (never the hot key, which stays limiting longest). The key's limit holds
// exactly, and the shard stays within its bound.
func TestMemoryExactUnderShardChurn(t *testing.T) {
	a := ratelimit.Policy{Name: "a", Limit: 100, Window: time.Hour}
	b := ratelimit.Policy{Name: "b", Limit: 60, Window: time.Hour}
	churn := []ratelimit.Policy{{Name: "churn", Limit: 1, Window: 10 * time.Millisecond}}
	for _, perShard := range []int{32, ratelimit.DefaultMaxKeys / ratelimit.NumShards} {
		t.Run(fmt.Sprint("per shard ", perShard), func(t *testing.T) {
			for iter := range 3 {
				clock := newFakeClock()
				s := ratelimit.NewMemoryStore(ratelimit.MemoryOptions{Now: clock.Now, MaxKeys: ratelimit.NumShards * perShard})
				var churnKeys []string
				for i := 0; len(churnKeys) < 1500; i++ {
					if k := fmt.Sprint("churn-", i); ratelimit.ShardOf(s, k) == ratelimit.ShardOf(s, "hot") {
						churnKeys = append(churnKeys, k)
					}
				}
				var admitted, admittedB, churning atomic.Int64
				churning.Store(2)
				var wg sync.WaitGroup
				sets := [][]ratelimit.Policy{{a}, {a, b}, {b, a}, {a}}
				for g := range 8 {
					wg.Go(func() {
						policies := sets[g%len(sets)]
						for churning.Load() > 0 {
							var r ratelimit.Result
							var err error
							if g >= len(sets) {
								r, err = s.TakeAt(clock.Now().Add(-500*time.Millisecond), "hot", policies, 1)
							} else {
								r, err = s.Take(context.Background(), "hot", policies, 1)
							}
							if err != nil {
								t.Error(err)
								return
							}
							if r.Allowed {
								admitted.Add(1)
								if len(policies) == 2 {
									admittedB.Add(1)
								}
							}
						}
					})
				}
				for g := range 2 {
					wg.Go(func() {
						defer churning.Add(-1)
						for i := g; i < len(churnKeys); i += 2 {
							clock.Advance(time.Millisecond)
							if _, err := s.Take(context.Background(), churnKeys[i], churn, 1); err != nil {
								t.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				// 1.5 s of fake time pass: a (100/h) refills 0.04 units.
				if got := admitted.Load(); got != 100 {
					t.Fatalf("iteration %d: admitted %d under policy a (100/h), want exactly 100", iter, got)
				}
				if got := admittedB.Load(); got > 60 {
					t.Fatalf("iteration %d: admitted %d under policies a and b (60/h), want at most 60", iter, got)
				}
				if got := s.Len(); got > perShard {
					t.Fatalf("iteration %d: Len() = %d, want <= %d", iter, got, perShard)
				}
				if r, err := s.Take(context.Background(), "hot", []ratelimit.Policy{b}, 0); err != nil || r.Remaining != 60-int(admittedB.Load()) {
					t.Fatalf("iteration %d: peek b = %+v, %v; want %d remaining", iter, r, err, 60-admittedB.Load())
				}
			}
		})
	}
}
