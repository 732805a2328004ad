package middleware_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/tollgate-dev/tollgate/logjson"
	"github.com/tollgate-dev/tollgate/middleware"
)

// TestClientClosedPanicStays500: a handler bug (a panic, unrelated to the
// cancellation) on a request whose client has gone is still a 500, in the
// 5xx alerts; only a 5xx caused by the cancellation is a 499.
func TestClientClosedPanicStays500(t *testing.T) {
	buf := &logBuffer{}
	reg := prometheus.NewRegistry()
	rt := middleware.NewRouter()
	rt.HandleFunc("GET /bug", func(w http.ResponseWriter, r *http.Request) { panic("a handler bug") })
	h := middleware.Chain(middleware.RequestID(nil), middleware.Metrics(reg, nil),
		middleware.Logger(slog.New(logjson.New(buf, nil)), nil), middleware.Recover(slog.New(logjson.New(buf, nil))))(rt)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequestWithContext(ctx, "GET", "/bug", nil))
	want := `
# HELP tollgate_http_requests_total HTTP requests by route pattern, status and error code.
# TYPE tollgate_http_requests_total counter
tollgate_http_requests_total{code="INTERNAL_ERROR",route="GET /bug",status="500"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "tollgate_http_requests_total"); err != nil {
		t.Error(err)
	}
}
