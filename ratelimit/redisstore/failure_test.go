package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate-dev/tollgate/internal/testenv"
	"github.com/tollgate-dev/tollgate/ratelimit"
	"github.com/tollgate-dev/tollgate/ratelimit/redisstore"
)

// TestRedisKilled kills a private redis-server under each failure policy,
// checks what Take does during the outage (and that no denial is caused by
// it), restarts the server and checks that two instances count together
// again.
func TestRedisKilled(t *testing.T) {
	p := []ratelimit.Policy{{Name: "p", Limit: 4, Window: time.Hour}}
	const threshold, cooldown = 2, 5 * time.Second
	tests := []struct {
		name    string
		failure redisstore.FailurePolicy
		// outage checks one Take during the outage (i counts from 0).
		outage func(t *testing.T, i int, r ratelimit.Result, err error)
	}{
		{"local", redisstore.FailLocal, func(t *testing.T, i int, r ratelimit.Result, err error) {
			// A fresh per-instance limiter: 4 admitted, then its own denials.
			if err != nil || !r.Degraded || r.Allowed != (i < 4) {
				t.Errorf("outage Take #%d = %+v, %v; want degraded, allowed %v", i, r, err, i < 4)
			}
		}},
		{"open", redisstore.FailOpen, func(t *testing.T, i int, r ratelimit.Result, err error) {
			// Reported as a fresh key: one unit taken, full a unit later.
			if err != nil || !r.Allowed || !r.Degraded || r.Remaining != 3 || r.ResetAfter != 15*time.Minute {
				t.Errorf("outage Take #%d = %+v, %v; want allowed and degraded, Remaining 3, ResetAfter 15m", i, r, err)
			}
		}},
		{"closed", redisstore.FailClosed, func(t *testing.T, i int, r ratelimit.Result, err error) {
			if !errors.Is(err, ratelimit.ErrUnavailable) {
				t.Errorf("outage Take #%d = %+v, %v; want an error wrapping ErrUnavailable", i, r, err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := testenv.StartRedis(t)
			clock := newFakeClock()
			m, reg := newMetrics(t)
			// Two instances sharing the server, with their own clients and fallbacks.
			var stores [2]*redisstore.Store
			for i := range stores {
				// Patient timeouts: a killed server refuses at once, and a
				// healthy one must not look down on a loaded machine.
				client := redis.NewClient(patientClientOptions(srv.Addr()))
				defer client.Close()
				s, err := redisstore.New(client, redisstore.Options{Failure: tt.failure, Now: clock.Now, Metrics: m,
					BreakerThreshold: threshold, BreakerCooldown: cooldown, Timeout: patience})
				if err != nil {
					t.Fatal(err)
				}
				stores[i] = s
			}
			a := stores[0]
			ctx := context.Background()

			// Healthy: one shared count.
			if r, err := a.Take(ctx, "before", p, 3); err != nil || !r.Allowed || r.Degraded {
				t.Fatalf("healthy Take = %+v, %v", r, err)
			}

			srv.Kill()
			for i := range 6 {
				r, err := a.Take(ctx, "outage", p, 1)
				tt.outage(t, i, r, err)
				if err == nil && !r.Allowed && tt.failure != redisstore.FailLocal {
					t.Errorf("outage Take #%d denied: the outage must not cause a 429", i)
				}
			}
			if got := metricValue(t, reg, "tollgate_ratelimit_redis_errors_total"); got != threshold {
				t.Errorf("redis errors during the outage = %v, want %d (the breaker opens after %d)", got, threshold, threshold)
			}
			if got := metricValue(t, reg, "tollgate_ratelimit_degraded"); got != 1 {
				t.Errorf("degraded gauge = %v during the outage, want 1", got)
			}

			srv.Start() // empty: --save "" keeps nothing
			// Poll (bounded) until the breaker's probe finds Redis again: each
			// attempt moves the local clock past the cool-down.
			recovered := false
			for range 100 {
				clock.Add(cooldown)
				r, err := a.Take(ctx, "probe", p, 0)
				if err == nil && !r.Degraded {
					recovered = true
					break
				}
				time.Sleep(50 * time.Millisecond) // polling a condition, not a timing claim
			}
			if !recovered {
				t.Fatal("store never left degraded mode after redis-server restarted")
			}
			if got := metricValue(t, reg, "tollgate_ratelimit_degraded"); got != 0 {
				t.Errorf("degraded gauge = %v after recovery, want 0", got)
			}

			// Shared counting resumes: both instances spend one budget of 4.
			want := []bool{true, true, true, true, false, false}
			for i, w := range want {
				s := stores[i%2]
				r, err := s.Take(ctx, "after", p, 1)
				if err != nil || r.Degraded || r.Allowed != w {
					t.Errorf("after recovery, Take #%d on instance %d = %+v, %v; want allowed %v from Redis", i, i%2, r, err, w)
				}
			}
		})
	}
}

// TestRedisHung pauses redis-server (SIGSTOP): every script call goes to
// Redis under a deadline of at most the store's Timeout (not the client's
// read timeout), the breaker opens after its threshold of failures, and
// from then on calls stop reaching Redis at all, except one probe per
// cool-down. What reaches Redis is counted by a client hook, and the
// breaker's cool-down runs on a fake clock, so nothing here depends on how
// fast the machine is. TOLLGATE_LOAD=1 also logs how long the calls took.
func TestRedisHung(t *testing.T) {
	for _, v := range storeVariants {
		t.Run(v.name, func(t *testing.T) { testRedisHung(t, v.opts) })
	}
}

// deadlineRecorder is a go-redis hook that counts the script calls
// (EVALSHA, EVAL) sent to Redis while on, and records every one whose
// context has no deadline or a deadline further than max away.
type deadlineRecorder struct {
	max time.Duration
	on  atomic.Bool

	mu    sync.Mutex
	calls int
	bad   []string
}

func (h *deadlineRecorder) check(ctx context.Context, cmds ...redis.Cmder) {
	if !h.on.Load() {
		return
	}
	dl, ok := ctx.Deadline()
	left := time.Until(dl)
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, cmd := range cmds {
		if name := cmd.Name(); name != "evalsha" && name != "eval" {
			continue
		}
		h.calls++
		switch {
		case !ok:
			h.bad = append(h.bad, cmd.Name()+" without a deadline")
		case left > h.max:
			h.bad = append(h.bad, fmt.Sprintf("%s with a deadline %v away, more than the %v timeout", cmd.Name(), left, h.max))
		}
	}
}

// take returns the calls counted and the faults recorded since the last take.
func (h *deadlineRecorder) take() (calls int, bad []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	calls, bad = h.calls, h.bad
	h.calls, h.bad = 0, nil
	return calls, bad
}

func (h *deadlineRecorder) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *deadlineRecorder) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.check(ctx, cmd)
		return next(ctx, cmd)
	}
}

