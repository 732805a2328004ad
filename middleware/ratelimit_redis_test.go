package middleware_test

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate-dev/tollgate/internal/testenv"
	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/ratelimit"
	"github.com/tollgate-dev/tollgate/ratelimit/redisstore"
)

// TestRateLimitResetSharedStore: with the Redis store the decision is
// made when the script runs, not when the request entered the chain, so
// X-RateLimit-Reset must count from then: a request that spent time in
// the chain before the limiter (a slow key lookup) must not be told a
// Reset before its next admission.
func TestRateLimitResetSharedStore(t *testing.T) {
	p := ratelimit.Policy{Limit: 2, Window: 2 * time.Second} // one unit a second, burst 2
	tests := []struct {
		name string
		lag  time.Duration // how long before the limiter the request entered the chain
	}{
		{"decided on arrival", 0},
		{"decided after a slow key lookup", 3 * time.Second},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, prefix := testenv.Redis(t)
			o := redisstore.ClientOptions(addr)
			o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.PoolTimeout = 5*time.Second, 5*time.Second, 5*time.Second, 5*time.Second
			client := redis.NewClient(o)
			defer client.Close()
			st, err := redisstore.New(client, redisstore.Options{Prefix: prefix, Timeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			arrived := func() time.Time { return time.Now().Add(-tt.lag) }
			rl := middleware.RateLimit(middleware.RateLimitConfig{Store: st, Default: p})
			h := middleware.Chain(middleware.RequestID(arrived))(rl(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})))
			before := time.Now() // the burst is spent after this
			for n, wantCode := range []int{http.StatusOK, http.StatusOK, http.StatusTooManyRequests} {
				w := httptest.NewRecorder()
				r := httptest.NewRequest("GET", "/", nil)
				r.RemoteAddr = "192.0.2." + strconv.Itoa(i+1) + ":1234"
				h.ServeHTTP(w, r)
				if w.Code != wantCode {
					t.Fatalf("request %d: %d, want %d", n+1, w.Code, wantCode)
				}
				if n == 0 {
					continue // Remaining 1
				}
				reset, err := strconv.ParseInt(w.Header().Get("X-RateLimit-Reset"), 10, 64)
				if err != nil {
					t.Fatal(err)
				}
				// Remaining 0: the next admission is one interval after the
				// burst was spent, which was after before.
				if next := before.Add(time.Second); time.Unix(reset, 0).Before(next) {
					t.Errorf("request %d (%d): X-RateLimit-Reset %v is before the next admission, after %v",
						n+1, w.Code, time.Unix(reset, 0).Format(time.RFC3339), next.Format(time.RFC3339Nano))
				}
			}
		})
	}
}
