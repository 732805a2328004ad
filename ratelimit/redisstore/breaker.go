package redisstore

import "sync/atomic"

// Breaker states.
const (
	closed   int32 = iota // calls go to Redis
	open                  // calls fail fast until the cool-down has passed
	halfOpen              // one probe call is in flight
)

// breaker is a consecutive-failure circuit breaker: after threshold
// failures in a row it opens, and calls skip Redis; once cooldown has
// passed since it opened, one call probes Redis (half-open): success closes
// it, failure opens it again. Times are nanoseconds from the store's clock.
// Safe for concurrent use; the closed path is one atomic load.
type breaker struct {
	threshold int32
	cooldown  int64
	onChange  func(open bool) // called on every transition to or from closed

	state    atomic.Int32
	failures atomic.Int32
	openedAt atomic.Int64
}

// allow reports whether a call may go to Redis at now.
func (b *breaker) allow(now int64) bool {
	switch b.state.Load() {
	case closed:
		return true
	case open:
		return now-b.openedAt.Load() >= b.cooldown && b.state.CompareAndSwap(open, halfOpen)
	default: // a probe is already in flight
		return false
	}
}

// success records a call that Redis answered.
func (b *breaker) success() {
	if b.failures.Load() != 0 {
		b.failures.Store(0)
	}
	if b.state.Load() != closed && b.state.CompareAndSwap(halfOpen, closed) {
		b.onChange(false)
	}
}

// failure records a call that Redis failed at now.
func (b *breaker) failure(now int64) {
	n := b.failures.Add(1)
	switch b.state.Load() {
	case halfOpen:
		b.openedAt.Store(now)
		b.state.Store(open)
	case closed:
		if n >= b.threshold {
			b.openedAt.Store(now) // before the state, so allow never sees a stale time
			if b.state.CompareAndSwap(closed, open) {
				b.onChange(true)
			}
		}
	}
}

// abandon records a call that ended without an answer for reasons not
// Redis's (the caller's context ended): a probe in flight is given back.
func (b *breaker) abandon() {
	b.state.CompareAndSwap(halfOpen, open)
}
