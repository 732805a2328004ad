// Package redisstore is a ratelimit.Store whose state lives in Redis, so
// every instance of a service counts against the same limits.
//
// Each decision is one round trip: a Lua script (EVALSHA, falling back to
// EVAL when Redis has not cached it) reads the server's TIME, runs GCRA for
// all the key's policies and writes only if the request is admitted, so a
// denial consumes nothing and instances with skewed clocks agree. Keys found
// over their limit are denied locally, without a round trip, until they
// could pass again.
//
// A Redis outage is bounded and never looks like the client's fault: every
// call has a short deadline, a circuit breaker stops calling Redis after
// consecutive failures (probing again after a cool-down), and a
// FailurePolicy decides what happens meanwhile: a per-instance limiter
// (FailLocal, the default), no limit (FailOpen), or an error wrapping
// ratelimit.ErrUnavailable for a 503 (FailClosed). None of them denies a
// request because Redis is down.
package redisstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate-dev/tollgate/ratelimit"
)

// FailurePolicy says what a Store does while Redis is unreachable.
type FailurePolicy int

const (
	// FailLocal decides with a per-instance fallback store (by default a
	// ratelimit.MemoryStore): limits still hold per instance, so N
	// instances admit up to N times a limit. Results are Degraded.
	FailLocal FailurePolicy = iota
	// FailOpen admits every request, with a Degraded Result.
	FailOpen
	// FailClosed returns an error wrapping ratelimit.ErrUnavailable, which
	// the HTTP layer maps to 503.
	FailClosed
)

// String returns "local", "open" or "closed".
func (f FailurePolicy) String() string {
	switch f {
	case FailLocal:
		return "local"
	case FailOpen:
		return "open"
	case FailClosed:
		return "closed"
	}
	return fmt.Sprintf("FailurePolicy(%d)", int(f))
}

// ParseFailurePolicy parses "local", "open" or "closed", for configuration.
func ParseFailurePolicy(s string) (FailurePolicy, error) {
	for _, f := range []FailurePolicy{FailLocal, FailOpen, FailClosed} {
		if s == f.String() {
			return f, nil
		}
	}
	return 0, fmt.Errorf("redisstore: parse failure policy %q: want local, open or closed", s)
}

// Defaults for the zero values of Options.
const (
	DefaultPrefix           = "ratelimit:"
	DefaultTimeout          = 50 * time.Millisecond
	DefaultBreakerThreshold = 5
	DefaultBreakerCooldown  = time.Second
	DefaultDenyCacheSize    = 10000
	DefaultMaxBatch         = 64
	batchLeaders            = 4 // batches in flight at once
)

// Options configures a Store. The zero value gives the defaults.
type Options struct {
	// Prefix starts every Redis key the store writes. Default DefaultPrefix.
	Prefix string
	// Timeout bounds each call to Redis (the client must have
	// ContextTimeoutEnabled for it to hold). Default DefaultTimeout.
	Timeout time.Duration
	// Failure is what Take does while Redis is unreachable. Default FailLocal.
	Failure FailurePolicy
	// Fallback decides for FailLocal. Default: a ratelimit.MemoryStore on
	// the same clock.
	Fallback ratelimit.Store
	// BreakerThreshold is how many consecutive Redis failures open the
	// circuit breaker. Default DefaultBreakerThreshold.
	BreakerThreshold int
	// BreakerCooldown is how long the breaker stays open before one call
	// probes Redis again. Default DefaultBreakerCooldown.
	BreakerCooldown time.Duration
	// DenyCacheSize bounds the local cache of keys known to be over their
	// limit. Default DefaultDenyCacheSize; negative disables the cache.
	DenyCacheSize int
	// Now is the local clock, for the breaker's cool-down and the deny
	// cache (decisions themselves use Redis's TIME). Default: the monotonic
	// clock behind time.Now.
	Now func() time.Time
	// Metrics receives the store's Prometheus metrics; nil means none are
	// recorded. See NewMetrics.
	Metrics *Metrics
	// MaxBatch is how many concurrent decisions may share one pipelined
	// round trip (each still runs its own script, atomically). Batching
	// needs no goroutine: callers take turns sending the batch. Zero means
	// DefaultMaxBatch; 1 turns batching off, so every decision is its own
	// EVALSHA under the caller's context. With batching a decision ignores
	// its caller's context once queued and waits at most about twice
	// Timeout: one still queued Timeout after it was queued fails as a
	// timeout (the failure policy decides it) without being sent.
	MaxBatch int
}