func (h *deadlineRecorder) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.check(ctx, cmds...)
		return next(ctx, cmds)
	}
}

func testRedisHung(t *testing.T, opts redisstore.Options) {
	srv := testenv.StartRedis(t)
	client := redis.NewClient(redisstore.ClientOptions(srv.Addr()))
	defer client.Close()
	const timeout, cooldown, threshold = 50 * time.Millisecond, time.Second, 8
	hook := &deadlineRecorder{max: timeout}
	client.AddHook(hook)
	clock := newFakeClock()
	m, reg := newMetrics(t)
	opts.Now, opts.Timeout, opts.BreakerThreshold, opts.BreakerCooldown, opts.Metrics = clock.Now, timeout, threshold, cooldown, m
	s, err := redisstore.New(client, opts)
	if err != nil {
		t.Fatal(err)
	}
	p := []ratelimit.Policy{{Name: "p", Limit: 10, Window: time.Hour}}
	ctx := context.Background()
	// Warm up (connection, script cache) until a call is answered within
	// the short timeout; a loaded machine may need a few tries.
	healthy := false
	for range 50 {
		clock.Add(cooldown)
		if r, err := s.Take(ctx, "k", p, 0); err == nil && !r.Degraded {
			healthy = true
			break
		}
	}
	if !healthy {
		t.Fatal("no Take answered by Redis within the timeout before the pause")
	}
	errorsBefore := metricValue(t, reg, "tollgate_ratelimit_redis_errors_total")
	if got := metricValue(t, reg, "tollgate_ratelimit_degraded"); got != 0 {
		t.Fatalf("degraded gauge = %v before the pause, want 0", got)
	}

	srv.Signal(syscall.SIGSTOP)
	defer srv.Signal(syscall.SIGCONT)
	hook.on.Store(true)
	// The fallback's limit is never reached.
	p = []ratelimit.Policy{{Name: "wide", Limit: 1000, Window: time.Hour}}
	var (
		mu      sync.Mutex
		slowest time.Duration
	)
	// takes runs callers goroutines of n Takes each; every one must be
	// allowed by the local fallback.
	takes := func(phase string, callers, n int) {
		t.Helper()
		var wg sync.WaitGroup
		for g := range callers {
			wg.Go(func() {
				for i := range n {
					start := time.Now()
					r, err := s.Take(ctx, fmt.Sprint("k", g%8), p, 1)
					elapsed := time.Since(start)
					mu.Lock()
					slowest = max(slowest, elapsed)
					mu.Unlock()
					if err != nil || !r.Allowed || !r.Degraded {
						t.Errorf("%s: hung Take #%d.%d = %+v, %v; want allowed by the local fallback", phase, g, i, r, err)
					}
				}
			})
		}
		wg.Wait()
	}
	// wantRedis checks what reached Redis since the last check: between
	// minCalls and maxCalls script calls.
	wantRedis := func(phase string, minCalls, maxCalls int, wantErrors float64, wantDegraded float64) {
		t.Helper()
		got, bad := hook.take()
		for _, b := range bad {
			t.Errorf("%s: %s", phase, b)
		}
		if got < minCalls || got > maxCalls {
			t.Errorf("%s: %d script calls reached Redis, want %d to %d", phase, got, minCalls, maxCalls)
		}
		if got := metricValue(t, reg, "tollgate_ratelimit_redis_errors_total") - errorsBefore; got != wantErrors {
			t.Errorf("%s: redis errors = %v, want %v", phase, got, wantErrors)
		}
		if got := metricValue(t, reg, "tollgate_ratelimit_degraded"); got != wantDegraded {
			t.Errorf("%s: degraded gauge = %v, want %v", phase, got, wantDegraded)
		}
	}

	// threshold concurrent callers: the breaker opens only once all of
	// them have failed (each counts as a Redis error). Each reaches Redis
	// under the store's timeout, except, when batching, one still queued
	// behind the batches in flight at its deadline, which fails unsent.
	takes("breaker closed", threshold, 1)
	minCalls := threshold
	if opts.MaxBatch != 1 {
		minCalls = 1
	}
	wantRedis("breaker closed", minCalls, threshold, threshold, 1)
	if os.Getenv("TOLLGATE_LOAD") == "1" {
		t.Logf("slowest Take while the breaker was closed: %v (timeout %v)", slowest, timeout)
	}
	// Open, and the clock does not move: nothing reaches Redis.
	slowest = 0
	takes("breaker open", 64, 3)
	wantRedis("breaker open", 0, 0, threshold, 1)
	// Past the cool-down: exactly one probe, which fails and reopens it.
	clock.Add(cooldown)
	takes("cool-down over", 64, 3)
	wantRedis("cool-down over", 1, 1, threshold+1, 1)
	if os.Getenv("TOLLGATE_LOAD") == "1" {
		t.Logf("slowest Take once the breaker had opened (one of them is the probe): %v", slowest)
	}
}

