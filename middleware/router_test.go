package middleware_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tollgate-dev/tollgate/middleware"
)

// TestRouterPicksServeMuxRoute checks that the router's exact-match path
// picks the pattern ServeMux itself would, for every request of a table
// over several route sets, and that path values still work.
func TestRouterPicksServeMuxRoute(t *testing.T) {
	sets := map[string][]string{
		"api": {"GET /v1/hello", "POST /v1/hello", "GET /v1/{name}", "GET /v1/leads/{id}",
			"GET /v1/leads/{$}", "/v1/files/", "GET /v1/a/b", "DELETE /v1/hello"},
		"methodless": {"/v1/hello", "GET /v1/hello", "PUT /v1/a/b"},
		"host":       {"GET /v1/hello", "example.com/v1/hello", "GET example.com/v1/other"},
		"late":       {"GET /v1/{name}", "GET /v1/hello"},
	}
	reqs := []struct{ method, target, host string }{
		{"GET", "/v1/hello", ""},
		{"HEAD", "/v1/hello", ""},
		{"POST", "/v1/hello", ""},
		{"PUT", "/v1/hello", ""},
		{"DELETE", "/v1/hello", ""},
		{"GET", "/v1/hel%6Co", ""},
		{"GET", "/v1/a/b", ""},
		{"GET", "/v1/a%2Fb", ""},
		{"GET", "/v1/world", ""},
		{"GET", "/v1/leads/", ""},
		{"GET", "/v1/leads/lead_1", ""},
		{"GET", "/v1/files/x", ""},
		{"GET", "/v1/hello", "example.com"},
		{"GET", "/v1/hello", "example.com:8080"},
		{"GET", "/v1/other", "example.com"},
		{"OPTIONS", "/v1/hello", ""},
	}
	for name, patterns := range sets {
		t.Run(name, func(t *testing.T) {
			rt := middleware.NewRouter()
			mux := http.NewServeMux()
			for _, p := range patterns {
				h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("X-Pattern", p)
					w.Header().Set("X-Name", r.PathValue("name")+r.PathValue("id"))
				})
				rt.Handle(p, h)
				mux.Handle(p, h)
			}
			for _, rq := range reqs {
				r := httptest.NewRequest(rq.method, "http://localhost"+rq.target, nil)
				if rq.host != "" {
					r.Host = rq.host
				}
				_, want := mux.Handler(r)
				wantRec := httptest.NewRecorder()
				mux.ServeHTTP(wantRec, r.Clone(t.Context()))
				got := httptest.NewRecorder()
				rr := r.Clone(t.Context())
				rt.ServeHTTP(got, rr)
				if want == "" || wantRec.Code != http.StatusOK {
					continue // not found, redirect or 405: TestRouter covers those answers
				}
				if got.Code != http.StatusOK || got.Header().Get("X-Pattern") != want || rr.Pattern != want {
					t.Errorf("%s %s (host %q): router chose %q (status %d, r.Pattern %q), ServeMux %q",
						rq.method, rq.target, rq.host, got.Header().Get("X-Pattern"), got.Code, rr.Pattern, want)
				}
				if g, w := got.Header().Get("X-Name"), wantRec.Header().Get("X-Name"); g != w {
					t.Errorf("%s %s: path value %q, ServeMux %q", rq.method, rq.target, g, w)
				}
			}
		})
	}
}