// Store is a ratelimit.Store backed by Redis. It is safe for concurrent use
// by multiple goroutines; it holds no lock across a Redis call.
type Store struct {
	client   redis.Scripter
	prefix   string
	timeout  time.Duration
	failure  FailurePolicy
	fallback ratelimit.Store
	cache    *denyCache // nil when disabled
	batch    *batcher   // nil when not batching
	breaker  breaker
	now      func() int64 // local nanoseconds
	m        *Metrics
}

var _ ratelimit.Store = (*Store)(nil)

// errBreakerOpen is the cause reported while the breaker skips Redis.
var errBreakerOpen = errors.New("circuit breaker open")

// New returns a Store that keeps its state through client, a *redis.Client
// (see ClientOptions) or a *redis.ClusterClient, with ContextTimeoutEnabled:
// otherwise a hung Redis holds every request for the client's read timeout
// whatever Options.Timeout says, so New refuses a *redis.Client without it.
// (go-redis's autopipeliner waits for the read timeout too, whatever the
// context says; it is not a good client for this store.)
func New(client redis.Scripter, opts Options) (*Store, error) {
	if client == nil {
		return nil, errors.New("redisstore: new: nil client")
	}
	if c, ok := client.(interface{ Options() *redis.Options }); ok && !c.Options().ContextTimeoutEnabled {
		return nil, errors.New("redisstore: new: the client must set ContextTimeoutEnabled (see ClientOptions)")
	}
	if opts.Failure < FailLocal || opts.Failure > FailClosed {
		return nil, fmt.Errorf("redisstore: new: unknown failure policy %d", int(opts.Failure))
	}
	if opts.Timeout < 0 || opts.BreakerThreshold < 0 || opts.BreakerCooldown < 0 || opts.MaxBatch < 0 {
		return nil, errors.New("redisstore: new: Timeout, BreakerThreshold, BreakerCooldown and MaxBatch must not be negative")
	}
	s := &Store{
		client:   client,
		prefix:   cmp.Or(opts.Prefix, DefaultPrefix),
		timeout:  cmp.Or(opts.Timeout, DefaultTimeout),
		failure:  opts.Failure,
		fallback: opts.Fallback,
		m:        opts.Metrics,
	}
	if s.m == nil {
		s.m = newUnregisteredMetrics()
	}
	if opts.Now == nil {
		epoch := time.Now()
		s.now = func() int64 { return int64(time.Since(epoch)) }
	} else {
		epoch := opts.Now()
		s.now = func() int64 { return int64(opts.Now().Sub(epoch)) }
	}
	if s.fallback == nil {
		s.fallback = ratelimit.NewMemoryStore(ratelimit.MemoryOptions{Now: opts.Now})
	}
	if p, ok := client.(interface{ Pipeline() redis.Pipeliner }); ok && opts.MaxBatch != 1 {
		s.batch = &batcher{pipeline: p.Pipeline, now: time.Now, timeout: s.timeout,
			maxBatch: cmp.Or(opts.MaxBatch, DefaultMaxBatch), maxLeaders: batchLeaders}
	}
	if opts.DenyCacheSize >= 0 {
		s.cache = newDenyCache(cmp.Or(opts.DenyCacheSize, DefaultDenyCacheSize))
	}
	s.breaker = breaker{
		threshold: int32(cmp.Or(opts.BreakerThreshold, DefaultBreakerThreshold)),
		cooldown:  int64(cmp.Or(opts.BreakerCooldown, DefaultBreakerCooldown)),
		// Inc and Dec, not Set: stores may share one Metrics, and the
		// gauge counts those degraded.
		onChange: func(open bool) {
			if open {
				s.m.degraded.Inc()
			} else {
				s.m.degraded.Dec()
			}
		},
	}
	return s, nil
}

// ClientOptions returns options for a go-redis client at addr suited to a
// limiter on the request path: context deadlines honoured
// (ContextTimeoutEnabled), so the store's per-call Options.Timeout bounds
// every call; no command retries and a single dial attempt, so an outage
// costs a request at most that Timeout until the breaker opens; and 1 s
// dial, read, write and pool timeouts as a backstop for calls made without
// a deadline.
func ClientOptions(addr string) *redis.Options {
	const backstop = time.Second
	return &redis.Options{
		Addr:                  addr,
		ContextTimeoutEnabled: true,
		DialTimeout:           backstop,
		ReadTimeout:           backstop,
		WriteTimeout:          backstop,
		PoolTimeout:           backstop,
		MaxRetries:            -1,
		DialerRetries:         1,
	}
}

