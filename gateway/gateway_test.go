package gateway_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tollgate-dev/tollgate/apierror"
	"github.com/tollgate-dev/tollgate/auth"
	"github.com/tollgate-dev/tollgate/gateway"
	"github.com/tollgate-dev/tollgate/internal/api"
	"github.com/tollgate-dev/tollgate/internal/testenv"
	"github.com/tollgate-dev/tollgate/logjson"
	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/ratelimit"
	"github.com/tollgate-dev/tollgate/store"
	"github.com/tollgate-dev/tollgate/store/sqlite"
)

// harness is a gateway behind the chain tollgate gateway runs (RequestID,
// Metrics, Logger, Recover, BodyLimit, Auth on a real SQLite store, then
// any extra middleware), served on loopback.
type harness struct {
	url       string
	key       string // a live key of account accountID, scopes leads:read and leads:write
	keyID     string
	accountID string
	reg       *prometheus.Registry
	logs      *testenv.Buffer
	handler   http.Handler
	gw        *gateway.Gateway
	served    chan struct{} // a value each time a request is done, when there is room
}

func newHarness(t *testing.T, upstream string, opts gateway.Options, extra ...middleware.Middleware) *harness {
	t.Helper()
	u, err := gateway.ParseUpstream(upstream)
	if err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(u, opts)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "gw.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	acc, _, err := db.EnsureAccount(t.Context(), "default")
	if err != nil {
		t.Fatal(err)
	}
	ck, err := api.CreateKey(t.Context(), db, acc.ID, api.KeyRequest{Name: "gw", Scopes: []string{auth.ScopeLeadsRead, auth.ScopeLeadsWrite}})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{key: ck.Secret, keyID: ck.ID, accountID: acc.ID, reg: prometheus.NewRegistry(), logs: &testenv.Buffer{}, gw: g}
	log := slog.New(logjson.New(h.logs, nil))
	ms := []middleware.Middleware{
		middleware.RequestID(nil),
		middleware.Metrics(h.reg, nil),
		middleware.Logger(log, nil),
		middleware.Recover(log),
		middleware.BodyLimit(1 << 20),
		middleware.Auth(auth.NewVerifier(store.AuthKeys(db)), nil),
	}
	h.handler = middleware.Chain(append(ms, extra...)...)(g)
	h.served = make(chan struct{}, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			select {
			case h.served <- struct{}{}:
			default:
			}
		}()
		h.handler.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	h.url = srv.URL
	return h
}

