package client

import "sync"

// budget is a token bucket of retries shared by every call of a Client or
// Transport (Google SRE's per-client retry budget, in gRPC's token style).
// Each call deposits ratio of a token, each retry withdraws one, and the
// bucket holds at most floor tokens and starts full, so over any stretch of
// time retries ≤ ratio × calls + floor. Amounts are in thousandths of a
// token so that ten deposits of 0.1 make exactly one token.
//
// A budget is safe for concurrent use.
type budget struct {
	mu      sync.Mutex
	tokens  int64
	max     int64
	deposit int64
}

const milli = 1000

func newBudget(ratio float64, floor int) *budget {
	return &budget{
		tokens:  int64(floor) * milli,
		max:     int64(floor) * milli,
		deposit: int64(ratio*milli + 0.5),
	}
}

// call records a new call.
func (b *budget) call() {
	b.mu.Lock()
	b.tokens = min(b.tokens+b.deposit, b.max)
	b.mu.Unlock()
}

// retry takes one token for a retry; false means the budget is spent.
func (b *budget) retry() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.tokens < milli {
		return false
	}
	b.tokens -= milli
	return true
}
