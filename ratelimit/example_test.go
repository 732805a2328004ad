package ratelimit_test

import (
	"context"
	"fmt"
	"time"

	"github.com/tollgate-dev/tollgate/ratelimit"
)

func ExampleMemoryStore_Take() {
	// A fixed clock keeps the example's output stable; production code
	// leaves MemoryOptions.Now nil.
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	store := ratelimit.NewMemoryStore(ratelimit.MemoryOptions{Now: func() time.Time { return now }})

	perSecond, _ := ratelimit.ParsePolicy("2/1s")
	perSecond.Name = "burst"
	perDay, _ := ratelimit.ParsePolicy("10000/1d")
	perDay.Name = "daily"
	policies := []ratelimit.Policy{perSecond, perDay}

	for range 3 {
		r, err := store.Take(context.Background(), "account:42", policies, 1)
		if err != nil {
			panic(err) // invalid policies or cost
		}
		fmt.Printf("allowed=%v policy=%s limit=%d/%s remaining=%d retry_after=%v\n",
			r.Allowed, r.Policy, r.Limit, ratelimit.FormatWindow(r.Window), r.Remaining, r.RetryAfter)
	}
	// Output:
	// allowed=true policy=burst limit=2/1s remaining=1 retry_after=0s
	// allowed=true policy=burst limit=2/1s remaining=0 retry_after=0s
	// allowed=false policy=burst limit=2/1s remaining=0 retry_after=500ms
}
