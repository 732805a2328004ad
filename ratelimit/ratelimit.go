// Package ratelimit decides whether a request may proceed under one or more
// rate policies, using the generic cell rate algorithm (GCRA).
//
// A [Policy] says how many requests a key may make per window ("600/1m") and
// how large a burst it may send at once. A [Store] keeps the state of every
// key and makes the decision atomically: [MemoryStore] in this package for a
// single instance, ratelimit/redisstore for state shared across instances.
// Every store passes the same conformance suite, ratelimit/ratelimittest.
//
// # Algorithm
//
// Each (key, policy) pair holds one number, its theoretical arrival time
// (TAT). With the emission interval T = Window/Limit (rounded up to the
// store's time unit, so a store never admits more than the policy says) and
// the tolerance τ = T × Burst, a request of cost c arriving at time t is
// admitted iff
//
//	max(TAT, t) + c·T − t ≤ τ
//
// and then TAT becomes max(TAT, t) + c·T. A denied request changes nothing.
// This is the same decision as a token bucket of capacity Burst refilled at
// Limit tokens per Window, checked against a reference token bucket by this
// package's property test. With several policies a request is admitted only
// if every policy admits it, and a denial consumes nothing in any policy.
//
// A denial is a [Result] with Allowed false; an error means the store could
// not decide (see [ErrUnavailable]) or the call was malformed.
package ratelimit

import (
	"context"
	"errors"
	"time"
)

// Store decides rate-limit requests. Implementations are safe for concurrent
// use by multiple goroutines, and each decision is atomic: concurrent callers
// on one key never together exceed the policies.
type Store interface {
	// Take asks to spend cost units for key under every policy at once. The
	// request is admitted only if all policies admit it; if any denies it,
	// nothing is consumed in any policy. Cost 0 consumes nothing and reports
	// the current state. The Result describes the most restrictive policy
	// (see Result). A denial is a Result with Allowed false, not an error.
	//
	// State is kept per key and per policy, a policy being identified by
	// its Limit, Window and burst (not its Name), so calls for the same key
	// with different policy sets share the state of the policies they have
	// in common.
	//
	// Take returns an error wrapping ErrCostExceedsBurst if cost can never be
	// admitted, an error for invalid arguments, or an error when the store
	// failed (which wraps ErrUnavailable when the store is known to be down).
	Take(ctx context.Context, key string, policies []Policy, cost int) (Result, error)
}

// Result is the outcome of one [Store.Take]. It is one snapshot: every field
// describes the same policy, the one that binds the decision. On an admitted
// request that is the policy with the fewest remaining units (ties go to the
// longer reset); on a denied request it is the policy that makes the caller
// wait longest. Use it to fill X-RateLimit-* headers and the 429 details.
type Result struct {
	// Allowed reports whether the request was admitted (and consumed).
	Allowed bool
	// Limit is the binding policy's Limit.
	Limit int
	// Remaining is how many more cost-1 requests the binding policy would
	// admit right now, after this decision. Never negative.
	Remaining int
	// RetryAfter is how long to wait before the same request (same cost)
	// can be admitted; zero when Allowed.
	RetryAfter time.Duration
	// ResetAfter is how long until the binding policy is back to its full
	// burst if nothing else is taken.
	ResetAfter time.Duration
	// Policy is the binding policy's Name, or its String form when unnamed.
	Policy string
	// Window is the binding policy's Window.
	Window time.Duration
	// Degraded reports that the decision was not made by the configured
	// shared store (it was down) but by a fallback: a per-instance limiter,
	// or no limiter at all when the store is configured to fail open.
	Degraded bool
}

// ErrUnavailable is wrapped by errors a Store returns when its backing
// service is down and it is configured to fail closed. The HTTP layer maps
// it to 503 SERVICE_UNAVAILABLE; it must never become a 429.
var ErrUnavailable = errors.New("ratelimit: store unavailable")

// ErrCostExceedsBurst is wrapped by the error Take returns when cost is
// larger than the burst of one of the policies: such a request can never be
// admitted, so there is no time after which a retry would succeed.
var ErrCostExceedsBurst = errors.New("ratelimit: cost exceeds burst")
