package redisstore

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are a Store's Prometheus metrics:
//
//   - tollgate_ratelimit_decisions_total{outcome, source}: decisions by
//     outcome (allowed, denied, error) and by what made them: redis,
//     deny_cache (a key known to be over its limit), fallback (FailLocal
//     while Redis is down), open (FailOpen), closed (FailClosed).
//   - tollgate_ratelimit_degraded: how many of the stores sharing these
//     Metrics have their circuit breaker keeping Redis out of the
//     decisions (with one store: 1 while it does, else 0). A store that
//     is dropped while degraded leaves its 1 counted.
//   - tollgate_ratelimit_redis_errors_total: failed Redis calls.
//
// A Metrics may be shared by several stores; it is safe for concurrent use.
type Metrics struct {
	redisAllowed, redisDenied, cacheDenied         prometheus.Counter
	fallbackAllowed, fallbackDenied, fallbackError prometheus.Counter
	openAllowed, closedUnavailable, redisErrors    prometheus.Counter
	degraded                                       prometheus.Gauge
}

// NewMetrics creates the metrics and registers them on reg (never on the
// global registry). It fails if reg already holds them.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m, collectors := buildMetrics()
	for _, c := range collectors {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("redisstore: new metrics: %w", err)
		}
	}
	return m, nil
}

func newUnregisteredMetrics() *Metrics {
	m, _ := buildMetrics()
	return m
}

func buildMetrics() (*Metrics, []prometheus.Collector) {
	decisions := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "tollgate", Subsystem: "ratelimit", Name: "decisions_total",
		Help: "Rate-limit decisions by outcome (allowed, denied, error) and source (redis, deny_cache, fallback, open, closed).",
	}, []string{"outcome", "source"})
	degraded := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "tollgate", Subsystem: "ratelimit", Name: "degraded",
		Help: "Stores whose circuit breaker keeps Redis out of rate-limit decisions (1 or 0 with one store).",
	})
	redisErrors := prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "tollgate", Subsystem: "ratelimit", Name: "redis_errors_total",
		Help: "Failed Redis calls of the rate limiter.",
	})
	m := &Metrics{
		redisAllowed:      decisions.WithLabelValues("allowed", "redis"),
		redisDenied:       decisions.WithLabelValues("denied", "redis"),
		cacheDenied:       decisions.WithLabelValues("denied", "deny_cache"),
		fallbackAllowed:   decisions.WithLabelValues("allowed", "fallback"),
		fallbackDenied:    decisions.WithLabelValues("denied", "fallback"),
		fallbackError:     decisions.WithLabelValues("error", "fallback"),
		openAllowed:       decisions.WithLabelValues("allowed", "open"),
		closedUnavailable: decisions.WithLabelValues("error", "closed"),
		redisErrors:       redisErrors,
		degraded:          degraded,
	}
	return m, []prometheus.Collector{decisions, degraded, redisErrors}
}
