package redisstore_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate-dev/tollgate/internal/testenv"
	"github.com/tollgate-dev/tollgate/ratelimit/redisstore"
)

// newFakeClock returns a local clock the tests move by hand.
func newFakeClock() *testenv.Clock {
	return testenv.NewClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
}

// patience is the per-call timeout of tests about decisions rather than
// outages: long enough that a loaded machine under -race never falls back.
const patience = 5 * time.Second

// patientClientOptions is ClientOptions with timeouts of patience.
func patientClientOptions(addr string) *redis.Options {
	o := redisstore.ClientOptions(addr)
	o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.PoolTimeout = patience, patience, patience, patience
	return o
}

// sharedStore returns a store on the test Redis (skipping when there is
// none), with a key prefix unique to t and patient timeouts.
func sharedStore(t *testing.T, opts redisstore.Options) (*redisstore.Store, *redis.Client) {
	t.Helper()
	addr, prefix := testenv.Redis(t)
	client := redis.NewClient(patientClientOptions(addr))
	t.Cleanup(func() { client.Close() })
	opts.Prefix = prefix + opts.Prefix
	opts.Timeout = patience
	s, err := redisstore.New(client, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s, client
}

// metricValue reads one counter or gauge sample from reg.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, l := range m.GetLabel() {
					if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue metrics
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

func newMetrics(t *testing.T) (*redisstore.Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := redisstore.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	return m, reg
}
