package middleware

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/tollgate-dev/tollgate/apierror"
	"github.com/tollgate-dev/tollgate/auth"
	"github.com/tollgate-dev/tollgate/ratelimit"
)

// Header families RateLimit can write, as a bit set.
const (
	// HeadersLegacy writes X-RateLimit-Limit, -Remaining and -Reset.
	HeadersLegacy = 1 << iota
	// HeadersIETF writes the IETF draft pair RateLimit-Policy and
	// RateLimit. Off by default: widely used parsers read a RateLimit
	// header as the older combined "limit=, remaining=, reset=" form.
	HeadersIETF
)

// ParseHeaderFamilies parses a comma-separated list of "legacy" and "ietf".
func ParseHeaderFamilies(s string) (int, error) {
	var f int
	for p := range strings.SplitSeq(s, ",") {
		switch p = strings.TrimSpace(p); p {
		case "":
		case "legacy":
			f |= HeadersLegacy
		case "ietf":
			f |= HeadersIETF
		default:
			return 0, errors.New(`ratelimit headers: want "legacy", "ietf" or both, not "` + p + `"`)
		}
	}
	if f == 0 {
		return 0, errors.New("ratelimit headers: empty")
	}
	return f, nil
}

// RateLimitConfig configures RateLimit.
type RateLimitConfig struct {
	// Store decides; it must not be nil.
	Store ratelimit.Store
	// Default is the plan of a key without its own, and of unauthenticated
	// clients. For example 100 per minute.
	Default ratelimit.Policy
	// Headers is the set of header families to write; 0 means
	// HeadersLegacy.
	Headers int
	// Now is the clock for X-RateLimit-Reset, read once the store has
	// decided. A ratelimit.MemoryStore decides at the request's arrival,
	// so with it the chain's start time is used when there is one.
	Now func() time.Time
}

