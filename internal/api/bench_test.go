package api_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/auth"
	"github.com/tollgate-dev/tollgate/internal/api"
	"github.com/tollgate-dev/tollgate/logjson"
	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/ratelimit"
	"github.com/tollgate-dev/tollgate/store"
)

type nullWriter struct{ h http.Header }

func (w *nullWriter) Header() http.Header         { return w.h }
func (w *nullWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *nullWriter) WriteHeader(int)             {}

var hello = []byte(`{"hello":"world"}`)

func helloHandler(w http.ResponseWriter, r *http.Request) { w.Write(hello) }

// BenchmarkStack compares, in process, the bare handler with the core
// chain (request id, access log, recover, router) and the full stack
// (core + auth with a cached key + rate limit on the memory store). Compare
// with benchstat -col /impl.
func BenchmarkStack(b *testing.B) {
	ctx := context.Background()
	st := sqliteStore(b)
	acc, _, _ := st.EnsureAccount(ctx, "bench")
	key, err := api.CreateKey(ctx, st, acc.ID, api.KeyRequest{Name: "bench", Scopes: []string{"*"}, Rate: "1000000000/1s"})
	if err != nil {
		b.Fatal(err)
	}
	log := slog.New(logjson.New(io.Discard, nil))
	core := func(h http.Handler) http.Handler {
		rt := middleware.NewRouter()
		rt.Handle("GET /v1/hello", h)
		return middleware.Chain(middleware.RequestID(nil), middleware.Logger(log, nil), middleware.Recover(log))(rt)
	}
	v := auth.NewVerifier(store.AuthKeys(st), auth.WithTTL(time.Hour))
	rl := middleware.RateLimit(middleware.RateLimitConfig{Store: ratelimit.NewMemoryStore(ratelimit.MemoryOptions{}), Default: ratelimit.Policy{Limit: 1e9, Window: time.Second}})
	stacks := []struct {
		name string
		h    http.Handler
	}{
		{"bare", http.HandlerFunc(helloHandler)},
		{"core", core(http.HandlerFunc(helloHandler))},
		{"full", core(middleware.Chain(middleware.Auth(v, nil), rl, middleware.RequireScopes(auth.ScopeLeadsRead))(http.HandlerFunc(helloHandler)))},
	}
	for _, s := range stacks {
		b.Run("impl="+s.name, func(b *testing.B) {
			r, _ := http.NewRequest("GET", "http://localhost/v1/hello", nil)
			r.Header.Set("Authorization", "Bearer "+key.Secret)
			w := &nullWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				s.h.ServeHTTP(w, r)
			}
		})
	}
}
