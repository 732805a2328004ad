package ratelimit_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/ratelimit"
)

// bucket is the reference model: a plain token bucket per policy, written
// without GCRA. Tokens are kept exactly as rationals with the fixed
// denominator T (the emission interval, Window/Limit rounded up to a
// nanosecond): credit = tokens × T, in nanoseconds. The bucket starts full,
// refills one token per T, never holds more than its capacity, and a request
// of cost c needs c tokens.
type bucket struct {
	p        ratelimit.Policy
	interval int64 // T
	capacity int64 // tokens
	credit   int64 // tokens × T
	last     int64 // time of the last refill
}

func newBucket(p ratelimit.Policy) *bucket {
	w, l := int64(p.Window), int64(p.Limit)
	interval := (w + l - 1) / l
	capacity := int64(p.Burst)
	if capacity == 0 {
		capacity = l
	}
	return &bucket{p: p, interval: interval, capacity: capacity, credit: capacity * interval}
}

func (b *bucket) refill(now int64) {
	if now > b.last {
		b.credit = min(b.credit+(now-b.last), b.capacity*b.interval)
		b.last = now
	}
}

// referenceTake decides a request of cost at now against every bucket:
// admitted only if each bucket holds cost tokens, and then each pays.
func referenceTake(buckets []*bucket, now int64, cost int) (ratelimit.Result, error) {
	for _, b := range buckets {
		if int64(cost) > b.capacity {
			return ratelimit.Result{}, ratelimit.ErrCostExceedsBurst
		}
	}
	allowed := true
	for _, b := range buckets {
		b.refill(now)
		if b.credit < int64(cost)*b.interval {
			allowed = false
		}
	}
	if allowed {
		for _, b := range buckets {
			b.credit -= int64(cost) * b.interval
		}
	}
	// The binding bucket: on admission the fewest whole tokens left (then
	// the longest time to fill up); on denial the longest wait for cost
	// tokens (then the fewest tokens).
	var best ratelimit.Result
	for i, b := range buckets {
		r := ratelimit.Result{
			Allowed:    allowed,
			Limit:      b.p.Limit,
			Remaining:  int(b.credit / b.interval),
			ResetAfter: time.Duration(b.capacity*b.interval - b.credit),
			Policy:     b.p.Name,
			Window:     b.p.Window,
		}
		if !allowed {
			r.RetryAfter = time.Duration(max(int64(cost)*b.interval-b.credit, 0))
		}
		if i == 0 ||
			r.RetryAfter > best.RetryAfter ||
			r.RetryAfter == best.RetryAfter && (r.Remaining < best.Remaining ||
				r.Remaining == best.Remaining && r.ResetAfter > best.ResetAfter) {
			best = r
		}
	}
	return best, nil
}

// propertySequences is how many random sequences TestGCRAMatchesTokenBucket
// runs: RATELIMIT_PROPERTY_SEQUENCES if set; else 10,000 with -short,
// 25,000 under the race detector (which slows it tenfold), 100,000 otherwise.
func propertySequences(t *testing.T) int {
	if v := os.Getenv("RATELIMIT_PROPERTY_SEQUENCES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("RATELIMIT_PROPERTY_SEQUENCES=%q: %v", v, err)
		}
		return n
	}
	switch {
	case testing.Short():
		return 10_000
	case raceEnabled:
		return 25_000
	}
	return 100_000
}

func randomPolicy(r *rand.Rand, i int) ratelimit.Policy {
	windows := []time.Duration{time.Nanosecond * 7, time.Millisecond, 3 * time.Millisecond, time.Second,
		3 * time.Second, time.Minute, time.Hour, 24 * time.Hour}
	p := ratelimit.Policy{Name: fmt.Sprint("p", i)}
	if r.IntN(4) == 0 {
		p.Window = time.Duration(1 + r.Int64N(int64(10*time.Second)))
	} else {
		p.Window = windows[r.IntN(len(windows))]
	}
	switch r.IntN(3) {
	case 0:
		p.Limit = 1 + r.IntN(3)
	case 1:
		p.Limit = 1 + r.IntN(20)
	default:
		p.Limit = 1 + r.IntN(10000)
	}
	if r.IntN(2) == 0 {
		p.Burst = 1 + r.IntN(2*p.Limit)
	}
	return p
}

// TestGCRAMatchesTokenBucket runs random sequences of (time advance, cost)
// under 1–3 random policies through MemoryStore.TakeAt and through the
// reference token bucket, and requires identical Results.
func TestGCRAMatchesTokenBucket(t *testing.T) {
	n := propertySequences(t)
	r := rand.New(rand.NewPCG(20250101, uint64(n)))
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	decisions, denials, failures := 0, 0, 0
	var trace [][2]int64
	s := ratelimit.NewMemoryStore(ratelimit.MemoryOptions{Now: func() time.Time { return base }})
	for seq := range n {
		policies := make([]ratelimit.Policy, 1+r.IntN(3))
		buckets := make([]*bucket, len(policies))
		minCap, maxInterval := int64(1<<62), int64(0)
		for i := range policies {
			policies[i] = randomPolicy(r, i)
			buckets[i] = newBucket(policies[i])
			minCap = min(minCap, buckets[i].capacity)
			maxInterval = max(maxInterval, buckets[i].interval)
		}
		key := strconv.Itoa(seq) // a fresh key: a fresh state in the shared store
		var now int64
		trace = trace[:0]
		for step := range 1 + r.IntN(40) {
			switch k := r.IntN(10); {
			case k < 3: // same instant
			case k < 5: // a whole number of some policy's intervals: exact boundaries
				now += int64(r.IntN(3)) * buckets[r.IntN(len(buckets))].interval
			case k < 9:
				now += r.Int64N(2*maxInterval + 1)
			default:
				now += r.Int64N(int64(48 * time.Hour))
			}
			cost := r.IntN(int(min(minCap, 50)) + 2) // sometimes above the burst
			if r.IntN(8) == 0 {
				cost = 1
			}
			trace = append(trace, [2]int64{now, int64(cost)})

			want, wantErr := referenceTake(buckets, now, cost)
			got, err := s.TakeAt(base.Add(time.Duration(now)), key, policies, cost)
			decisions++
			if !want.Allowed {
				denials++
			}
			switch {
			case wantErr != nil && !errors.Is(err, wantErr):
				t.Errorf("sequence %d step %d: TakeAt error = %v, want %v", seq, step, err, wantErr)
			case wantErr == nil && err != nil:
				t.Errorf("sequence %d step %d: TakeAt error = %v", seq, step, err)
			case got != want:
				t.Errorf("sequence %d step %d: TakeAt = %+v\nreference   %+v", seq, step, got, want)
			default:
				continue
			}
			t.Logf("policies %+v; steps (t ns, cost): %v", policies, trace)
			if failures++; failures == 5 {
				t.FailNow()
			}
			break
		}
	}
	t.Logf("%d sequences, %d decisions (%d denied): GCRA and token bucket agree", n, decisions, denials)
}
