package ratelimit

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"
	"time"
)

// MaxTolerance bounds a policy's tolerance, Window/Limit × Burst: the
// longest time a key's state can reach into the future, in every store's
// time unit (see Policy.Shape). It keeps every store's arithmetic exact and
// free of overflow, including the Redis store's, whose numbers must stay
// exact in Lua's doubles (about 36 years).
const MaxTolerance = time.Duration(1 << 60)

// storeUnits are the time units of this module's stores: nanoseconds for
// MemoryStore, microseconds for ratelimit/redisstore. Validate accepts a
// policy only if every one of them can represent it.
var storeUnits = [...]time.Duration{time.Nanosecond, time.Microsecond}

// Policy is one rate limit: Limit units per Window, with bursts of up to
// Burst units at once. A Policy is a plain value, safe to copy and to share
// between goroutines.
type Policy struct {
	// Name identifies the policy in results and error details ("default",
	// "per-day"). Optional; when empty, results use String().
	Name string
	// Limit is how many units a key may take per Window. Must be > 0.
	Limit int
	// Window is the period Limit applies to. Must be > 0.
	Window time.Duration
	// Burst is how many units a key may take at once, after being idle.
	// Zero means Limit.
	Burst int
}

// ParsePolicy parses the String form of a policy: "LIMIT/WINDOW", optionally
// followed by ";burst=N". WINDOW is a number and a unit (ms, s, m, h, d, or
// any time.ParseDuration form such as "1m30s" or ".5s"); a bare unit ("s",
// "m", "h", "d", "ms") means one of it. Examples: "600/1m", "100/1m",
// "10/1s", "10000/1d", "10/s;burst=20". The policy must pass Validate. The
// result has no Name.
func ParsePolicy(s string) (Policy, error) {
	spec, burstPart, hasBurst := strings.Cut(strings.TrimSpace(s), ";")
	limitPart, windowPart, ok := strings.Cut(spec, "/")
	if !ok {
		return Policy{}, fmt.Errorf("ratelimit: parse policy %q: want LIMIT/WINDOW", s)
	}
	limit, err := strconv.Atoi(strings.TrimSpace(limitPart))
	if err != nil {
		return Policy{}, fmt.Errorf("ratelimit: parse policy %q: limit: %w", s, err)
	}
	window, err := parseWindow(strings.TrimSpace(windowPart))
	if err != nil {
		return Policy{}, fmt.Errorf("ratelimit: parse policy %q: window: %w", s, err)
	}
	p := Policy{Limit: limit, Window: window}
	if hasBurst {
		v, ok := strings.CutPrefix(strings.TrimSpace(burstPart), "burst=")
		if !ok {
			return Policy{}, fmt.Errorf("ratelimit: parse policy %q: want ;burst=N", s)
		}
		if p.Burst, err = strconv.Atoi(v); err != nil {
			return Policy{}, fmt.Errorf("ratelimit: parse policy %q: burst: %w", s, err)
		}
		if p.Burst == 0 {
			return Policy{}, fmt.Errorf("ratelimit: parse policy %q: burst must be > 0", s)
		}
	}
	if err := p.Validate(); err != nil {
		return Policy{}, fmt.Errorf("ratelimit: parse policy %q: %w", s, err)
	}
	return p, nil
}

