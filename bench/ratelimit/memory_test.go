// Package ratelimit compares tollgate's limiters with their peers, in one
// binary, interleaved, so that benchstat can put them side by side:
//
//	go test -run '^$' -bench . -count 6 ./ratelimit/ | tee raw.txt
//	benchstat -col /impl raw.txt
//
// Every limiter gets the same policy (1000 per second, burst 1000 in
// memory; 100 per second, burst 100 on Redis) and the same keys.
package ratelimit

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sethvargo "github.com/sethvargo/go-limiter"
	"github.com/sethvargo/go-limiter/memorystore"
	"github.com/throttled/throttled/v2"
	"github.com/throttled/throttled/v2/store/memstore"
	ulule "github.com/ulule/limiter/v3"
	ululememory "github.com/ulule/limiter/v3/drivers/store/memory"
	"golang.org/x/time/rate"

	"github.com/tollgate-dev/tollgate/ratelimit"
)

const memLimit = 1000 // per second, and the burst

// keys are the keys of the many-keys cases.
var keys = func() []string {
	k := make([]string, 10000)
	for i := range k {
		k[i] = fmt.Sprintf("key-%d", i)
	}
	return k
}()

// taker is one decision on key, the way each library is meant to be used.
type taker func(key string) bool

// impl builds a fresh limiter; fake is nil for libraries without an
// injectable clock.
type impl struct {
	name string
	real func(b *testing.B) taker
	fake func(b *testing.B) taker
}

var fixed = time.Unix(1_700_000_000, 0)

func impls() []impl {
	ctx := context.Background()
	tollgatePolicies := []ratelimit.Policy{{Name: "bench", Limit: memLimit, Window: time.Second}}
	tollgate := func(now func() time.Time) func(b *testing.B) taker {
		return func(b *testing.B) taker {
			s := ratelimit.NewMemoryStore(ratelimit.MemoryOptions{Now: now})
			return func(key string) bool {
				r, _ := s.Take(ctx, key, tollgatePolicies, 1)
				return r.Allowed
			}
		}
	}
	// x/time/rate has no key map: a sync.Map of limiters, the faster of the
	// usual two (the other is a map under a mutex).
	xrate := func(fake bool) func(b *testing.B) taker {
		return func(b *testing.B) taker {
			var m sync.Map
			get := func(key string) *rate.Limiter {
				if l, ok := m.Load(key); ok {
					return l.(*rate.Limiter)
				}
				l, _ := m.LoadOrStore(key, rate.NewLimiter(memLimit, memLimit))
				return l.(*rate.Limiter)
			}
			if fake {
				return func(key string) bool { return get(key).AllowN(fixed, 1) }
			}
			return func(key string) bool { return get(key).Allow() }
		}
	}
	return []impl{
		{name: "xtimerate", real: xrate(false), fake: xrate(true)},
		{name: "tollgate", real: tollgate(nil), fake: tollgate(func() time.Time { return fixed })},
		{name: "sethvargo", real: func(b *testing.B) taker {
			s, err := memorystore.New(&memorystore.Config{Tokens: memLimit, Interval: time.Second})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = s.Close(ctx) })
			var _ sethvargo.Store = s
			return func(key string) bool {
				_, _, _, ok, _ := s.Take(ctx, key)
				return ok
			}
		}},
		{name: "throttled", real: func(b *testing.B) taker {
			st, err := memstore.NewCtx(65536)
			if err != nil {
				b.Fatal(err)
			}
			l, err := throttled.NewGCRARateLimiterCtx(st, throttled.RateQuota{MaxRate: throttled.PerSec(memLimit), MaxBurst: memLimit - 1})
			if err != nil {
				b.Fatal(err)
			}
			return func(key string) bool {
				limited, _, _ := l.RateLimitCtx(ctx, key, 1)
				return !limited
			}
		}},
		{name: "ulule", real: func(b *testing.B) taker {
			l := ulule.New(ululememory.NewStore(), ulule.Rate{Period: time.Second, Limit: memLimit})
			return func(key string) bool {
				c, _ := l.Get(ctx, key)
				return !c.Reached
			}
		}},
	}
}

var sink atomic.Int64

// BenchmarkMemory runs each in-memory limiter on three cases: one key
// serially, one hot key from every P, 10,000 keys from every P; with the
// real clock and, where the library takes one, a fixed fake clock.
func BenchmarkMemory(b *testing.B) {
	cases := []struct {
		name string
		run  func(b *testing.B, take taker)
	}{
		{"serial", func(b *testing.B, take taker) {
			take("hot")
			n := 0
			for b.Loop() {
				if take("hot") {
					n++
				}
			}
			sink.Add(int64(n))
		}},
		{"parallel-hot", func(b *testing.B, take taker) {
			take("hot")
			b.RunParallel(func(pb *testing.PB) {
				n := 0
				for pb.Next() {
					if take("hot") {
						n++
					}
				}
				sink.Add(int64(n))
			})
		}},
		{"parallel-10k", func(b *testing.B, take taker) {
			for _, k := range keys {
				take(k)
			}
			var worker atomic.Uint32
			b.RunParallel(func(pb *testing.PB) {
				i, n := int(worker.Add(1))*7919, 0
				for pb.Next() {
					i++
					if take(keys[i%len(keys)]) {
						n++
					}
				}
				sink.Add(int64(n))
			})
		}},
	}
	for _, c := range cases {
		for _, clock := range []string{"real", "fake"} {
			for _, im := range impls() {
				build := im.real
				if clock == "fake" {
					build = im.fake
				}
				if build == nil {
					continue
				}
				b.Run(fmt.Sprintf("case=%s/clock=%s/impl=%s", c.name, clock, im.name), func(b *testing.B) {
					take := build(b)
					b.ReportAllocs()
					c.run(b, take)
				})
			}
		}
	}
}

// BenchmarkClock is what one clock read costs on this machine: the
// monotonic read behind time.Since (MemoryStore's one read per decision)
// and time.Now (wall and monotonic, x/time/rate's Allow). It bounds how
// close to zero any exact limiter's ns/op can go.
func BenchmarkClock(b *testing.B) {
	epoch := time.Now()
	b.Run("read=since", func(b *testing.B) {
		var d time.Duration
		for b.Loop() {
			d += time.Since(epoch)
		}
		sink.Add(int64(d))
	})
	b.Run("read=now", func(b *testing.B) {
		var n int64
		for b.Loop() {
			n += time.Now().UnixNano()
		}
		sink.Add(n)
	})
}