// do sends a request through the gateway with the harness's key (unless
// the headers set their own credentials) and returns the response with
// its body read.
func (h *harness) do(t *testing.T, method, path string, body io.Reader, headers ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, h.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+h.key)
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
			continue
		}
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// upstream serves h on loopback until the test ends.
func upstream(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// envelope checks that resp and body are the contract's envelope with
// status and code, whose details.request_id is the X-Request-Id header,
// and returns the details.
func envelope(t *testing.T, resp *http.Response, body []byte, status int, code apierror.Code) map[string]any {
	t.Helper()
	if resp.StatusCode != status {
		t.Errorf("status = %d, want %d; body %s", resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != apierror.ContentTypeJSON {
		t.Errorf("Content-Type = %q, want %q", ct, apierror.ContentTypeJSON)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", cc)
	}
	var env struct {
		Error struct {
			Code    apierror.Code  `json:"code"`
			Message string         `json:"message"`
			Details map[string]any `json:"details"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatalf("body is not JSON: %v: %s", err, body)
	}
	if env.Error.Code != code || env.Error.Message == "" {
		t.Errorf("code %q message %q, want code %q and a message; body %s", env.Error.Code, env.Error.Message, code, body)
	}
	id := resp.Header.Get("X-Request-Id")
	if id == "" || env.Error.Details["request_id"] != id || len(resp.Header.Values("X-Request-Id")) != 1 {
		t.Errorf("details.request_id = %v, X-Request-Id = %q, want one header equal to it", env.Error.Details["request_id"], resp.Header.Values("X-Request-Id"))
	}
	return env.Error.Details
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// rawUpstream is a TCP server that reads each request's head and answers
// it with reply, written as it is, then closes the connection.
func rawUpstream(t *testing.T, reply string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
					return
				}
				io.WriteString(c, reply)
			}()
		}
	}()
	return "http://" + l.Addr().String()
}

// TestTransportFailures: an upstream that cannot be reached or answers
// something that is not HTTP gets 502 BAD_GATEWAY in the envelope, with
// the request id and without upstream_status, never ReverseProxy's empty
// 502 or net/http's plain text.
func TestTransportFailures(t *testing.T) {
	tests := []struct {
		name     string
		upstream func(t *testing.T) string
	}{
		{"connection refused", func(t *testing.T) string { return "http://" + closedAddr(t) }},
		{"garbage instead of a status line", func(t *testing.T) string { return rawUpstream(t, "this is not HTTP\r\n\r\n") }},
		{"malformed header", func(t *testing.T) string {
			return rawUpstream(t, "HTTP/1.1 200 OK\r\nNo colon here\r\nContent-Length: 0\r\n\r\n")
		}},
		{"bad status code", func(t *testing.T) string { return rawUpstream(t, "HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n") }},
		{"connection closed without an answer", func(t *testing.T) string { return rawUpstream(t, "") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.upstream(t), gateway.Options{})
			resp, body := h.do(t, "GET", "/v1/things", nil, "X-Request-Id", "trace-"+strings.ReplaceAll(tt.name, " ", "-"))
			d := envelope(t, resp, body, http.StatusBadGateway, apierror.BadGateway)
			if want := "trace-" + strings.ReplaceAll(tt.name, " ", "-"); d["request_id"] != want {
				t.Errorf("request_id = %v, want the client's %q", d["request_id"], want)
			}
			if _, ok := d["upstream_status"]; ok {
				t.Errorf("details.upstream_status = %v, want none: no status was received", d["upstream_status"])
			}
			// The cause is logged with the request id, never sent.
			if !strings.Contains(h.logs.String(), `"request_id":"`+d["request_id"].(string)+`"`) || !strings.Contains(h.logs.String(), `"status":502`) {
				t.Errorf("access log lacks the 502 and its request id:\n%s", h.logs.String())
			}
		})
	}
}

// TestTimeout: an upstream that does not answer within Options.Timeout,
// or within the request's deadline, gets 504 GATEWAY_TIMEOUT with the time
// it was given in details.timeout_ms. The upstream blocks until the test
// ends: only the gateway's own clock can end the request.
func TestTimeout(t *testing.T) {
	tests := []struct {
		name     string
		timeout  time.Duration
		deadline time.Duration // middleware.Timeout; 0 for none
		wantMin  float64       // details.timeout_ms bounds
		wantMax  float64
	}{
		{"response header timeout", 50 * time.Millisecond, 0, 50, 50},
		{"request deadline first", time.Hour, 100 * time.Millisecond, 1, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			release := make(chan struct{})
			up := upstream(t, func(w http.ResponseWriter, r *http.Request) { <-release })
			t.Cleanup(func() { close(release) }) // before the upstream closes
			var extra []middleware.Middleware
			if tt.deadline > 0 {
				extra = append(extra, middleware.Timeout(tt.deadline))
			}
			h := newHarness(t, up, gateway.Options{Timeout: tt.timeout}, extra...)
			resp, body := h.do(t, "GET", "/slow", nil)
			d := envelope(t, resp, body, http.StatusGatewayTimeout, apierror.GatewayTimeout)
			ms, _ := d["timeout_ms"].(float64)
			if ms < tt.wantMin || ms > tt.wantMax {
				t.Errorf("details.timeout_ms = %v, want %v–%v", d["timeout_ms"], tt.wantMin, tt.wantMax)
			}
		})
	}
}

// TestUpstreamErrors: an upstream error that already is the contract
// passes through byte for byte; any other is replaced by the envelope of
// its status, with details.upstream_status, keeping Retry-After and the
// rate-limit headers.
func TestUpstreamErrors(t *testing.T) {
	contract := func(status int, e *apierror.Error, accept string) (http.Header, []byte) {
		w := httptest.NewRecorder()
		r := httptest.NewRequest("GET", "/x", nil)
		r.Header.Set("Accept", accept)
		w.Header().Set("X-Request-Id", "upstream-id")
		apierror.Write(w, r, e)
		if w.Code != status {
			panic(fmt.Sprintf("contract: status %d, want %d", w.Code, status))
		}
		return w.Header(), w.Body.Bytes()
	}
	gz := func(b []byte) []byte {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(b)
		zw.Close()
		return buf.Bytes()
	}
	notFoundHdr, notFound := contract(404, apierror.New(apierror.NotFound, "Lead not found").With("resource", "lead"), "")
	limitedHdr, limited := contract(429, apierror.New(apierror.RateLimited, "Slow down.").WithRetryAfter(9*time.Second), "")
	problemHdr, problem := contract(409, apierror.New(apierror.Conflict, "Busy"), "application/problem+json")
	big := append(bytes.TrimSuffix(notFound, []byte("}}}\n")), []byte(`,"pad":"`+strings.Repeat("x", gateway.MaxErrorBody)+`"}}}`)...)

	type want struct {
		status   int
		code     apierror.Code // "" when the body passes through
		upstream any           // details.upstream_status
		details  map[string]any
		headers  map[string]string // "" = absent
	}
	tests := []struct {
		name    string
		status  int
		headers http.Header
		body    []byte
		want    want
	}{
		{"HTML 502", 502, http.Header{"Content-Type": {"text/html"}}, []byte("<html><body>502 Bad Gateway</body></html>"),
			want{status: 502, code: apierror.BadGateway, upstream: 502.0}},
		{"plain text 404", 404, http.Header{"Content-Type": {"text/plain"}}, []byte("404 page not found\n"),
			want{status: 404, code: apierror.NotFound, upstream: 404.0}},
		{"empty 500", 500, nil, nil,
			want{status: 500, code: apierror.InternalError, upstream: 500.0}},
		{"JSON that is not the envelope", 400, http.Header{"Content-Type": {"application/json"}}, []byte(`{"message":"name is required"}`),
			want{status: 400, code: apierror.InvalidRequest, upstream: 400.0}},
		{"503 without Retry-After", 503, nil, []byte("down"),
			want{status: 503, code: apierror.ServiceUnavailable, upstream: 503.0,
				details: map[string]any{"reason": "upstream_unavailable", "retry_after": 1.0}, headers: map[string]string{"Retry-After": "1"}}},
		{"429 in plain text keeps Retry-After and the rate-limit headers", 429,
			http.Header{"Retry-After": {"7"}, "X-Ratelimit-Limit": {"10"}, "X-Ratelimit-Remaining": {"0"}, "X-Ratelimit-Reset": {"1900000000"}, "Ratelimit-Policy": {`"up";q=10;w=60`}, "Set-Cookie": {"a=b"}},
			[]byte("Too Many Requests"),
			want{status: 429, code: apierror.RateLimited, upstream: 429.0, details: map[string]any{"retry_after": 7.0, "policy": "upstream", "limit": 10.0, "window": "1m"},
				headers: map[string]string{"Retry-After": "7", "X-RateLimit-Limit": "10", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1900000000", "RateLimit-Policy": `"up";q=10;w=60`, "Set-Cookie": ""}}},
		{"Retry-After as an HTTP date", 503, http.Header{"Retry-After": {time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)}}, nil,
			want{status: 503, code: apierror.ServiceUnavailable, upstream: 503.0}},
		{"a 4xx outside the catalogue", 418, http.Header{"Content-Type": {"text/plain"}}, []byte("I'm a teapot"),
			want{status: 400, code: apierror.InvalidRequest, upstream: 418.0}},
		{"a 5xx outside the catalogue", 501, nil, []byte("not implemented"),
			want{status: 502, code: apierror.BadGateway, upstream: 501.0}},
		{"a status past 599", 799, nil, []byte("?"),
			want{status: 502, code: apierror.BadGateway, upstream: 799.0}},
		{"405 keeps Allow", 405, http.Header{"Allow": {"GET, HEAD", "POST"}}, nil,
			want{status: 405, code: apierror.MethodNotAllowed, upstream: 405.0,
				details: map[string]any{"allowed": []any{"GET", "HEAD", "POST"}}, headers: map[string]string{"Allow": "GET, HEAD, POST"}}},
		{"envelope with a status not its code's", 500, notFoundHdr, notFound,
			want{status: 500, code: apierror.InternalError, upstream: 500.0}},
		{"envelope with a code outside the catalogue", 402, http.Header{"Content-Type": {"application/json"}},
			[]byte(`{"error":{"code":"CARD_DECLINED","message":"Declined","details":{}}}`),
			want{status: 400, code: apierror.InvalidRequest, upstream: 402.0}},
		{"envelope over MaxErrorBody", 404, notFoundHdr, big,
			want{status: 404, code: apierror.NotFound, upstream: 404.0}},
		{"envelope passes through", 404, withHeader(notFoundHdr, "X-Upstream", "kept"), notFound,
			want{status: 404, headers: map[string]string{"X-Upstream": "kept"}}},
		{"429 envelope passes through with Retry-After", 429, limitedHdr, limited,
			want{status: 429, headers: map[string]string{"Retry-After": "9"}}},
		{"problem+json passes through", 409, problemHdr, problem,
			want{status: 409, headers: map[string]string{"Content-Type": apierror.ContentTypeProblem}}},
		{"gzip envelope passes through packed", 404, withHeader(notFoundHdr, "Content-Encoding", "gzip"), gz(notFound),
			want{status: 404, headers: map[string]string{"Content-Encoding": "gzip"}}},
		{"garbage under Content-Encoding gzip", 404, http.Header{"Content-Encoding": {"gzip"}}, []byte("not gzip"),
			want{status: 404, code: apierror.NotFound, upstream: 404.0, headers: map[string]string{"Content-Encoding": ""}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
				for k, vs := range tt.headers {
					if k != "Content-Length" {
						w.Header()[k] = vs
					}
				}
				w.Header().Set("Content-Length", fmt.Sprint(len(tt.body)))
				w.WriteHeader(tt.status)
				w.Write(tt.body)
			})
			h := newHarness(t, up, gateway.Options{})
			// Accept-Encoding set by hand: the client then leaves a gzip
			// body packed, as it came.
			resp, body := h.do(t, "GET", "/v1/things", nil, "Accept-Encoding", "gzip")
			if tt.want.code == "" {
				if resp.StatusCode != tt.want.status || !bytes.Equal(body, tt.body) {
					t.Errorf("got %d %q, want the upstream's %d %q byte for byte", resp.StatusCode, body, tt.want.status, tt.body)
				}
				if got := resp.Header.Values("X-Request-Id"); len(got) != 1 {
					t.Errorf("X-Request-Id = %q, want one", got)
				}
			} else {
				d := envelope(t, resp, body, tt.want.status, tt.want.code)
				if d["upstream_status"] != tt.want.upstream {
					t.Errorf("details.upstream_status = %v, want %v", d["upstream_status"], tt.want.upstream)
				}
				for k, v := range tt.want.details {
					if diff := cmp.Diff(v, d[k]); diff != "" {
						t.Errorf("details.%s (-want +got):\n%s", k, diff)
					}
				}
				if ra := resp.Header.Get("Retry-After"); ra != "" && ra != number(d["retry_after"]) {
					t.Errorf("Retry-After %q != details.retry_after %v", ra, d["retry_after"])
				}
				if (tt.want.status == 429 || tt.want.status == 503) && resp.Header.Get("Retry-After") == "" {
					t.Errorf("%d without Retry-After", tt.want.status)
				}
			}
			for k, v := range tt.want.headers {
				if got := strings.Join(resp.Header.Values(k), ", "); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

func withHeader(h http.Header, k, v string) http.Header {
	h = h.Clone()
	h.Set(k, v)
	return h
}

// TestForwarded checks what the upstream receives: no API key, the
// caller's identity, the request id, and no identity or forwarding header
// the client made up.
func TestForwarded(t *testing.T) {
	tests := []struct {
		name    string
		trust   bool
		headers []string // pairs; the harness's key goes in Authorization unless overridden
		check   func(t *testing.T, h *harness, got http.Header)
	}{
		{"bearer key", false, []string{"X-Request-Id", "trace-42"}, func(t *testing.T, h *harness, got http.Header) {
			if v := got.Get("X-Request-Id"); v != "trace-42" {
				t.Errorf("X-Request-Id = %q, want the one the gateway kept", v)
			}
		}},
		{"x-api-key", false, []string{"Authorization", "", "X-Api-Key", "KEY"}, nil},
		{"spoofed identity and forwarding headers", false, []string{
			"X-Tollgate-Account", "acc_evil", "x-tollgate-scopes", "admin:write", "X-Tollgate-Key-Id", "key_evil",
			"X-Tollgate-Anything", "x", "X-Forwarded-For", "203.0.113.9", "X-Forwarded-Host", "evil.example", "Forwarded", "for=203.0.113.9",
		}, func(t *testing.T, h *harness, got http.Header) {
			if v := got.Values("X-Forwarded-For"); len(v) != 1 || v[0] != "127.0.0.1" {
				t.Errorf("X-Forwarded-For = %q, want only the peer's address", v)
			}
			if v := got.Get("X-Forwarded-Host"); strings.Contains(v, "evil") {
				t.Errorf("X-Forwarded-Host = %q, want the host the gateway was asked for", v)
			}
			if v := got.Get("Forwarded"); v != "" {
				t.Errorf("Forwarded = %q, want none", v)
			}
			if v := got.Get("X-Tollgate-Anything"); v != "" {
				t.Errorf("X-Tollgate-Anything = %q, want it removed", v)
			}
		}},
		{"trusted forwarding headers", true, []string{"X-Forwarded-For", "203.0.113.9", "X-Forwarded-Proto", "https", "X-Forwarded-Host", "api.example"},
			func(t *testing.T, h *harness, got http.Header) {
				if v := got.Get("X-Forwarded-For"); v != "203.0.113.9, 127.0.0.1" {
					t.Errorf("X-Forwarded-For = %q, want the client's list and the peer", v)
				}
				if v := got.Get("X-Forwarded-Proto") + " " + got.Get("X-Forwarded-Host"); v != "https api.example" {
					t.Errorf("X-Forwarded-Proto and -Host = %q, want the client's", v)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen := make(chan http.Header, 1)
			up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
				seen <- r.Header.Clone()
				io.WriteString(w, "ok")
			})
			h := newHarness(t, up, gateway.Options{TrustForwarded: tt.trust})
			headers := append([]string(nil), tt.headers...)
			for i := range headers {
				if headers[i] == "KEY" {
					headers[i] = h.key
				}
			}
			resp, body := h.do(t, "GET", "/v1/things?x=1", nil, headers...)
			if resp.StatusCode != 200 || string(body) != "ok" {
				t.Fatalf("got %d %s, want the upstream's 200", resp.StatusCode, body)
			}
			got := <-seen
			for k, vs := range got {
				for _, v := range vs {
					if auth.Mentions(v) {
						t.Errorf("upstream received the API key in %s: %q", k, v)
					}
				}
			}
			if v := got.Get("Authorization") + got.Get("X-Api-Key"); v != "" {
				t.Errorf("upstream received credentials %q", v)
			}
			want := map[string]string{
				gateway.HeaderAccount: h.accountID,
				gateway.HeaderKeyID:   h.keyID,
				gateway.HeaderScopes:  "leads:read,leads:write",
				gateway.HeaderKeyMode: "live",
				"X-Request-Id":        resp.Header.Get("X-Request-Id"),
			}
			for k, v := range want {
				if g := got.Values(k); len(g) != 1 || g[0] != v {
					t.Errorf("upstream %s = %q, want %q", k, g, v)
				}
			}
			if tt.check != nil {
				tt.check(t, h, got)
			}
		})
	}
}

// TestRefusedNeverReachUpstream: requests the chain refuses (no key, a
// bad key) get the chain's answer and never reach the upstream.
func TestRefusedNeverReachUpstream(t *testing.T) {
	called := make(chan struct{}, 10)
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) { called <- struct{}{} })
	h := newHarness(t, up, gateway.Options{})
	for _, tt := range []struct {
		name    string
		headers []string
	}{
		{"no key", []string{"Authorization", ""}},
		{"unknown key", []string{"Authorization", "", "Authorization", "Bearer tg_live_0000000000000000000000000000000000000000"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := h.do(t, "GET", "/v1/things", nil, tt.headers...)
			envelope(t, resp, body, http.StatusUnauthorized, apierror.Unauthorized)
		})
	}
	if len(called) != 0 {
		t.Errorf("the upstream was called %d times", len(called))
	}
}

// TestPath: the request's path and query are joined to the upstream's.
func TestPath(t *testing.T) {
	seen := make(chan string, 1)
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) { seen <- r.Host + " " + r.URL.RequestURI() })
	h := newHarness(t, up+"/base/?tenant=a", gateway.Options{})
	if resp, _ := h.do(t, "GET", "/v1/things/a%2Fb?x=1&y=2", nil); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	u, _ := url.Parse(up)
	if got, want := <-seen, u.Host+" /base/v1/things/a%2Fb?tenant=a&x=1&y=2"; got != want {
		t.Errorf("upstream got %q, want %q", got, want)
	}
}

// TestStreaming: 2xx bodies are streamed, not buffered: a large body
// arrives whole, and a flushed chunk reaches the client while the upstream
// is still writing.
func TestStreaming(t *testing.T) {
	t.Run("large body", func(t *testing.T) {
		const size = 32 << 20
		chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096)
		up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", fmt.Sprint(size))
			for n := 0; n < size; n += len(chunk) {
				w.Write(chunk)
			}
		})
		h := newHarness(t, up, gateway.Options{})
		resp, body := h.do(t, "GET", "/big", nil)
		want := sha256.New()
		for n := 0; n < size; n += len(chunk) {
			want.Write(chunk)
		}
		if resp.StatusCode != 200 || len(body) != size || sha256.Sum256(body) != [32]byte(want.Sum(nil)) {
			t.Errorf("got %d, %d bytes; want 200 and the upstream's %d bytes", resp.StatusCode, len(body), size)
		}
	})
	t.Run("flushed chunk before the upstream finishes", func(t *testing.T) {
		release := make(chan struct{})
		up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, "first\n")
			w.(http.Flusher).Flush()
			<-release // until the client has read the first chunk
			io.WriteString(w, "second\n")
		})
		h := newHarness(t, up, gateway.Options{})
		req, _ := http.NewRequestWithContext(t.Context(), "GET", h.url+"/stream", nil)
		req.Header.Set("Authorization", "Bearer "+h.key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			close(release)
			t.Fatal(err)
		}
		defer resp.Body.Close()
		line := make(chan string, 1)
		br := bufio.NewReader(resp.Body)
		go func() { s, _ := br.ReadString('\n'); line <- s }()
		select {
		case s := <-line:
			if s != "first\n" {
				t.Errorf("first chunk = %q", s)
			}
		case <-time.After(10 * time.Second): // a guard, not a timing claim
			t.Error("the first chunk did not arrive while the upstream was still writing")
		}
		close(release)
		rest, _ := io.ReadAll(br)
		if string(rest) != "second\n" {
			t.Errorf("rest = %q, want %q", rest, "second\n")
		}
	})
}

// TestBodyCut: once a 2xx body is streaming, the status is sent. A client
// that hangs up ends the request quietly (logged at INFO with that
// status); an upstream that dies or a request deadline that passes aborts
// the response, so that the client sees a broken one, never a short body
// that looks complete, and the log says so at ERROR.
func TestBodyCut(t *testing.T) {
	tests := []struct {
		name      string
		deadline  time.Duration
		upstream  func(w http.ResponseWriter, r *http.Request)
		hangUp    bool // the client closes after the first line
		wantError bool // the access line is at ERROR, the client's read fails
	}{
		{"client hangs up", 0, func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "first\n")
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		}, true, false},
		{"upstream dies", 0, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "1000")
			io.WriteString(w, "first\n")
			w.(http.Flusher).Flush()
			c, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				c.Close()
			}
		}, false, true},
		{"request deadline passes", 200 * time.Millisecond, func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "first\n")
			w.(http.Flusher).Flush()
			<-r.Context().Done() // the gateway gives up first
		}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var extra []middleware.Middleware
			if tt.deadline > 0 {
				extra = append(extra, middleware.Timeout(tt.deadline))
			}
			h := newHarness(t, upstream(t, tt.upstream), gateway.Options{}, extra...)
			req, _ := http.NewRequestWithContext(t.Context(), "GET", h.url+"/stream", nil)
			req.Header.Set("Authorization", "Bearer "+h.key)
			resp, err := http.DefaultClient.Do(req)
			switch {
			case err != nil && tt.wantError:
				// Cut before the buffered headers went out: no response at
				// all, which is broken too.
			case err != nil:
				t.Fatal(err)
			case tt.hangUp:
				if s, err := bufio.NewReader(resp.Body).ReadString('\n'); resp.StatusCode != 200 || s != "first\n" {
					t.Fatalf("got %d %q (%v), want 200 and the first line", resp.StatusCode, s, err)
				}
				resp.Body.Close()
			default:
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err == nil {
					t.Errorf("the client read a clean end of a cut body: %d %q", resp.StatusCode, b)
				}
			}
			<-h.served
			logs := h.logs.String()
			if got := strings.Contains(logs, `"level":"ERROR"`); got != tt.wantError {
				t.Errorf("logged at ERROR: %v, want %v:\n%s", got, tt.wantError, logs)
			}
			if !strings.Contains(logs, `"status":200`) {
				t.Errorf("access line lacks the status sent:\n%s", logs)
			}
		})
	}
}

// TestBodyCutCauseLogged: when the upstream dies mid-body, why the
// response was aborted is logged with the request id (the access line
// only says "response aborted"), and no line of the request lacks the id.
func TestBodyCutCauseLogged(t *testing.T) {
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
			c.Close()
		}
	})
	gwLogs := &testenv.Buffer{}
	h := newHarness(t, up, gateway.Options{Logger: slog.New(logjson.New(gwLogs, nil))})
	req, _ := http.NewRequestWithContext(t.Context(), "GET", h.url+"/stream", nil)
	req.Header.Set("Authorization", "Bearer "+h.key)
	req.Header.Set("X-Request-Id", "req-cut-1")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	<-h.served
	logs := gwLogs.String()
	var found bool
	for line := range strings.SplitSeq(strings.TrimSpace(logs), "\n") {
		if !strings.Contains(line, `"request_id":"req-cut-1"`) {
			t.Errorf("a line without the request id: %s", line)
			continue
		}
		found = found || strings.Contains(line, "unexpected EOF")
	}
	if !found {
		t.Errorf("the cause (unexpected EOF) is not logged with the request id:\n%s", logs)
	}
}

// TestProblemJSON: a client that asks for RFC 9457 gets it for the errors
// the gateway makes, its own and the replaced ones.
func TestProblemJSON(t *testing.T) {
	html := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(404)
		io.WriteString(w, "<h1>Not Found</h1>")
	})
	for _, tt := range []struct {
		name     string
		upstream string
		status   int
		code     apierror.Code
	}{
		{"refused", "http://" + closedAddr(t), 502, apierror.BadGateway},
		{"replaced HTML 404", html, 404, apierror.NotFound},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.upstream, gateway.Options{})
			resp, body := h.do(t, "GET", "/v1/things/7", nil, "Accept", "application/problem+json")
			if ct := resp.Header.Get("Content-Type"); resp.StatusCode != tt.status || ct != apierror.ContentTypeProblem {
				t.Fatalf("got %d %q, want %d %q: %s", resp.StatusCode, ct, tt.status, apierror.ContentTypeProblem, body)
			}
			var p map[string]any
			if err := json.Unmarshal(body, &p); err != nil {
				t.Fatal(err)
			}
			want := map[string]any{"status": float64(tt.status), "code": string(tt.code), "instance": "/v1/things/7",
				"request_id": resp.Header.Get("X-Request-Id"),
				"type":       apierror.TypeBase + strings.ToLower(string(tt.code))}
			for k, v := range want {
				if p[k] != v {
					t.Errorf("%s = %v, want %v", k, p[k], v)
				}
			}
		})
	}
}

// TestClientGone: a client that hangs up while the upstream thinks is
// logged and counted as 499, not as a 5xx.
func TestClientGone(t *testing.T) {
	arrived := make(chan struct{})
	release := make(chan struct{})
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) { close(arrived); <-release })
	t.Cleanup(func() { close(release) })
	h := newHarness(t, up, gateway.Options{})
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		select {
		case <-arrived:
			cancel()
		case <-ctx.Done(): // the upstream was never reached: ends with the test
		}
	}()
	req := httptest.NewRequestWithContext(ctx, "GET", "/v1/things", nil)
	req.Header.Set("Authorization", "Bearer "+h.key)
	h.handler.ServeHTTP(httptest.NewRecorder(), req)
	want := `
# HELP tollgate_http_requests_total HTTP requests by route pattern, status and error code.
# TYPE tollgate_http_requests_total counter
tollgate_http_requests_total{code="SERVICE_UNAVAILABLE",route="unmatched",status="499"} 1
`
	if err := testutil.GatherAndCompare(h.reg, strings.NewReader(want), "tollgate_http_requests_total"); err != nil {
		t.Error(err)
	}
	if strings.Contains(h.logs.String(), `"level":"ERROR"`) {
		t.Errorf("a client that hung up was logged at ERROR:\n%s", h.logs.String())
	}
}

// TestRateLimitHeaders: the gateway's rate-limit headers and the
// upstream's describe the most restrictive of the two policies, one value
// each, from one side.
func TestRateLimitHeaders(t *testing.T) {
	reset := fmt.Sprint(time.Now().Add(time.Hour).Unix() + 3600)
	tests := []struct {
		name      string
		upHeaders http.Header
		status    int
		want      string // X-RateLimit-Limit: "100" is the gateway's, "5" the upstream's
	}{
		{"upstream sends none", nil, 200, "100"},
		{"upstream has more left", http.Header{"X-Ratelimit-Limit": {"5000"}, "X-Ratelimit-Remaining": {"4999"}, "X-Ratelimit-Reset": {reset}}, 200, "100"},
		{"upstream has less left", http.Header{"X-Ratelimit-Limit": {"5"}, "X-Ratelimit-Remaining": {"1"}, "X-Ratelimit-Reset": {reset}}, 200, "5"},
		{"upstream's that do not parse", http.Header{"X-Ratelimit-Limit": {"5"}, "X-Ratelimit-Remaining": {"lots"}}, 200, "100"},
		{"upstream's 429, replaced", http.Header{"X-Ratelimit-Limit": {"5"}, "X-Ratelimit-Remaining": {"0"}, "X-Ratelimit-Reset": {reset}, "Retry-After": {"30"}}, 429, "5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tt.upHeaders {
					w.Header()[k] = v
				}
				w.WriteHeader(tt.status)
			})
			h := newHarness(t, up, gateway.Options{}, middleware.RateLimit(middleware.RateLimitConfig{
				Store:   ratelimit.NewMemoryStore(ratelimit.MemoryOptions{}),
				Default: ratelimit.Policy{Limit: 100, Window: time.Minute},
			}))
			resp, _ := h.do(t, "GET", "/v1/things", nil)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			for _, k := range []string{"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} {
				if v := resp.Header.Values(k); len(v) != 1 {
					t.Errorf("%s = %q, want one value", k, v)
				}
			}
			if got := resp.Header.Get("X-RateLimit-Limit"); got != tt.want {
				t.Errorf("X-RateLimit-Limit = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestBodyLimit: a chunked request body over BodyLimit's limit, found out
// while it is sent to the upstream, is 413 PAYLOAD_TOO_LARGE, not 502.
func TestBodyLimit(t *testing.T) {
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "ok")
	})
	h := newHarness(t, up, gateway.Options{})
	// No length: the body is sent chunked and only its reading fails.
	body := io.MultiReader(strings.NewReader(strings.Repeat("x", 2<<20)))
	resp, b := h.do(t, "POST", "/upload", body)
	envelope(t, resp, b, http.StatusRequestEntityTooLarge, apierror.PayloadTooLarge)
}

func TestParseUpstream(t *testing.T) {
	for _, tt := range []struct {
		raw string
		ok  bool
	}{
		{"http://127.0.0.1:9000", true},
		{"https://api.internal/base/", true},
		{"HTTP://Example.com", true},
		{"http://h/?tenant=a", true},
		{"ftp://h", false},
		{"127.0.0.1:9000", false},
		{"/just/a/path", false},
		{"http://", false},
		{"http://:8080", false},
		{"http:opaque", false},
		{"http://user:secret@h", false},
		{"http://h/#frag", false},
		{"http://h:port", false},
		{"http://h:0", false},
		{"http://h:65536", false},
		{"https://[::1]:70000", false},
		{"http://h:65535", true},
		{"http://h:0/?token=secret", false},
		{"ftp://h/?secret", false},
		{"", false},
	} {
		u, err := gateway.ParseUpstream(tt.raw)
		if (err == nil) != tt.ok {
			t.Errorf("ParseUpstream(%q) = %v, %v; want ok %v", tt.raw, u, err, tt.ok)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("ParseUpstream(%q): error shows the password: %v", tt.raw, err)
		}
	}
	u, err := gateway.ParseUpstream("http://h/base?tenant=a&token=secret&secret")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := gateway.Redacted(u), "http://h/base?tenant=xxxxx&token=xxxxx&xxxxx"; got != want {
		t.Errorf("Redacted = %q, want %q", got, want)
	}
	if _, err := gateway.New(&url.URL{Scheme: "http"}, gateway.Options{}); err == nil {
		t.Error("New accepted an upstream without a host")
	}
	if _, err := gateway.New(&url.URL{Scheme: "http", Host: "h"}, gateway.Options{Timeout: -1}); err == nil {
		t.Error("New accepted a negative timeout")
	}
}

// TestLocation: a redirect or a 201 pointing at the upstream reaches the
// client pointing at the gateway (see the internal TestRelocate for the
// rules); an error's Location is dropped with the rest of its headers.
func TestLocation(t *testing.T) {
	var up string
	up = upstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", up+"/base/next?page=2")
		switch r.URL.Path {
		case "/base/moved":
			w.WriteHeader(http.StatusFound)
		case "/base/created":
			w.WriteHeader(http.StatusCreated)
		default:
			w.WriteHeader(http.StatusConflict)
		}
	})
	h := newHarness(t, up+"/base", gateway.Options{})
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tt := range []struct {
		path   string
		status int
		want   string
	}{
		{"/moved", http.StatusFound, "/next?page=2"},
		{"/created", http.StatusCreated, "/next?page=2"},
		{"/conflict", http.StatusConflict, ""},
	} {
		t.Run(tt.path, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), "GET", h.url+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+h.key)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status || resp.Header.Get("Location") != tt.want {
				t.Errorf("%d Location %q, want %d %q", resp.StatusCode, resp.Header.Get("Location"), tt.status, tt.want)
			}
		})
	}
}

// TestReplaced429KeepsUpstreamLimit: a replaced upstream 429 names the
// upstream's limit and window in its details even when the gateway's own
// rate-limit headers are the ones kept (they have fewer requests left),
// which drops the upstream's from the answer.
func TestReplaced429KeepsUpstreamLimit(t *testing.T) {
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/plain")
		h.Set("Retry-After", "3")
		h.Set("X-RateLimit-Limit", "1000")
		h.Set("X-RateLimit-Remaining", "999")
		h.Set("X-RateLimit-Reset", fmt.Sprint(time.Now().Unix()+5))
		h.Set("RateLimit-Policy", `"p";q=1000;w=60`)
		w.WriteHeader(http.StatusTooManyRequests)
		io.WriteString(w, "slow down")
	})
	h := newHarness(t, up, gateway.Options{}, middleware.RateLimit(middleware.RateLimitConfig{
		Store:   ratelimit.NewMemoryStore(ratelimit.MemoryOptions{}),
		Default: ratelimit.Policy{Limit: 100, Window: time.Minute},
	}))
	resp, body := h.do(t, "GET", "/v1/things", nil)
	d := envelope(t, resp, body, http.StatusTooManyRequests, apierror.RateLimited)
	if d["limit"] != 1000.0 || d["window"] != "1m" || d["retry_after"] != 3.0 || d["policy"] != "upstream" {
		t.Errorf("details %v; want the upstream's limit 1000, window 1m, retry_after 3", d)
	}
	if got := resp.Header.Get("X-RateLimit-Limit"); got != "100" {
		t.Errorf("X-RateLimit-Limit = %q, want the gateway's 100 (fewer left)", got)
	}
}
