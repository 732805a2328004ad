package redisstore_test

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate-dev/tollgate/internal/testenv"
	"github.com/tollgate-dev/tollgate/ratelimit"
	"github.com/tollgate-dev/tollgate/ratelimit/redisstore"
)

// benchCallers is how many goroutines call Take at once.
const benchCallers = 64

// BenchmarkRedisTake measures Store.Take against the test Redis with 64
// concurrent callers: over 10,000 keys that stay under their limit, and a
// mix where half the requests go to 16 keys spent before the timer starts
// (answered by the deny cache). Policy: 1000 per hour, so refill during a
// run is nil.
func BenchmarkRedisTake(b *testing.B) {
	addr, prefix := testenv.Redis(b)
	policies := []ratelimit.Policy{{Name: "bench", Limit: 1000, Window: time.Hour}}
	keys := make([]string, 10000)
	for i := range keys {
		keys[i] = fmt.Sprint("key-", i)
	}
	cases := []struct {
		name string
		key  func(i int) string
	}{
		{"keys=10k", func(i int) string { return keys[i%len(keys)] }},
		{"over-limit-mix", func(i int) string {
			if i%2 == 0 {
				return keys[(i/2)%16]
			}
			return keys[16+(i/2)%(len(keys)-16)]
		}},
	}
	for _, c := range cases {
		b.Run(fmt.Sprintf("callers=%d/case=%s", benchCallers, c.name), func(b *testing.B) {
			client := redis.NewClient(benchClientOptions(addr))
			defer client.Close()
			s, err := redisstore.New(client, redisstore.Options{Prefix: fmt.Sprintf("%sbench%d:", prefix, time.Now().UnixNano()),
				Timeout: time.Second})
			if err != nil {
				b.Fatal(err)
			}
			for _, k := range keys[:16] {
				if _, err := s.Take(context.Background(), k, policies, 1000); err != nil {
					b.Fatal(err)
				}
			}
			var seq atomic.Int64
			var degraded atomic.Int64
			procs := runtime.GOMAXPROCS(0)
			b.SetParallelism((benchCallers + procs - 1) / procs) // × GOMAXPROCS goroutines
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					r, err := s.Take(context.Background(), c.key(int(seq.Add(1))), policies, 1)
					if err != nil || r.Degraded {
						degraded.Add(1)
					}
				}
			})
			b.ReportMetric(float64(degraded.Load())/float64(b.N), "degraded/op")
		})
	}
}

// benchClientOptions is ClientOptions with a connection per caller, for
// benchmarks that compare throughput, not outage behaviour.
func benchClientOptions(addr string) *redis.Options {
	o := redisstore.ClientOptions(addr)
	o.PoolSize = benchCallers
	return o
}
