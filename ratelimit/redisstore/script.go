package redisstore

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate-dev/tollgate/ratelimit"
)

// gcra is the whole decision for one key and all its policies, atomic in
// Redis. Time is the server's TIME in microseconds, so instances with
// skewed clocks agree; every number stays below 2^53 and is exact in Lua's
// doubles.
//
// KEYS[i]: the TAT of policy i (a string, microseconds since the epoch).
// ARGV[1]: cost. ARGV[2i], ARGV[2i+1]: policy i's emission interval and
// tolerance in microseconds.
// Returns {allowed (0|1), now, TAT_1 … TAT_n} with TATs after the decision:
// the new TAT when admitted, max(TAT, now) when denied. A denial writes
// nothing; an admission sets each TAT with an expiry of TAT − now, so an
// idle key disappears as soon as it is indistinguishable from a new one.
var gcra = redis.NewScript(`
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local cost = tonumber(ARGV[1])
local stored = redis.call('MGET', unpack(KEYS))
local reply = {0, now}
local allowed = 1
for i = 1, #KEYS do
  local tat = tonumber(stored[i]) or now
  if tat < now then tat = now end
  reply[i + 2] = tat
  if tat + cost * tonumber(ARGV[2 * i]) - now > tonumber(ARGV[2 * i + 1]) then
    allowed = 0
  end
end
reply[1] = allowed
if allowed == 1 and cost > 0 then
  for i = 1, #KEYS do
    local tat = reply[i + 2] + cost * tonumber(ARGV[2 * i])
    reply[i + 2] = tat
    redis.call('SET', KEYS[i], string.format('%d', tat),
      'PX', string.format('%d', math.ceil((tat - now) / 1000)))
  end
end
return reply
`)

// shape returns a policy's emission interval and tolerance in microseconds,
// the interval rounded up so the store never admits more than the policy.
// The policy has passed ratelimit.ValidateTake, which guarantees that
// Shape succeeds in microseconds and that every number the script computes
// from them stays exact.
func shape(p ratelimit.Policy) (interval, tolerance int64) {
	interval, tolerance, _ = p.Shape(time.Microsecond)
	return interval, tolerance
}

// eval runs the script for key and returns the decision in microseconds:
// batched with concurrent calls when the store batches, else on its own
// under ctx with the store's Timeout.
func (s *Store) eval(ctx context.Context, key string, policies []ratelimit.Policy, cost int) (now int64, states []ratelimit.GCRAState, allowed bool, err error) {
	keys := make([]string, len(policies))
	args := make([]any, 1+2*len(policies))
	states = make([]ratelimit.GCRAState, len(policies))
	args[0] = cost
	// The {k…} hash tag keeps all of a key's policies in one cluster slot.
	// Its "k" keeps it from being empty (for a key "" or "}…"): Redis
	// Cluster hashes a name with an empty tag whole, which would spread
	// one key's policies over slots (CROSSSLOT).
	base := s.prefix + "{k" + key + "}:"
	for i, p := range policies {
		interval, tolerance := shape(p)
		states[i] = ratelimit.GCRAState{Interval: interval, Tolerance: tolerance}
		keys[i] = base + p.String()
		args[1+2*i], args[2+2*i] = interval, tolerance
	}
	var reply []int64
	if s.batch != nil {
		c := &call{keys: keys, args: args}
		s.batch.run(c)
		reply, err = c.reply, c.err
	} else {
		ctx, cancel := context.WithTimeout(ctx, s.timeout)
		reply, err = gcra.Run(ctx, s.client, keys, args...).Int64Slice()
		cancel()
	}
	if err != nil {
		return 0, nil, false, err
	}
	if len(reply) != 2+len(policies) {
		return 0, nil, false, fmt.Errorf("script replied %d values, want %d", len(reply), 2+len(policies))
	}
	for i := range states {
		states[i].TAT = reply[2+i]
	}
	return reply[1], states, reply[0] == 1, nil
}
