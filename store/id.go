package store

import (
	"fmt"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
)

// ID prefixes.
const (
	PrefixAccount = "acc_"
	PrefixKey     = "key_"
	PrefixSession = "ses_"
	PrefixLead    = "lead_"
)

// NewID returns prefix followed by a new ULID for time t. IDs made in one
// process sort by time, and strictly increase within a millisecond. It is
// safe for concurrent use.
func NewID(prefix string, t time.Time) string {
	return prefix + ulid.MustNew(ulid.Timestamp(t), ulid.DefaultEntropy()).String()
}

// NextID returns an ID with prefix that sorts after prev, the greatest ID
// already stored in its sequence ("" for none, or an ID with the same
// prefix): NewID(prefix, t) when that sorts after prev, else prev's
// successor (prev's ULID plus one, as a 128-bit number), which keeps prev's
// time. A backend that calls it while holding a lock that serialises the
// sequence's inserts until commit, with prev read under that lock, makes
// IDs increase in commit order whatever the clocks of its writers say.
func NextID(prefix string, t time.Time, prev string) (string, error) {
	id := NewID(prefix, t)
	if prev == "" {
		return id, nil
	}
	rest, ok := strings.CutPrefix(prev, prefix)
	if !ok {
		return "", fmt.Errorf("next id after %q: want prefix %q", prev, prefix)
	}
	if id > prev {
		return id, nil
	}
	u, err := ulid.ParseStrict(rest)
	if err != nil {
		return "", fmt.Errorf("next id after %q: %w", prev, err)
	}
	for i := len(u) - 1; i >= 0; i-- {
		u[i]++
		if u[i] != 0 {
			return prefix + u.String(), nil
		}
	}
	return "", fmt.Errorf("next id after %q: no greater ULID", prev)
}

// Clock returns now reading time truncated to the microsecond (the
// precision every backend stores) in UTC; a nil now means time.Now.
func Clock(now func() time.Time) func() time.Time {
	if now == nil {
		now = time.Now
	}
	return func() time.Time { return now().UTC().Truncate(time.Microsecond) }
}
