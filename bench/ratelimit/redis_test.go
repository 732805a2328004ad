package ratelimit

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate-dev/tollgate/internal/testenv"
	"github.com/tollgate-dev/tollgate/ratelimit"
	"github.com/tollgate-dev/tollgate/ratelimit/redisstore"
)

const (
	callers    = 64   // concurrent goroutines calling the limiter
	redisLimit = 1000 // per hour, and the burst: refill during a run is nil
	hotKeys    = 16   // keys over their limit in the mix
)

// BenchmarkRedis runs tollgate's Redis store and go-redis/redis_rate
// (the same GCRA in one Lua script, one round trip) with 64 concurrent
// callers and a connection each: over 10,000 keys that stay under their
// limit (1000 per hour), and a mix where half the requests go to 16 keys
// spent before the timer starts. ns/op is wall time per decision, so
// throughput is its inverse; admitted/op shows both made the same
// decisions.
func BenchmarkRedis(b *testing.B) {
	addr, prefix := testenv.Redis(b)
	ctx := context.Background()
	opts := redisstore.ClientOptions(addr)
	opts.PoolSize = callers
	policies := []ratelimit.Policy{{Name: "bench", Limit: redisLimit, Window: time.Hour}}

	// Each builds a function deciding n units for key.
	impls := []struct {
		name  string
		build func(b *testing.B, client *redis.Client, prefix string) func(key string, n int) bool
	}{
		{"redis_rate", func(b *testing.B, client *redis.Client, prefix string) func(string, int) bool {
			l := redis_rate.NewLimiter(client)
			limit := redis_rate.Limit{Rate: redisLimit, Burst: redisLimit, Period: time.Hour}
			return func(key string, n int) bool {
				r, err := l.AllowN(ctx, prefix+key, limit, n)
				if err != nil {
					b.Error(err)
					return false
				}
				return r.Allowed > 0
			}
		}},
		{"tollgate", func(b *testing.B, client *redis.Client, prefix string) func(string, int) bool {
			s, err := redisstore.New(client, redisstore.Options{Prefix: prefix, Timeout: time.Second})
			if err != nil {
				b.Fatal(err)
			}
			return func(key string, n int) bool {
				r, err := s.Take(ctx, key, policies, n)
				if err != nil || r.Degraded {
					b.Errorf("Take = %+v, %v: a degraded decision would not measure Redis", r, err)
					return false
				}
				return r.Allowed
			}
		}},
	}
	cases := []struct {
		name string
		key  func(i int) string
	}{
		{"keys-10k", func(i int) string { return keys[i%len(keys)] }},
		{"over-limit-mix", func(i int) string {
			if i%2 == 0 {
				return keys[(i/2)%hotKeys]
			}
			return keys[hotKeys+(i/2)%(len(keys)-hotKeys)]
		}},
	}
	for _, c := range cases {
		for _, im := range impls {
			b.Run(fmt.Sprintf("callers=%d/case=%s/impl=%s", callers, c.name, im.name), func(b *testing.B) {
				client := redis.NewClient(opts)
				defer client.Close()
				takeN := im.build(b, client, fmt.Sprintf("%s%d:", prefix, time.Now().UnixNano()))
				for i := range hotKeys { // over their limit from the start
					takeN(keys[i], redisLimit)
				}
				take := func(key string) bool { return takeN(key, 1) }
				var seq atomic.Int64
				var admitted atomic.Int64
				procs := runtime.GOMAXPROCS(0)
				b.SetParallelism((callers + procs - 1) / procs)
				b.ReportAllocs()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if take(c.key(int(seq.Add(1)))) {
							admitted.Add(1)
						}
					}
				})
				b.ReportMetric(float64(admitted.Load())/float64(b.N), "admitted/op")
			})
		}
	}
}
