package middleware_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tollgate-dev/tollgate/middleware"
)

// TestMetricsLabels: the route label is a registered pattern or
// "unmatched", whatever the method or path of the request, so arbitrary
// requests cannot grow the series.
func TestMetricsLabels(t *testing.T) {
	reg := prometheus.NewRegistry()
	rt := middleware.NewRouter()
	rt.HandleFunc("GET /things/{id}", func(w http.ResponseWriter, r *http.Request) {})
	h := middleware.Chain(middleware.RequestID(nil), middleware.Metrics(reg, nil))(rt)
	for _, c := range []struct{ method, target string }{
		{"GET", "/things/1"}, {"GET", "/things/2"}, {"FOO", "/things/1"}, {"FOO", "/nope"},
		{"GET", "/nope/sk_live_abc"}, {"GET", "/a//b"}, {"POST", "/things/3"},
	} {
		do(h, c.method, c.target, "")
	}
	want := `
# HELP tollgate_http_requests_total HTTP requests by route pattern, status and error code.
# TYPE tollgate_http_requests_total counter
tollgate_http_requests_total{code="",route="GET /things/{id}",status="200"} 2
tollgate_http_requests_total{code="METHOD_NOT_ALLOWED",route="unmatched",status="405"} 2
tollgate_http_requests_total{code="ROUTE_NOT_FOUND",route="unmatched",status="404"} 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "tollgate_http_requests_total"); err != nil {
		t.Error(err)
	}
}

// TestMetricsSharedRegistry: two servers (two Metrics middlewares) may
// share a registry; both count into the same series.
func TestMetricsSharedRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	var hs []http.Handler
	for range 2 {
		rt := middleware.NewRouter()
		rt.HandleFunc("GET /ok", func(w http.ResponseWriter, r *http.Request) {})
		hs = append(hs, middleware.Chain(middleware.RequestID(nil), middleware.Metrics(reg, nil))(rt))
	}
	for _, h := range hs {
		do(h, "GET", "/ok", "")
	}
	want := `
# HELP tollgate_http_requests_total HTTP requests by route pattern, status and error code.
# TYPE tollgate_http_requests_total counter
tollgate_http_requests_total{code="",route="GET /ok",status="200"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "tollgate_http_requests_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(reg, "tollgate_http_request_duration_seconds"); n != 1 {
		t.Errorf("%d latency series, want 1", n)
	}
}
