package redisstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate-dev/tollgate/ratelimit"
	"github.com/tollgate-dev/tollgate/ratelimit/redisstore"
)

// TestSharedMetricsDegradedGauge: a Metrics may be shared by several
// stores, so tollgate_ratelimit_degraded counts the degraded ones: a store
// created while another is degraded does not clear it.
func TestSharedMetricsDegradedGauge(t *testing.T) {
	m, reg := newMetrics(t)
	down := redis.NewClient(redisstore.ClientOptions("127.0.0.1:1")) // refused
	defer down.Close()
	a, err := redisstore.New(down, redisstore.Options{Metrics: m, Failure: redisstore.FailOpen, BreakerThreshold: 1, BreakerCooldown: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	p := []ratelimit.Policy{{Limit: 10, Window: time.Minute}}
	if r, err := a.Take(context.Background(), "k", p, 1); err != nil || !r.Degraded {
		t.Fatalf("Take = %+v, %v; want degraded", r, err)
	}
	if got := metricValue(t, reg, "tollgate_ratelimit_degraded"); got != 1 {
		t.Fatalf("degraded = %v with store a's breaker open, want 1", got)
	}
	b, err := redisstore.New(down, redisstore.Options{Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	_ = b
	if r, _ := a.Take(context.Background(), "k", p, 1); !r.Degraded {
		t.Fatalf("store a no longer degraded: %+v", r)
	}
	if got := metricValue(t, reg, "tollgate_ratelimit_degraded"); got != 1 {
		t.Errorf("degraded = %v after creating a second store on the same Metrics, while store a is still degraded; want 1", got)
	}
}