// corruptInterval is a go-redis hook that sets the first policy's interval
// to -1000 µs in every script call on a key containing "corrupt", so that
// Redis refuses the script's SET with "ERR invalid expire time": an error
// caused by one call's arguments, with Redis up.
type corruptInterval struct{}

func (corruptInterval) DialHook(next redis.DialHook) redis.DialHook { return next }

func (corruptInterval) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		corrupt(cmd)
		return next(ctx, cmd)
	}
}

func (corruptInterval) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			corrupt(cmd)
		}
		return next(ctx, cmds)
	}
}

func corrupt(cmd redis.Cmder) {
	if name := cmd.Name(); name != "evalsha" && name != "eval" {
		return
	}
	// EVALSHA sha numkeys key… cost interval₁ tolerance₁ …
	args := cmd.Args()
	numKeys, _ := args[2].(int)
	for _, k := range args[3 : 3+numKeys] {
		if strings.Contains(fmt.Sprint(k), "corrupt") {
			args[3+numKeys+1] = -1000
			return
		}
	}
}

// TestCallErrorsAreNotOutages: calls that fail because of their own
// arguments while Redis answers (a reply error such as "ERR invalid expire
// time") and calls with extreme but valid policies never count as Redis
// being down: the breaker stays closed, the failure policy is not applied,
// and other keys are decided by Redis as before.
func TestCallErrorsAreNotOutages(t *testing.T) {
	huge := ratelimit.Policy{Name: "huge", Limit: math.MaxInt64, Window: time.Second, Burst: 1}
	normal := ratelimit.Policy{Name: "normal", Limit: 100, Window: time.Minute}
	tests := []struct {
		name    string
		key     string
		policy  ratelimit.Policy
		wantErr bool
	}{
		{"limit beyond the window's nanoseconds", "huge", huge, false},
		{"reply error caused by the call", "corrupt", normal, true},
	}
	const threshold = 2
	for _, v := range storeVariants {
		for _, tt := range tests {
			t.Run(v.name+"/"+tt.name, func(t *testing.T) {
				addr, prefix := testenv.Redis(t)
				client := redis.NewClient(patientClientOptions(addr))
				defer client.Close()
				client.AddHook(corruptInterval{})
				m, reg := newMetrics(t)
				opts := v.opts
				opts.Prefix, opts.Timeout, opts.Metrics = prefix, patience, m
				opts.Failure, opts.BreakerThreshold = redisstore.FailClosed, threshold
				s, err := redisstore.New(client, opts)
				if err != nil {
					t.Fatal(err)
				}
				ctx := context.Background()
				for i := range 2 * threshold {
					r, err := s.Take(ctx, tt.key, []ratelimit.Policy{tt.policy}, 1)
					if (err != nil) != tt.wantErr || r.Degraded || errors.Is(err, ratelimit.ErrUnavailable) {
						t.Errorf("Take #%d under %v = %+v, %v; want error %v, not an outage", i, tt.policy, r, err, tt.wantErr)
					}
				}
				if got := metricValue(t, reg, "tollgate_ratelimit_degraded"); got != 0 {
					t.Errorf("degraded gauge = %v, want 0: Redis answered every call", got)
				}
				if r, err := s.Take(ctx, "someone-else", []ratelimit.Policy{normal}, 1); err != nil || !r.Allowed || r.Degraded {
					t.Errorf("Take on another key = %+v, %v; want allowed by Redis", r, err)
				}
			})
		}
	}
}