// parseWindow accepts what FormatWindow writes, a bare unit ("s" for "1s"),
// days ("2d"), and everything time.ParseDuration accepts.
func parseWindow(s string) (time.Duration, error) {
	switch s {
	case "":
		return 0, errors.New("empty")
	case "ns", "us", "µs", "μs", "ms", "s", "m", "h", "d":
		s = "1" + s // a bare unit; anything else is read as it is
	}
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.ParseInt(n, 10, 64)
		// Only bounded so the Duration does not overflow: whether the
		// policy's tolerance fits is Validate's call, as for any unit.
		if err != nil || days <= 0 || days > int64(math.MaxInt64/(24*time.Hour)) {
			return 0, fmt.Errorf("invalid days %q", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

// String returns the policy in the form ParsePolicy reads: "600/1m", with
// ";burst=N" when Burst is set and differs from Limit.
func (p Policy) String() string {
	s := strconv.Itoa(p.Limit) + "/" + FormatWindow(p.Window)
	if p.Burst != 0 && p.Burst != p.Limit {
		s += ";burst=" + strconv.Itoa(p.Burst)
	}
	return s
}

// FormatWindow formats a window in the largest unit that divides it: "1d",
// "1h", "1m", "30s", "100ms"; other durations use time.Duration's String.
// It is the form for the "window" member of RATE_LIMITED details.
func FormatWindow(d time.Duration) string {
	units := [...]struct {
		d    time.Duration
		name string
	}{{24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}, {time.Millisecond, "ms"}}
	if d > 0 {
		for _, u := range units {
			if d%u.d == 0 {
				return strconv.FormatInt(int64(d/u.d), 10) + u.name
			}
		}
	}
	return d.String()
}

// Capacity returns the burst in effect: Burst, or Limit when Burst is 0.
func (p Policy) Capacity() int {
	if p.Burst == 0 {
		return p.Limit
	}
	return p.Burst
}

// Within reports whether p never admits more than q: p's rate
// (Limit per Window) is at most q's and p's Capacity at most q's. Both
// policies should be valid; the comparison is exact, without overflow.
func (p Policy) Within(q Policy) bool {
	if p.Capacity() > q.Capacity() {
		return false
	}
	// p.Limit/p.Window <= q.Limit/q.Window, cross-multiplied in 128 bits.
	ph, pl := bits.Mul64(uint64(p.Limit), uint64(q.Window))
	qh, ql := bits.Mul64(uint64(q.Limit), uint64(p.Window))
	return ph < qh || ph == qh && pl <= ql
}

// Interval returns the emission interval, Window/Limit rounded up to a
// whole nanosecond: the time one unit takes to refill in MemoryStore, and
// never more than in a store with a coarser clock. Zero if the policy is
// invalid.
func (p Policy) Interval() time.Duration {
	i, _, _ := p.params()
	return time.Duration(i)
}

// Shape returns the emission interval and the tolerance of a store whose
// clock counts in unit (time.Nanosecond for MemoryStore, time.Microsecond
// for ratelimit/redisstore): the interval is Window/Limit rounded up to a
// whole unit, at least one, so that a store never admits more than the
// policy says; the tolerance is the interval × the burst. The arithmetic
// never overflows: Shape returns an error if the policy is invalid or if
// its tolerance in unit is above MaxTolerance. Stores take these numbers
// from Shape rather than computing their own, so that what Validate
// accepts every store can decide.
func (p Policy) Shape(unit time.Duration) (interval, tolerance int64, err error) {
	switch {
	case p.Limit <= 0:
		return 0, 0, errLimit
	case p.Window <= 0:
		return 0, 0, errWindow
	case p.Burst < 0:
		return 0, 0, errBurst
	case unit <= 0:
		return 0, 0, fmt.Errorf("time unit %v must be > 0", unit)
	}
	// interval = ⌈Window / (Limit × unit)⌉, the product taken in 128 bits.
	w := uint64(p.Window)
	hi, d := bits.Mul64(uint64(p.Limit), uint64(unit))
	if hi != 0 || d >= w {
		interval = 1 // less than one unit: rounded up to one
	} else {
		interval = int64(w / d)
		if w%d != 0 {
			interval++
		}
	}
	// tolerance × unit ≤ MaxTolerance, so tolerance fits in an int64.
	hi, tol := bits.Mul64(uint64(interval), uint64(p.Capacity()))
	if hi != 0 || tol > uint64(MaxTolerance/unit) {
		return 0, 0, errTolerance
	}
	return interval, int64(tol), nil
}

// Validate reports whether the policy is usable: Limit and Window
// positive, Burst not negative, and a tolerance (Window/Limit × Burst,
// the interval rounded up to each store's time unit) of at most
// MaxTolerance in the units of every store of this module. A policy that
// passes is decided by every store; one that does not is refused by all.
func (p Policy) Validate() error {
	if _, _, err := p.params(); err != nil {
		return fmt.Errorf("policy %s: %w", p.label(), err)
	}
	return nil
}

func (p Policy) label() string {
	if p.Name != "" {
		return strconv.Quote(p.Name)
	}
	return strconv.Itoa(p.Limit) + "/" + p.Window.String()
}

var (
	errLimit     = errors.New("limit must be > 0")
	errWindow    = errors.New("window must be > 0")
	errBurst     = errors.New("burst must be >= 0")
	errTolerance = errors.New("window/limit × burst exceeds MaxTolerance")
)

// params validates the policy as Validate documents and returns its
// emission interval and tolerance in nanoseconds.
func (p Policy) params() (interval, tolerance int64, err error) {
	for _, unit := range storeUnits[1:] {
		if _, _, err := p.Shape(unit); err != nil {
			return 0, 0, err
		}
	}
	return p.Shape(storeUnits[0])
}

// name is what Result.Policy reports for p.
func (p Policy) name() string {
	if p.Name != "" {
		return p.Name
	}
	return p.String()
}

// ValidateTake reports whether a Take with these arguments is well formed:
// at least one policy, every policy valid, cost not negative and not above
// any policy's burst (that error wraps ErrCostExceedsBurst). Stores call it
// before deciding; it is exported so other Store implementations agree.
func ValidateTake(policies []Policy, cost int) error {
	if len(policies) == 0 {
		return errors.New("ratelimit: no policies")
	}
	if cost < 0 {
		return fmt.Errorf("ratelimit: negative cost %d", cost)
	}
	for _, p := range policies {
		if err := p.Validate(); err != nil {
			return fmt.Errorf("ratelimit: %w", err)
		}
		if cost > p.Capacity() {
			return fmt.Errorf("%w: cost %d, policy %s burst %d", ErrCostExceedsBurst, cost, p.label(), p.Capacity())
		}
	}
	return nil
}
