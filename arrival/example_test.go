package arrival_test

import (
	"context"
	"fmt"
	"time"

	"github.com/tollgate-dev/tollgate/arrival"
)

// A layer that would read the clock takes the request's arrival time
// instead, when the request carries one read from the system clock.
func ExampleFrom() {
	ctx := arrival.With(context.Background(), time.Now())
	if t, ok := arrival.From(ctx); ok {
		fmt.Println("arrived", time.Since(t) < time.Minute)
	}
	// A fixed time from a test clock is not used.
	_, ok := arrival.From(arrival.With(context.Background(), time.Unix(0, 0)))
	fmt.Println(ok)
	// Output:
	// arrived true
	// false
}
