package middleware_test

import (
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/logjson"
	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/ratelimit"
)

// TestChainAllocs holds the chains to their allocation budgets per
// request: the core chain (request id, access line, recover, router)
// allocates its one state; an authenticated, rate-limited request adds
// only the principal's record, which also backs the rate-limit headers.
func TestChainAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation counts; this test runs without -race in `go test ./...`")
	}
	log := slog.New(logjson.New(io.Discard, nil))
	core := func(h http.Handler) http.Handler {
		rt := middleware.NewRouter()
		rt.Handle("GET /v1/hello", h)
		return middleware.Chain(middleware.RequestID(nil), middleware.Logger(log, nil), middleware.Recover(log))(rt)
	}
	rl := middleware.RateLimit(middleware.RateLimitConfig{Store: ratelimit.NewMemoryStore(ratelimit.MemoryOptions{}), Default: ratelimit.Policy{Limit: 1e9, Window: time.Second}})
	tests := []struct {
		name string
		h    http.Handler
		max  float64
	}{
		{"core", core(http.HandlerFunc(helloHandler)), 1},
		{"auth+ratelimit", core(middleware.Chain(middleware.Auth(stubVerifier{"acct"}, nil), rl)(http.HandlerFunc(helloHandler))), 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := http.NewRequest("GET", "http://localhost/v1/hello", nil)
			r.Header.Set("Authorization", "Bearer good")
			w := &nullWriter{h: http.Header{}}
			tt.h.ServeHTTP(w, r)
			if w.h.Get("X-Request-Id") == "" {
				t.Fatal("the chain did not run")
			}
			n := testing.AllocsPerRun(1000, func() {
				clear(w.h)
				tt.h.ServeHTTP(w, r)
			})
			if n > tt.max {
				t.Errorf("%v allocs per request, want at most %v", n, tt.max)
			}
		})
	}
}
