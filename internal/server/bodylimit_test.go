package server_test

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/internal/testenv"
)

// TestBodyLimitKeepsRoute: a body over the limit is 413 PAYLOAD_TOO_LARGE
// on a route (its access line and metrics name the route pattern, not
// "unmatched"), and a path no route matches stays 404 ROUTE_NOT_FOUND,
// whatever its Content-Length.
func TestBodyLimitKeepsRoute(t *testing.T) {
	tests := []struct {
		name, path string
		status     int
		logLine    string
		metric     string
	}{
		{"route", "/v1/echo/1", 413, `"route":"POST /v1/echo/{id}","path":"/v1/echo/1","status":413,"code":"PAYLOAD_TOO_LARGE"`,
			`tollgate_http_requests_total{code="PAYLOAD_TOO_LARGE",route="POST /v1/echo/{id}",status="413"} 1`},
		{"no route", "/v1/nope", 404, `"route":"","path":"/v1/nope","status":404,"code":"ROUTE_NOT_FOUND"`,
			`tollgate_http_requests_total{code="ROUTE_NOT_FOUND",route="unmatched",status="404"} 1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := &testenv.Buffer{}
			h := newServer(t, logs, nil).Handler()
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest("POST", tt.path, strings.NewReader(`{"name":"`+strings.Repeat("x", 5000)+`"}`)))
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.status, w.Body)
			}
			if !strings.Contains(logs.String(), tt.logLine) {
				t.Errorf("access line lacks %s:\n%s", tt.logLine, logs)
			}
			m := httptest.NewRecorder()
			h.ServeHTTP(m, httptest.NewRequest("GET", "/metrics", nil))
			if !strings.Contains(m.Body.String(), tt.metric) {
				t.Errorf("/metrics lacks %s", tt.metric)
			}
		})
	}
}
