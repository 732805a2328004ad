package middleware

import (
	"net/http"
	"time"
)

// CleanPath exports cleanPath for tests.
var CleanPath = cleanPath

// CheckIdempotencyKey exports checkIdempotencyKey for tests.
var CheckIdempotencyKey = checkIdempotencyKey

// ExactRoute reports whether rt's exact-route lookup finds r.
func ExactRoute(rt *Router, r *http.Request) bool {
	_, ok := rt.lookup(r)
	return ok
}

// LeaseTimer is the timer lease renewal arms and re-arms.
type LeaseTimer = leaseTimer

// WithLeaseTimers returns opts with lease renewals scheduled by afterFunc
// instead of time.AfterFunc.
func WithLeaseTimers(opts IdempotencyOptions, afterFunc func(d time.Duration, f func()) LeaseTimer) IdempotencyOptions {
	opts.afterFunc = afterFunc
	return opts
}
