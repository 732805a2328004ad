package redisstore

import (
	"hash/maphash"
	"sync"
	"time"

	"github.com/tollgate-dev/tollgate/ratelimit"
)

const denyShards = 16

// denyCache remembers keys Redis found over their limit, so that until they
// could be admitted again they are denied without a round trip. It keeps
// the GCRA state Redis returned and replays the decision locally: a TAT only
// grows (other instances only add to it), so a state that denies a request
// now would also deny it in Redis. Anything the stale state would admit
// goes to Redis. Safe for concurrent use.
type denyCache struct {
	seed     maphash.Seed
	maxShard int
	shards   [denyShards]denyShard
}

type denyShard struct {
	mu sync.Mutex
	m  map[string]*denial
}

// denial is Redis's answer for a key: the states after the denial, relative
// to the Redis time of the decision (in microseconds), the policies they
// belong to, and the local time (nanoseconds) it was received.
type denial struct {
	at       int64
	policies []policyID
	states   []ratelimit.GCRAState // TATs relative to the decision's Redis time
	until    int64                 // local time from which a cost-1 request may pass
}

// policyID identifies a policy's state in Redis, as its key does
// (Policy.String): its Limit, Window and burst. Policies that share an
// interval and a tolerance ("10/1m;burst=20" and "20/2m") still have states
// of their own.
type policyID struct {
	limit  int
	window time.Duration
	burst  int
}

func idOf(p *ratelimit.Policy) policyID {
	return policyID{limit: p.Limit, window: p.Window, burst: p.Capacity()}
}

func newDenyCache(size int) *denyCache {
	c := &denyCache{seed: maphash.MakeSeed(), maxShard: max(size/denyShards, 1)}
	for i := range c.shards {
		c.shards[i].m = make(map[string]*denial)
	}
	return c
}

func (c *denyCache) shard(key string) *denyShard {
	return &c.shards[maphash.String(c.seed, key)%denyShards]
}

// lookup returns a denial for a request of cost ≥ 1 at local time now if
// the cached state still denies it.
func (c *denyCache) lookup(key string, now int64, policies []ratelimit.Policy, cost int) (ratelimit.Result, bool) {
	sh := c.shard(key)
	sh.mu.Lock()
	d := sh.m[key]
	if d == nil {
		sh.mu.Unlock()
		return ratelimit.Result{}, false
	}
	if now >= d.until {
		delete(sh.m, key)
		sh.mu.Unlock()
		return ratelimit.Result{}, false
	}
	at, ids, cached := d.at, d.policies, d.states
	sh.mu.Unlock()

	if len(cached) != len(policies) {
		return ratelimit.Result{}, false
	}
	for i := range policies {
		if ids[i] != idOf(&policies[i]) {
			return ratelimit.Result{}, false // another policy set for this key
		}
	}
	elapsed := (now - at) / 1000 // microseconds, rounded down: never stale in the caller's favour
	var buf [4]ratelimit.GCRAState
	states := append(buf[:0], cached...)
	denied := false
	for i := range states {
		st := &states[i]
		st.TAT = max(st.TAT, elapsed)
		if st.TAT+int64(cost)*st.Interval-elapsed > st.Tolerance {
			denied = true
		}
	}
	if !denied {
		return ratelimit.Result{}, false
	}
	return ratelimit.Describe(elapsed, time.Microsecond, policies, states, cost, false), true
}

// store records a denial Redis made at redisNow (µs) under policies, whose
// states it returned, received at local time now (ns), if it blocks even
// a cost-1 request for a while.
func (c *denyCache) store(key string, now, redisNow int64, policies []ratelimit.Policy, states []ratelimit.GCRAState) {
	blocked := int64(0) // µs until a cost-1 request passes
	rel := make([]ratelimit.GCRAState, len(states))
	for i, st := range states {
		rel[i] = ratelimit.GCRAState{Interval: st.Interval, Tolerance: st.Tolerance, TAT: st.TAT - redisNow}
		blocked = max(blocked, rel[i].TAT+st.Interval-st.Tolerance)
	}
	if blocked <= 0 {
		return
	}
	ids := make([]policyID, len(policies))
	for i := range policies {
		ids[i] = idOf(&policies[i])
	}
	d := &denial{at: now, policies: ids, states: rel, until: now + blocked*1000}
	sh := c.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if _, ok := sh.m[key]; !ok && len(sh.m) >= c.maxShard {
		for k, old := range sh.m {
			if now >= old.until {
				delete(sh.m, k)
			}
		}
		if len(sh.m) >= c.maxShard {
			for k := range sh.m { // map order: a random victim
				delete(sh.m, k)
				break
			}
		}
	}
	sh.m[key] = d
}
