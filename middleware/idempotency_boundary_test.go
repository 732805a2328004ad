package middleware_test

import (
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/middleware"
)

// TestIdempotencyRetentionBoundary pins the retention of a completed
// record (docs/idempotency.md, Retention): it expires at its retention,
// counted from the first use, unless its answer was stored after the
// retention had ended, when it is kept one retention from then.
func TestIdempotencyRetentionBoundary(t *testing.T) {
	const lease, retention = 30 * time.Second, 2 * time.Minute
	tests := []struct {
		name       string
		completeAt time.Duration // from the claim
		probeAt    time.Duration // from the claim
		replayed   bool
	}{
		{"stored early, just before the retention", 10 * time.Second, retention - time.Microsecond, true},
		{"stored early, at the retention", 10 * time.Second, retention, false},
		{"stored past the retention, just before one retention later", 150 * time.Second, 150*time.Second + retention - time.Microsecond, true},
		{"stored past the retention, one retention later", 150 * time.Second, 150*time.Second + retention, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			timers := &fakeLeaseTimers{}
			e := newIdemEnvWith(t, middleware.WithLeaseTimers(middleware.IdempotencyOptions{Lease: lease, Retention: retention}, timers.afterFunc))
			firstc := make(chan *httptest.ResponseRecorder)
			go func() { firstc <- e.do("POST", "/block", `{}`, key("k")...) }()
			<-e.started
			renewal := timers.only(t)
			var elapsed time.Duration
			for elapsed+lease/3 <= tt.completeAt {
				elapsed += renewal.fire(t, e.clock)
			}
			e.clock.Add(tt.completeAt - elapsed)
			close(e.release)
			if first := <-firstc; first.Code != 201 {
				t.Fatalf("first: %d %s", first.Code, first.Body)
			}
			e.clock.Add(tt.probeAt - tt.completeAt)
			w := e.do("POST", "/block", `{}`, key("k")...)
			if got := w.Header().Get(middleware.HeaderIdempotentReplayed) == "true"; got != tt.replayed {
				t.Errorf("probe %v after the claim: %d replayed %v, want replayed %v: %s", tt.probeAt, w.Code, got, tt.replayed, fmt.Sprint(w.Body))
			}
		})
	}
}
