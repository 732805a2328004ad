package middleware_test

import (
	"io"
	"log/slog"
	"net/http"
	"testing"

	"github.com/tollgate-dev/tollgate/logjson"
	"github.com/tollgate-dev/tollgate/middleware"
)

// nullWriter is a ResponseWriter that keeps nothing, so the benchmark
// measures the chain rather than a recorder.
type nullWriter struct{ h http.Header }

func (w *nullWriter) Header() http.Header         { return w.h }
func (w *nullWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *nullWriter) WriteHeader(int)             {}

var hello = []byte(`{"hello":"world"}`)

func helloHandler(w http.ResponseWriter, r *http.Request) { w.Write(hello) }

// BenchmarkChain compares the bare handler with the core chain (RequestID,
// Logger with its access line, Recover, Router) around it. Compare with
// benchstat on the impl key.
func BenchmarkChain(b *testing.B) {
	logs := logjson.New(io.Discard, nil)
	rt := middleware.NewRouter()
	rt.HandleFunc("GET /v1/hello", helloHandler)
	handlers := []struct {
		name string
		h    http.Handler
	}{
		{"bare", http.HandlerFunc(helloHandler)},
		{"chain", middleware.Chain(
			middleware.RequestID(nil),
			middleware.Logger(slog.New(logs), nil),
			middleware.Recover(slog.New(logs)),
		)(rt)},
	}
	for _, h := range handlers {
		b.Run("impl="+h.name, func(b *testing.B) {
			r, _ := http.NewRequest("GET", "http://localhost/v1/hello", nil)
			w := &nullWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				h.h.ServeHTTP(w, r)
			}
		})
	}
}
