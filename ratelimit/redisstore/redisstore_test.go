package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate-dev/tollgate/internal/testenv"
	"github.com/tollgate-dev/tollgate/ratelimit"
	"github.com/tollgate-dev/tollgate/ratelimit/ratelimittest"
	"github.com/tollgate-dev/tollgate/ratelimit/redisstore"
)

// withinSecond compares durations to within a second.
var withinSecond = cmp.Comparer(func(a, b time.Duration) bool {
	return max(a-b, b-a) <= time.Second
})

// storeVariants are the option sets every behaviour test runs with.
var storeVariants = []struct {
	name string
	opts redisstore.Options
}{
	{"default", redisstore.Options{}},
	{"no deny cache", redisstore.Options{DenyCacheSize: -1}},
	{"unbatched", redisstore.Options{MaxBatch: 1}},
}

func TestConformance(t *testing.T) {
	for _, v := range storeVariants {
		t.Run(v.name, func(t *testing.T) {
			ratelimittest.Run(t, func(t *testing.T) ratelimit.Store {
				s, _ := sharedStore(t, v.opts)
				return s
			})
		})
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		client  redis.Scripter
		opts    redisstore.Options
		wantErr bool
	}{
		{name: "tuned client", client: redis.NewClient(redisstore.ClientOptions("127.0.0.1:1"))},
		{name: "nil client", client: nil, wantErr: true},
		{name: "context timeouts ignored", client: redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}), wantErr: true},
		{name: "unknown failure policy", client: redis.NewClient(redisstore.ClientOptions("127.0.0.1:1")),
			opts: redisstore.Options{Failure: 7}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if c, ok := tt.client.(*redis.Client); ok {
				defer c.Close()
			}
			_, err := redisstore.New(tt.client, tt.opts)
			if (err != nil) != tt.wantErr {
				t.Errorf("New() error = %v, want error %v", err, tt.wantErr)
			}
		})
	}
}

func TestClientOptions(t *testing.T) {
	o := redisstore.ClientOptions("127.0.0.1:6379")
	if !o.ContextTimeoutEnabled {
		t.Error("ContextTimeoutEnabled = false, want true")
	}
	if o.MaxRetries != -1 {
		t.Errorf("MaxRetries = %d, want -1 (no retries)", o.MaxRetries)
	}
	if o.DialerRetries != 1 {
		t.Errorf("DialerRetries = %d, want 1 attempt", o.DialerRetries)
	}
	for name, d := range map[string]time.Duration{"DialTimeout": o.DialTimeout, "ReadTimeout": o.ReadTimeout,
		"WriteTimeout": o.WriteTimeout, "PoolTimeout": o.PoolTimeout} {
		if d <= 0 || d > time.Second {
			t.Errorf("%s = %v, want (0, 1s]", name, d)
		}
	}
}

