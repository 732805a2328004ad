package middleware_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"sync"
	"testing"

	"github.com/tollgate-dev/tollgate/apierror"
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
		"whitespace": {" GET /v1/hello", "GET\t/v1/a/b", "GET /v1/{name}"},
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
		{"CONNECT", "/v1/hello", ""},
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
				wantRec, wantReq := httptest.NewRecorder(), r.Clone(t.Context())
				mux.ServeHTTP(wantRec, wantReq)
				got := httptest.NewRecorder()
				rr := r.Clone(t.Context())
				rt.ServeHTTP(got, rr)
				if want == "" || wantRec.Code != http.StatusOK {
					// Not found, a redirect or 405 (TestRouter covers those
					// answers): no registered handler may have run.
					if p := got.Header().Get("X-Pattern"); p != "" {
						t.Errorf("%s %s (host %q): router ran %q; ServeMux answered %d", rq.method, rq.target, rq.host, p, wantRec.Code)
					}
					continue
				}
				if got.Code != http.StatusOK || got.Header().Get("X-Pattern") != want || rr.Pattern != wantReq.Pattern {
					t.Errorf("%s %s (host %q): router chose %q (status %d, r.Pattern %q), ServeMux %q (r.Pattern %q)",
						rq.method, rq.target, rq.host, got.Header().Get("X-Pattern"), got.Code, rr.Pattern, want, wantReq.Pattern)
				}
				if g, w := got.Header().Get("X-Name"), wantRec.Header().Get("X-Name"); g != w {
					t.Errorf("%s %s: path value %q, ServeMux %q", rq.method, rq.target, g, w)
				}
			}
		})
	}
}

// TestRouterExactPath checks that the lookup is taken where it may be and
// not where it may not.
func TestRouterExactPath(t *testing.T) {
	rt := middleware.NewRouter()
	for _, p := range []string{"GET /v1/hello", "GET /v1/{name}", "/v2/any", "GET /v1/dir/"} {
		rt.HandleFunc(p, func(http.ResponseWriter, *http.Request) {})
	}
	for _, c := range []struct {
		method, target string
		want           bool
	}{
		{"GET", "/v1/hello", true},
		{"HEAD", "/v1/hello", false},
		{"GET", "/v1/world", false},
		{"GET", "/v2/any", false},
		{"GET", "/v1/dir/", false},
		{"GET", "/v1/hel%6Co", false}, // an unusual escaping: left to ServeMux
		{"GET", "/v1/a%2Fb", false},
	} {
		r := httptest.NewRequest(c.method, c.target, nil)
		if got := middleware.ExactRoute(rt, r); got != c.want {
			t.Errorf("%s %s: exact lookup %v, want %v", c.method, c.target, got, c.want)
		}
	}
	hosts := middleware.NewRouter()
	hosts.HandleFunc("GET /v1/hello", func(http.ResponseWriter, *http.Request) {})
	hosts.HandleFunc("example.com/v1/other", func(http.ResponseWriter, *http.Request) {})
	if middleware.ExactRoute(hosts, httptest.NewRequest("GET", "/v1/hello", nil)) {
		t.Error("a host pattern is registered: the exact lookup must be off")
	}
}

// TestRouterRegisterWhileServing registers routes while requests are
// served, for the race detector.
func TestRouterRegisterWhileServing(t *testing.T) {
	rt := middleware.NewRouter()
	rt.HandleFunc("GET /v1/0", func(http.ResponseWriter, *http.Request) {})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 1; i < 200; i++ {
			rt.HandleFunc(fmt.Sprintf("GET /v1/%d", i), func(http.ResponseWriter, *http.Request) {})
		}
	})
	for range 2 {
		wg.Go(func() {
			for i := range 400 {
				rt.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", fmt.Sprintf("/v1/%d", i%200), nil))
			}
		})
	}
	wg.Wait()
	rec := httptest.NewRecorder()
	rt.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/199", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /v1/199 after registration: %d", rec.Code)
	}
}

// TestRouterUnderHTTPMux121 runs the ServeMux comparison again in a child
// process with GODEBUG=httpmuxgo121=1, where ServeMux has no method
// patterns and the exact lookup must stay off.
func TestRouterUnderHTTPMux121(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestRouterPicksServeMuxRoute$", "-test.count=1")
	cmd.Env = append(os.Environ(), "GODEBUG=httpmuxgo121=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("under httpmuxgo121=1: %v\n%s", err, out)
	}
}

// TestRouterWire checks, over a loopback connection, the answers the
// router gives where ServeMux would not use the contract: a path that
// only exists with a trailing slash (ServeMux: a 307 with an HTML body),
// and a path registered only for a method outside the common ones
// (ServeMux: 405).
func TestRouterWire(t *testing.T) {
	rt := middleware.NewRouter()
	for _, p := range []string{"GET /v1/dir/", "GET /v1/end/{$}", "POST /v1/post/", "QUERY /v1/search", "PURGE /v1/cache/{key}"} {
		rt.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(r.Pattern)) })
	}
	srv := httptest.NewServer(middleware.Chain(middleware.RequestID(nil))(rt))
	defer srv.Close()
	cl := srv.Client()
	cl.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	tests := []struct {
		name, method, path string
		status             int
		code               apierror.Code
		allow              string
	}{
		{"subtree without its slash", "GET", "/v1/dir", 404, apierror.RouteNotFound, ""},
		{"subtree without its slash, with a query", "GET", "/v1/dir?a=1", 404, apierror.RouteNotFound, ""},
		{"{$} without its slash", "GET", "/v1/end", 404, apierror.RouteNotFound, ""},
		{"POST subtree without its slash", "POST", "/v1/post", 404, apierror.RouteNotFound, ""},
		{"another method, subtree without its slash", "GET", "/v1/post", 404, apierror.RouteNotFound, ""},
		{"subtree", "GET", "/v1/dir/", 200, "", ""},
		{"uncommon method's path", "GET", "/v1/search", 405, apierror.MethodNotAllowed, "QUERY"},
		{"uncommon method's pattern", "DELETE", "/v1/cache/k1", 405, apierror.MethodNotAllowed, "PURGE"},
		{"uncommon method", "QUERY", "/v1/search", 200, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, srv.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			res, err := cl.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			if res.StatusCode != tt.status {
				t.Fatalf("%s %s = %d (Content-Type %q, Location %q), want %d", tt.method, tt.path, res.StatusCode,
					res.Header.Get("Content-Type"), res.Header.Get("Location"), tt.status)
			}
			if tt.code == "" {
				return
			}
			e := apierror.Decode(res)
			if e.Foreign || e.Code != tt.code || e.RequestID() != res.Header.Get("X-Request-Id") {
				t.Errorf("body: code %s (foreign %v, request_id %q), want %s", e.Code, e.Foreign, e.RequestID(), tt.code)
			}
			if got := res.Header.Get("Allow"); got != tt.allow {
				t.Errorf("Allow = %q, want %q", got, tt.allow)
			}
		})
	}
}
