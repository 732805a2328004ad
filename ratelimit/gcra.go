package ratelimit

import "time"

// GCRAState is one policy's part of a GCRA decision, for Store
// implementations that keep their state elsewhere (ratelimit/redisstore
// runs the decision in a Redis script). Values are in the store's own time
// unit; MemoryStore uses nanoseconds, the Redis store microseconds.
type GCRAState struct {
	// Interval is the emission interval: Window/Limit rounded up.
	Interval int64
	// Tolerance is Interval × the policy's burst.
	Tolerance int64
	// TAT is the theoretical arrival time after the decision: the new TAT
	// when the request was admitted, max(old TAT, now) when denied.
	TAT int64
}

// Describe builds the Result of a decision made at now (in the same unit
// as states), where states[i] belongs to policies[i]. It picks the binding
// policy as Result documents: when admitted, the fewest remaining (then the
// longest reset); when denied, the longest wait (then the fewest
// remaining); the first policy wins a full tie. unit converts the states'
// unit to a time.Duration. Describe is a pure function, safe to call
// concurrently.
func Describe(now int64, unit time.Duration, policies []Policy, states []GCRAState, cost int, allowed bool) Result {
	b, bRemaining, bReset, bRetry := -1, int64(0), int64(0), int64(0)
	for i := range states {
		p := &states[i]
		reset := max(p.TAT-now, 0)
		remaining := max((p.Tolerance-reset)/p.Interval, 0)
		var retry int64
		if !allowed {
			retry = max(p.TAT+int64(cost)*p.Interval-p.Tolerance-now, 0)
		}
		better := b < 0
		switch {
		case better:
		case !allowed && retry != bRetry:
			better = retry > bRetry
		case remaining != bRemaining:
			better = remaining < bRemaining
		default:
			better = reset > bReset
		}
		if better {
			b, bRemaining, bReset, bRetry = i, remaining, reset, retry
		}
	}
	p := &policies[b]
	return Result{
		Allowed:    allowed,
		Limit:      p.Limit,
		Remaining:  int(bRemaining),
		RetryAfter: time.Duration(bRetry) * unit,
		ResetAfter: time.Duration(bReset) * unit,
		Policy:     p.name(),
		Window:     p.Window,
	}
}