func TestParseFailurePolicy(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    redisstore.FailurePolicy
		wantErr bool
	}{
		{name: "local", in: "local", want: redisstore.FailLocal},
		{name: "open", in: "open", want: redisstore.FailOpen},
		{name: "closed", in: "closed", want: redisstore.FailClosed},
		{name: "unknown", in: "maybe", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := redisstore.ParseFailurePolicy(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("ParseFailurePolicy(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// TestDenyCache: once Redis denies a key, further denials come from the
// cache, with the same Result, until the key could pass again.
func TestDenyCache(t *testing.T) {
	clock := newFakeClock()
	m, reg := newMetrics(t)
	s, _ := sharedStore(t, redisstore.Options{Now: clock.Now, Metrics: m})
	ctx := context.Background()
	p := []ratelimit.Policy{{Name: "ten", Limit: 10, Window: time.Hour}} // T = 6m
	count := func(outcome, source string) float64 {
		return metricValue(t, reg, "tollgate_ratelimit_decisions_total", "outcome", outcome, "source", source)
	}

	if r, err := s.Take(ctx, "k", p, 10); err != nil || !r.Allowed {
		t.Fatalf("Take(cost 10) = %+v, %v; want allowed", r, err)
	}
	fromRedis, err := s.Take(ctx, "k", p, 1)
	if err != nil || fromRedis.Allowed {
		t.Fatalf("Take(cost 1) = %+v, %v; want denied", fromRedis, err)
	}
	for i := range 5 {
		r, err := s.Take(ctx, "k", p, 1+i%2)
		if err != nil || r.Allowed {
			t.Fatalf("Take #%d = %+v, %v; want denied", i, r, err)
		}
		want := fromRedis
		if i%2 == 1 { // cost 2 waits one more interval
			want.RetryAfter += 6 * time.Minute
		}
		if diff := cmp.Diff(want, r, withinSecond); diff != "" {
			t.Errorf("cached denial #%d differs from Redis's (-want +got):\n%s", i, diff)
		}
	}
	if got, want := count("denied", "deny_cache"), 5.0; got != want {
		t.Errorf("cached denials = %v, want %v", got, want)
	}
	if got, want := count("denied", "redis"), 1.0; got != want {
		t.Errorf("Redis denials = %v, want %v", got, want)
	}

	// Cost 0 and another policy set bypass the cache.
	if r, err := s.Take(ctx, "k", p, 0); err != nil || !r.Allowed || r.Remaining != 0 {
		t.Errorf("Take(cost 0) = %+v, %v; want allowed peek with 0 remaining", r, err)
	}
	other := []ratelimit.Policy{{Name: "big", Limit: 100, Window: time.Hour}}
	if r, err := s.Take(ctx, "k", other, 1); err != nil || !r.Allowed {
		t.Errorf("Take(other policy) = %+v, %v; want allowed", r, err)
	}

	// Once the local clock passes the retry time the cache lets the request
	// through to Redis, which (real time has hardly moved) denies it.
	clock.Add(6 * time.Minute)
	if r, err := s.Take(ctx, "k", p, 1); err != nil || r.Allowed {
		t.Errorf("Take after cache expiry = %+v, %v; want denied by Redis", r, err)
	}
	if got, want := count("denied", "redis"), 2.0; got != want {
		t.Errorf("Redis denials = %v, want %v", got, want)
	}
}

// TestDenyCachePolicyIdentity: a cached denial answers only for the
// policies whose Redis state it came from. Policies are the same state when
// their Limit, Window and burst are (whatever their Name), not when they
// merely share an interval and a tolerance.
func TestDenyCachePolicyIdentity(t *testing.T) {
	exhausted := ratelimit.Policy{Name: "a", Limit: 10, Window: time.Minute, Burst: 20} // T = 6s, τ = 120s
	tests := []struct {
		name        string
		next        ratelimit.Policy
		wantAllowed bool
		wantCached  float64 // denials from the deny cache
	}{
		{"same interval and tolerance, other state", ratelimit.Policy{Name: "b", Limit: 20, Window: 2 * time.Minute}, true, 0},
		{"same state, other name", ratelimit.Policy{Name: "renamed", Limit: 10, Window: time.Minute, Burst: 20}, false, 1},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, reg := newMetrics(t)
			s, _ := sharedStore(t, redisstore.Options{Now: newFakeClock().Now, Metrics: m})
			ctx := context.Background()
			key := fmt.Sprint("identity-", i)
			if r, err := s.Take(ctx, key, []ratelimit.Policy{exhausted}, 20); err != nil || !r.Allowed {
				t.Fatalf("Take(cost 20) under %v = %+v, %v; want allowed", exhausted, r, err)
			}
			if r, err := s.Take(ctx, key, []ratelimit.Policy{exhausted}, 1); err != nil || r.Allowed {
				t.Fatalf("Take(cost 1) under %v = %+v, %v; want denied", exhausted, r, err)
			}
			r, err := s.Take(ctx, key, []ratelimit.Policy{tt.next}, 1)
			if err != nil || r.Allowed != tt.wantAllowed || r.Policy != tt.next.Name {
				t.Errorf("Take under %v = %+v, %v; want allowed %v under %q", tt.next, r, err, tt.wantAllowed, tt.next.Name)
			}
			if got := metricValue(t, reg, "tollgate_ratelimit_decisions_total", "outcome", "denied", "source", "deny_cache"); got != tt.wantCached {
				t.Errorf("denials from the deny cache = %v, want %v", got, tt.wantCached)
			}
		})
	}
}

// TestKeysExpire: every key the script writes has a TTL no longer than the
// time until its state is idle.
func TestKeysExpire(t *testing.T) {
	addr, prefix := testenv.Redis(t)
	client := redis.NewClient(patientClientOptions(addr))
	defer client.Close()
	s, err := redisstore.New(client, redisstore.Options{Prefix: prefix, Timeout: patience})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	p := []ratelimit.Policy{{Name: "a", Limit: 10, Window: time.Minute}, {Name: "b", Limit: 100, Window: time.Hour}}
	if _, err := s.Take(ctx, "ttl", p, 3); err != nil {
		t.Fatal(err)
	}
	keys, err := client.Keys(ctx, prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 {
		t.Fatalf("keys = %v, want one per policy", keys)
	}
	for _, k := range keys {
		ttl, err := client.PTTL(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		if ttl <= 0 || ttl > 108*time.Second+time.Millisecond { // b: 3 × 36s
			t.Errorf("PTTL(%s) = %v, want in (0, 108s]", k, ttl)
		}
	}
}

// TestDistributedExact: three stores (instances) with skewed local clocks,
// 64 goroutines each, 40 attempts per goroutine, one key with a limit of
// 100 per hour: exactly 100 admitted.
func TestDistributedExact(t *testing.T) {
	addr, prefix := testenv.Redis(t)
	const instances, goroutines, attempts, limit = 3, 64, 40, 100
	p := []ratelimit.Policy{{Name: "exact", Limit: limit, Window: time.Hour}}
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for i := range instances {
		client := redis.NewClient(patientClientOptions(addr))
		defer client.Close()
		clock := newFakeClock()
		clock.Add(time.Duration(i-1) * 5 * time.Second) // −5 s, 0, +5 s
		s, err := redisstore.New(client, redisstore.Options{Prefix: prefix, Now: clock.Now, Timeout: patience})
		if err != nil {
			t.Fatal(err)
		}
		for range goroutines {
			wg.Go(func() {
				for range attempts {
					r, err := s.Take(context.Background(), "shared", p, 1)
					if err != nil {
						t.Error(err)
						return
					}
					if r.Degraded {
						t.Errorf("degraded result %+v: Redis should be healthy", r)
						return
					}
					if r.Allowed {
						admitted.Add(1)
					}
				}
			})
		}
	}
	wg.Wait()
	if got := admitted.Load(); got != limit {
		t.Errorf("admitted %d of %d attempts over %d instances, want exactly %d", got, instances*goroutines*attempts, instances, limit)
	}
}

// TestNoScript: after SCRIPT FLUSH the store falls back to EVAL.
func TestNoScript(t *testing.T) {
	srv := testenv.StartRedis(t)
	for _, v := range storeVariants {
		t.Run(v.name, func(t *testing.T) {
			client := redis.NewClient(patientClientOptions(srv.Addr()))
			defer client.Close()
			opts := v.opts
			opts.Timeout, opts.Prefix = patience, v.name+":"
			s, err := redisstore.New(client, opts)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			p := []ratelimit.Policy{{Name: "p", Limit: 3, Window: time.Hour}}
			for i := range 3 {
				if err := client.ScriptFlush(ctx).Err(); err != nil {
					t.Fatal(err)
				}
				r, err := s.Take(ctx, "k", p, 1)
				if err != nil || !r.Allowed || r.Degraded || r.Remaining != 2-i {
					t.Fatalf("Take #%d after SCRIPT FLUSH = %+v, %v; want allowed from Redis, %d remaining", i, r, err, 2-i)
				}
			}
		})
	}
}

// TestBreakerSkipsRedis: after BreakerThreshold failures no call reaches
// Redis until the cool-down has passed; then exactly one probes.
func TestBreakerSkipsRedis(t *testing.T) {
	var dials atomic.Int64
	opts := redisstore.ClientOptions("127.0.0.1:1")
	opts.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		return nil, errors.New("connection refused (test dialer)")
	}
	client := redis.NewClient(opts)
	defer client.Close()
	clock := newFakeClock()
	m, reg := newMetrics(t)
	s, err := redisstore.New(client, redisstore.Options{Now: clock.Now, Metrics: m, Failure: redisstore.FailOpen,
		BreakerThreshold: 3, BreakerCooldown: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	p := []ratelimit.Policy{{Name: "p", Limit: 1, Window: time.Hour}}
	take := func() {
		t.Helper()
		r, err := s.Take(context.Background(), "k", p, 1)
		if err != nil || !r.Allowed || !r.Degraded {
			t.Fatalf("Take = %+v, %v; want allowed and degraded (fail open)", r, err)
		}
	}
	// wantCalls counts calls that reach (try to dial) Redis; a call may
	// dial more than once (a pipeline tries its own pool, then the main one).
	steps := []struct {
		name      string
		advance   time.Duration
		takes     int
		wantCalls int64
		degraded  float64
	}{
		{"failures up to the threshold reach Redis", 0, 3, 3, 1},
		{"open: no calls", 0, 20, 3, 1},
		{"still open just before the cool-down", 10*time.Second - 1, 5, 3, 1},
		{"one probe after the cool-down", 1, 5, 4, 1},
		{"failed probe restarts the cool-down", 10*time.Second - 1, 5, 4, 1},
		{"next probe", 1, 1, 5, 1},
	}
	var perCall int64
	for i, st := range steps {
		clock.Add(st.advance)
		for range st.takes {
			take()
		}
		if i == 0 {
			perCall = dials.Load() / st.wantCalls
			if perCall == 0 || dials.Load()%st.wantCalls != 0 {
				t.Fatalf("%d dials for %d calls: want a whole number per call", dials.Load(), st.wantCalls)
			}
		}
		if got, want := dials.Load(), st.wantCalls*perCall; got != want {
			t.Errorf("%s: %d dials, want %d (%d calls)", st.name, got, want, st.wantCalls)
		}
		if got := metricValue(t, reg, "tollgate_ratelimit_degraded"); got != st.degraded {
			t.Errorf("%s: degraded gauge = %v, want %v", st.name, got, st.degraded)
		}
	}
	if got := metricValue(t, reg, "tollgate_ratelimit_redis_errors_total"); got != 5 {
		t.Errorf("redis errors = %v, want 5", got)
	}
}

// TestSmallBatches: many callers and batches of 3 exercise the hand-over
// of the lead between callers; every call completes and the count is exact.
func TestSmallBatches(t *testing.T) {
	s, _ := sharedStore(t, redisstore.Options{MaxBatch: 3, DenyCacheSize: -1})
	p := []ratelimit.Policy{{Name: "p", Limit: 100, Window: time.Hour}}
	const goroutines, attempts = 100, 20
	var admitted atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		for g := range goroutines {
			wg.Go(func() {
				for i := range attempts {
					key := "shared"
					if i%2 == 1 {
						key = fmt.Sprint("own-", g) // 10 each: all admitted
					}
					r, err := s.Take(context.Background(), key, p, 1)
					if err != nil || r.Degraded {
						t.Errorf("Take = %+v, %v", r, err)
						return
					}
					if r.Allowed && key == "shared" {
						admitted.Add(1)
					}
				}
			})
		}
		wg.Wait()
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("callers still waiting after a minute: the batch lead was lost")
	}
	if got := admitted.Load(); got != 100 {
		t.Errorf("admitted %d on the shared key, want exactly 100", got)
	}
}