// RateLimit admits or refuses each request by its API key's plan (the
// key's rate, or Default) or, without a key, by client address under
// Default. Every answer carries the headers of one decision:
// X-RateLimit-Limit, -Remaining and -Reset (unix seconds), and the IETF
// pair when asked for. A refusal is 429 RATE_LIMITED, "Rate limit
// exceeded. Retry after N seconds.", with Retry-After equal to
// details.retry_after. A store failure is 503 SERVICE_UNAVAILABLE, never
// 429 and never 500.
func RateLimit(cfg RateLimitConfig) Middleware {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Headers == 0 {
		cfg.Headers = HeadersLegacy
	}
	if cfg.Default.Name == "" {
		cfg.Default.Name = "default"
	}
	plans := &planCache{def: []ratelimit.Policy{cfg.Default}}
	// Other stores (Redis) decide when their call runs, after the request
	// entered the chain (and after the key lookup): their ResetAfter and
	// RetryAfter count from then, so Reset must too, or it is early.
	_, atArrival := cfg.Store.(*ratelimit.MemoryStore)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			key, policies := "", plans.def
			if p, ok := auth.PrincipalFrom(r.Context()); ok {
				key = p.KeyID // "key_…": never equal to an "ip:" key
				policies = plans.get(p.RatePlan)
			} else {
				key = "ip:" + clientAddr(r)
			}
			st := stateFrom(r.Context())
			st.serveArrival(true) // the store may take the start time
			res, err := cfg.Store.Take(r.Context(), key, policies, 1)
			st.serveArrival(false)
			if err != nil {
				apierror.Write(w, r, storeFailure(r.Context(), err, "Rate limiting is unavailable.", "ratelimit_unavailable"))
				return
			}
			now, ok := st.startTime()
			if !ok || !atArrival {
				now = cfg.Now()
			}
			setRateHeaders(w.Header(), st, cfg.Headers, res, policies, now)
			if !res.Allowed {
				apierror.Write(w, r, rateLimited("Rate limit exceeded.", res.Limit, res.Window, res.Policy, res.RetryAfter))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// setRateHeaders writes the headers of one decision under policies.
// X-RateLimit-Reset (and the IETF t=) is when the client's next request
// will be admitted if Remaining is 0 — the Retry-After time on a 429, so a
// client may wait for it instead of earning a 429 — and otherwise when the
// bucket is full again. It is rounded up to whole unix seconds, and never
// early: a request at that time is admitted.
func setRateHeaders(h http.Header, st *state, families int, res ratelimit.Result, policies []ratelimit.Policy, now time.Time) {
	reset := res.ResetAfter
	if res.Remaining <= 0 {
		if !res.Allowed {
			reset = res.RetryAfter
		} else if p := bindingPolicy(policies, res); p != nil {
			// The bucket is full after ResetAfter and one unit frees up
			// every interval, so the first unit frees up burst−1 intervals
			// before that. The interval is the stores' own (rounded up to
			// a nanosecond); a store whose clock is coarser rounds it up
			// further, and then admits no later than this says.
			reset = max(res.ResetAfter-time.Duration(p.Capacity()-1)*p.Interval(), 0)
		}
		// Otherwise (no such policy) the time to full: late, never early.
	}
	at := now.Add(reset)
	resetUnix := at.Unix()
	if at.After(time.Unix(resetUnix, 0)) {
		resetUnix++
	}
	if families&HeadersLegacy != 0 {
		// One string holds the three numbers, and the header values are
		// slices of it. For an authenticated request, the string and the
		// slices live in its state: no allocation.
		var rh *rateHeaders
		if st != nil && st.authed != nil && !st.authed.rate.used {
			rh = &st.authed.rate
		} else {
			rh = new(rateHeaders)
		}
		rh.used = true
		b := strconv.AppendInt(rh.buf[:0], int64(res.Limit), 10)
		n1 := len(b)
		b = strconv.AppendInt(b, int64(max(res.Remaining, 0)), 10)
		n2 := len(b)
		b = strconv.AppendInt(b, resetUnix, 10)
		// b fits in buf (three int64s), which is written only this once.
		all := unsafe.String(&b[0], len(b))
		v := &rh.vals
		v[0][0], v[1][0], v[2][0] = all[:n1], all[n1:n2], all[n2:]
		h["X-Ratelimit-Limit"] = v[0][:]
		h["X-Ratelimit-Remaining"] = v[1][:]
		h["X-Ratelimit-Reset"] = v[2][:]
	}
	if families&HeadersIETF != 0 {
		// w= is whole seconds: a window that is not is rounded up, so the
		// header never announces a faster rate than the plan's (nor w=0).
		name := strconv.Quote(res.Policy)
		h["Ratelimit-Policy"] = []string{name + ";q=" + strconv.Itoa(res.Limit) + ";w=" + strconv.FormatInt(int64(ceilDiv(res.Window, time.Second)), 10)}
		h["Ratelimit"] = []string{name + ";r=" + strconv.Itoa(max(res.Remaining, 0)) + ";t=" + strconv.FormatInt(int64(ceilDiv(reset, time.Second)), 10)}
	}
}

func ceilDiv(a, b time.Duration) time.Duration { return (a + b - 1) / b }

// bindingPolicy returns the policy among policies that res describes, or
// nil.
func bindingPolicy(policies []ratelimit.Policy, res ratelimit.Result) *ratelimit.Policy {
	for i := range policies {
		p := &policies[i]
		if p.Limit == res.Limit && p.Window == res.Window &&
			(p.Name == res.Policy || p.Name == "" && p.String() == res.Policy) {
			return p
		}
	}
	return nil
}

// rateLimited is a 429 RATE_LIMITED: what happened, "Retry after N
// seconds.", and the policy in details, with Retry-After.
func rateLimited(what string, limit int, window time.Duration, policy string, retry time.Duration) *apierror.Error {
	return apierror.New(apierror.RateLimited, what+" Retry after "+strconv.Itoa(apierror.RetrySeconds(retry))+" seconds.").
		With("limit", limit).With("window", ratelimit.FormatWindow(window)).
		With("policy", policy).WithRetryAfter(retry)
}

// planCache parses each key's rate plan once.
type planCache struct {
	def []ratelimit.Policy
	m   sync.Map // plan string → []ratelimit.Policy
}

func (c *planCache) get(plan string) []ratelimit.Policy {
	if plan == "" {
		return c.def
	}
	if v, ok := c.m.Load(plan); ok {
		return v.([]ratelimit.Policy)
	}
	p, err := ratelimit.ParsePolicy(plan)
	if err != nil {
		return c.def // plans are validated when keys are made
	}
	p.Name = "key"
	ps := []ratelimit.Policy{p}
	c.m.Store(plan, ps)
	return ps
}
