package client_test

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/client"
)

// deadlineSleeper is a fakeClock whose Sleep, for a wait that reaches the
// context's deadline, blocks until the context ends, as Sleep does.
type deadlineSleeper struct{ *fakeClock }

func (c deadlineSleeper) Sleep(ctx context.Context, d time.Duration) error {
	if dl, ok := ctx.Deadline(); ok && !c.Now().Add(d).Before(dl) {
		<-ctx.Done()
		return ctx.Err()
	}
	return c.fakeClock.Sleep(ctx, d)
}

// TestPacingNeverWaitsPastDeadline: while another request on the key is
// in flight (the first one, or the probe after a reset), a call waits for
// its response, but not past the call's deadline: a call with less time
// left than that wait is sent at once, like one whose reset lies past its
// deadline, instead of failing with its deadline unsent.
func TestPacingNeverWaitsPastDeadline(t *testing.T) {
	tests := []struct {
		name      string
		afterWarm time.Duration // time passed after a warm-up call (0: none)
	}{
		{"behind the first request", 0},
		{"behind the probe after a reset", 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := deadlineSleeper{&fakeClock{t: time.Now()}}
			release := make(chan struct{})
			started := make(chan struct{}, 1)
			slow := func(w http.ResponseWriter, r *http.Request) {
				started <- struct{}{}
				<-release
				status(200, leadJSON)(w, r)
			}
			steps := []http.HandlerFunc{slow, status(200, leadJSON)}
			if tt.afterWarm > 0 {
				warm := status(200, leadJSON, "X-RateLimit-Limit", "10", "X-RateLimit-Remaining", "5",
					"X-RateLimit-Reset", strconv.FormatInt(clk.Now().Add(time.Second).Unix(), 10))
				steps = append([]http.HandlerFunc{warm}, steps...)
			}
			srv := newScript(t, steps...)
			c := newClient(t, srv.URL, clk.fakeClock, client.WithClock(clk.Now, clk.Sleep))
			if tt.afterWarm > 0 {
				if _, err := c.Leads.Get(context.Background(), "lead_1"); err != nil {
					t.Fatal(err)
				}
				clk.fakeClock.Sleep(context.Background(), tt.afterWarm) // the reset has passed
			}

			var wg sync.WaitGroup
			wg.Go(func() { c.Leads.Get(context.Background(), "lead_1") })
			<-started
			defer func() { close(release); wg.Wait() }()

			// 2 s of real time left, but the call is 200 ms from its
			// deadline on the client's clock: less than the wait for the
			// response in flight.
			dl := time.Now().Add(2 * time.Second)
			clk.mu.Lock()
			clk.t = dl.Add(-200 * time.Millisecond)
			clk.mu.Unlock()
			ctx, cancel := context.WithDeadline(context.Background(), dl)
			defer cancel()
			if _, err := c.Leads.Get(ctx, "lead_2"); err != nil {
				var ce *client.Error
				errors.As(err, &ce)
				t.Fatalf("Get = %v (attempts %d, stop %q), want it sent at once and answered", err, ce.Attempts, ce.Stop)
			}
		})
	}
}