// Take implements ratelimit.Store. It answers from the deny cache for keys
// known to be over their limit, otherwise from Redis in one round trip;
// while Redis is failing it follows the store's FailurePolicy. Errors are
// prefixed "redisstore: take:"; when Redis is down and the policy is
// FailClosed they wrap ratelimit.ErrUnavailable. An error Redis answers
// because of the call itself (an ERR reply: see isOutage; policies that
// pass ratelimit.ValidateTake never cause one) is returned as it is: it
// does not count toward the circuit breaker, and no fallback decides.
func (s *Store) Take(ctx context.Context, key string, policies []ratelimit.Policy, cost int) (ratelimit.Result, error) {
	if err := ratelimit.ValidateTake(policies, cost); err != nil {
		return ratelimit.Result{}, fmt.Errorf("redisstore: take: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return ratelimit.Result{}, fmt.Errorf("redisstore: take: %w", err)
	}
	now := s.now()
	if s.cache != nil && cost > 0 {
		if r, ok := s.cache.lookup(key, now, policies, cost); ok {
			s.m.cacheDenied.Inc()
			return r, nil
		}
	}
	if !s.breaker.allow(now) {
		return s.degrade(ctx, key, policies, cost, errBreakerOpen)
	}

	redisNow, states, allowed, err := s.eval(ctx, key, policies, cost)
	if err != nil {
		if ctx.Err() != nil { // the caller gave up; not Redis's failure
			s.breaker.abandon()
			return ratelimit.Result{}, fmt.Errorf("redisstore: take: %w", ctx.Err())
		}
		s.m.redisErrors.Inc()
		if !isOutage(err) { // Redis is up and refused this call alone
			s.breaker.success()
			return ratelimit.Result{}, fmt.Errorf("redisstore: take: %w", err)
		}
		s.breaker.failure(now)
		return s.degrade(ctx, key, policies, cost, err)
	}
	s.breaker.success()

	r := ratelimit.Describe(redisNow, time.Microsecond, policies, states, cost, allowed)
	if allowed {
		s.m.redisAllowed.Inc()
	} else {
		s.m.redisDenied.Inc()
		if s.cache != nil {
			s.cache.store(key, now, redisNow, policies, states)
		}
	}
	return r, nil
}

// isOutage reports whether err, from a script call, means that Redis could
// not serve it: no reply (a refused connection, a timeout, a broken
// pipe), or a reply saying the server cannot serve now (LOADING, BUSY,
// READONLY, MASTERDOWN, OOM, "ERR max number of clients reached", …).
// The other reply errors, ERR, WRONGTYPE and CROSSSLOT, are Redis refusing this call's
// own arguments or keys: Redis is up, and one bad call must not open the
// breaker for every key.
func isOutage(err error) bool {
	var reply redis.Error
	if !errors.As(err, &reply) {
		return true
	}
	msg := reply.Error()
	switch {
	case strings.HasPrefix(msg, "ERR max number of clients"):
		return true
	case strings.HasPrefix(msg, "ERR "), strings.HasPrefix(msg, "WRONGTYPE "),
		strings.HasPrefix(msg, "CROSSSLOT "):
		return false
	}
	return true
}

// degrade decides without Redis, following the failure policy. It never
// denies because of the outage: FailLocal denies only what the
// per-instance limiter denies.
func (s *Store) degrade(ctx context.Context, key string, policies []ratelimit.Policy, cost int, cause error) (ratelimit.Result, error) {
	switch s.failure {
	case FailOpen:
		s.m.openAllowed.Inc()
		p := policies[0]
		for _, q := range policies[1:] {
			if q.Capacity() < p.Capacity() {
				p = q
			}
		}
		name := p.Name
		if name == "" {
			name = p.String()
		}
		// Remaining is unknown; report the policy as if the key were fresh:
		// this request's cost taken, full again cost intervals later.
		return ratelimit.Result{Allowed: true, Limit: p.Limit, Remaining: p.Capacity() - cost,
			ResetAfter: time.Duration(cost) * p.Interval(), Policy: name, Window: p.Window, Degraded: true}, nil
	case FailClosed:
		s.m.closedUnavailable.Inc()
		return ratelimit.Result{}, fmt.Errorf("redisstore: take: %w: %w", ratelimit.ErrUnavailable, cause)
	default:
		r, err := s.fallback.Take(ctx, key, policies, cost)
		if err != nil {
			s.m.fallbackError.Inc()
			return ratelimit.Result{}, fmt.Errorf("redisstore: take: fallback after %v: %w", cause, err)
		}
		if r.Allowed {
			s.m.fallbackAllowed.Inc()
		} else {
			s.m.fallbackDenied.Inc()
		}
		r.Degraded = true
		return r, nil
	}
}
