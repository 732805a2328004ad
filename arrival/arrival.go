// Package arrival carries the time a request arrived in its context, so
// that the layers handling the request (the access log, key verification,
// rate limiting) share one clock reading instead of each taking its own.
// On virtual machines a clock read can cost 40–90 ns, more than a cached
// key check's map lookup or a rate-limit decision.
//
// The middleware's per-request state serves the time it read when the
// request entered the chain; With serves one for everyone else.
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
