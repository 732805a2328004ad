package ratelimit_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/ratelimit"
)

// benchPolicies is the policy every limiter benchmark uses, here and in the
// bench module: 1000 per second, burst 1000.
var benchPolicies = []ratelimit.Policy{{Name: "bench", Limit: 1000, Window: time.Second}}

// benchKeys are the keys of the many-keys cases.
var benchKeys = func() []string {
	keys := make([]string, 10000)
	for i := range keys {
		keys[i] = fmt.Sprintf("key-%d", i)
	}
	return keys
}()

// BenchmarkMemoryTake measures MemoryStore.Take on a warm store: one key
// serially, one hot key from every P, and 10,000 keys from every P; with the
// real clock (one monotonic read per decision) and with a fake clock that
// isolates the algorithm's cost.
func BenchmarkMemoryTake(b *testing.B) {
	fixed := time.Unix(1e9, 0)
	clocks := []struct {
		name string
		now  func() time.Time
	}{
		{"real", nil},
		{"fake", func() time.Time { return fixed }},
	}
	ctx := context.Background()
	for _, clock := range clocks {
		b.Run("clock="+clock.name+"/case=serial", func(b *testing.B) {
			s := ratelimit.NewMemoryStore(ratelimit.MemoryOptions{Now: clock.now})
			_, _ = s.Take(ctx, "hot", benchPolicies, 1)
			b.ReportAllocs()
			for b.Loop() {
				_, _ = s.Take(ctx, "hot", benchPolicies, 1)
			}
		})
		b.Run("clock="+clock.name+"/case=parallel-hot", func(b *testing.B) {
			s := ratelimit.NewMemoryStore(ratelimit.MemoryOptions{Now: clock.now})
			_, _ = s.Take(ctx, "hot", benchPolicies, 1)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					_, _ = s.Take(ctx, "hot", benchPolicies, 1)
				}
			})
		})
		b.Run("clock="+clock.name+"/case=parallel-10k", func(b *testing.B) {
			s := ratelimit.NewMemoryStore(ratelimit.MemoryOptions{Now: clock.now})
			for _, k := range benchKeys {
				_, _ = s.Take(ctx, k, benchPolicies, 1)
			}
			var worker atomic.Uint32
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := int(worker.Add(1)) * 7919
				for pb.Next() {
					i++
					_, _ = s.Take(ctx, benchKeys[i%len(benchKeys)], benchPolicies, 1)
				}
			})
		})
	}
}
