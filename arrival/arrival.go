// Package arrival carries the time a request arrived in its context, so
// that the layers handling the request (the access log, key verification,
// rate limiting) share one clock reading instead of each taking its own.
// On virtual machines a clock read can cost 40–90 ns, more than a cached
// key check's map lookup or a rate-limit decision.
//
// The middleware's per-request state serves the time it read when the
// request entered the chain, and only while Auth and RateLimit call the
// verifier and the limiter: a call made later on the same context (a
// streaming handler, a goroutine the handler started) must read the clock,
// or it would judge expiry and refill at a stale time. With serves a time
// for everyone else, with the same caveat.
package arrival

import (
	"context"
	"time"
)

type key struct{}

// Key is the context key From reads, for contexts of their own (like the
// middleware's per-request state) whose Value method returns a *time.Time
// for it, which costs no allocation. Everyone else uses With.
var Key any = key{}

// IsKey reports whether k is Key. It is cheaper than comparing the two
// interfaces, for Value methods on the request path.
func IsKey(k any) bool {
	_, ok := k.(key)
	return ok
}

// With returns a copy of ctx carrying t as the request's arrival time.
// Components that take it judge time by t, so pass the result only to
// calls made as the request arrives, not to long-lived work.
func With(ctx context.Context, t time.Time) context.Context {
	return context.WithValue(ctx, key{}, &t)
}

// From returns the arrival time carried by ctx when it was read from the
// system clock: it carries a monotonic clock reading, as time.Now's do. A
// time from an injected clock, or none, gives ok false. A component on the
// system clock may use the time instead of reading the clock; one with an
// injected clock must keep reading its own, so that tests stay in control
// of time and no component mixes readings from two clocks.
func From(ctx context.Context) (t time.Time, ok bool) {
	p, _ := ctx.Value(key{}).(*time.Time)
	if p == nil || *p == p.Round(0) { // Round(0) strips the monotonic reading
		return time.Time{}, false
	}
	return *p, true
}
