package store

import (
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

// Clock returns now reading time truncated to the microsecond (the
// precision every backend stores) in UTC; a nil now means time.Now.
func Clock(now func() time.Time) func() time.Time {
	if now == nil {
		now = time.Now
	}
	return func() time.Time { return now().UTC().Truncate(time.Microsecond) }
}
