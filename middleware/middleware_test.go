package middleware_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tollgate-dev/tollgate/apierror"
	"github.com/tollgate-dev/tollgate/arrival"
	"github.com/tollgate-dev/tollgate/auth"
	"github.com/tollgate-dev/tollgate/internal/testenv"
	"github.com/tollgate-dev/tollgate/logjson"
	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/ratelimit"
)

// logBuffer is a concurrency-safe log destination for tests.
type logBuffer struct {
	testenv.Buffer
}

func (b *logBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %v: %q", err, line)
		}
		out = append(out, m)
	}
	return out
}

// stack builds the core chain around a router with a few routes.
func stack(t *testing.T, logs *logBuffer) http.Handler {
	t.Helper()
	l := slog.New(logjson.New(logs, nil))
	rt := middleware.NewRouter()
	rt.HandleFunc("GET /ok", func(w http.ResponseWriter, r *http.Request) {
		middleware.SetKeyID(r.Context(), "key_1")
		w.Write([]byte("ok"))
	})
	rt.HandleFunc("POST /things/{id}", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Name string `json:"name"`
		}
		if err := middleware.DecodeJSON(r, &body, middleware.DecodeOptions{Required: []string{"name"}}); err != nil {
			apierror.Write(w, r, err)
			return
		}
		w.WriteHeader(201)
	})
	rt.HandleFunc("GET /panic", func(w http.ResponseWriter, r *http.Request) {
		panic("boom: secret value 42")
	})
	rt.HandleFunc("GET /panic-late", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("partial"))
		panic("late boom")
	})
	rt.HandleFunc("GET /abort", func(w http.ResponseWriter, r *http.Request) {
		panic(http.ErrAbortHandler)
	})
	return middleware.Chain(
		middleware.RequestID(nil),
		middleware.Logger(l, nil),
		middleware.Recover(l),
		middleware.BodyLimit(64),
	)(rt)
}

func do(h http.Handler, method, target string, body string, hdr ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	if body == "" {
		r = httptest.NewRequest(method, target, nil)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

var ulidID = regexp.MustCompile(`^req_[0-9A-HJKMNP-TV-Z]{26}$`)

func TestRequestID(t *testing.T) {
	tests := []struct {
		name    string
		inbound string
		keep    bool
	}{
		{"none", "", false},
		{"valid kept", "abc-123_X.y", true},
		{"128 chars kept", strings.Repeat("a", 128), true},
		{"129 chars replaced", strings.Repeat("a", 129), false},
		{"space replaced", "a b", false},
		{"slash replaced", "a/b", false},
		{"unicode replaced", "réq", false},
		{"quote replaced", `a"b`, false},
	}
	h := stack(t, &logBuffer{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hdr []string
			if tt.inbound != "" {
				hdr = []string{"X-Request-Id", tt.inbound}
			}
			w := do(h, "GET", "/nope", "", hdr...)
			got := w.Header().Get("X-Request-Id")
			if tt.keep && got != tt.inbound {
				t.Errorf("X-Request-Id = %q, want %q kept", got, tt.inbound)
			}
			if !tt.keep && !ulidID.MatchString(got) {
				t.Errorf("X-Request-Id = %q, want a new req_<ulid>", got)
			}
			if e := apierror.Decode(w.Result()); e.RequestID() != got {
				t.Errorf("details.request_id = %q, header %q", e.RequestID(), got)
			}
		})
	}
}

func TestRouter(t *testing.T) {
	h := stack(t, &logBuffer{})
	tests := []struct {
		name, method, path string
		status             int
		code               apierror.Code
		allow              string
	}{
		{"unknown path", "GET", "/nope", 404, apierror.RouteNotFound, ""},
		{"wrong method", "DELETE", "/ok", 405, apierror.MethodNotAllowed, "GET, HEAD"},
		{"wrong method on pattern", "GET", "/things/1", 405, apierror.MethodNotAllowed, "POST"},
		{"head on get route", "HEAD", "/ok", 200, "", ""},
		{"root", "GET", "/", 404, apierror.RouteNotFound, ""},
		// Authority form: no path at all, which ServeMux answers with
		// its plain-text 404.
		{"connect to an authority", "CONNECT", "127.0.0.1:8080", 404, apierror.RouteNotFound, ""},
		{"connect to a path", "CONNECT", "/ok", 405, apierror.MethodNotAllowed, "GET, HEAD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := do(h, tt.method, tt.path, "")
			if w.Code != tt.status {
				t.Fatalf("%s %s = %d, want %d; body %s", tt.method, tt.path, w.Code, tt.status, w.Body)
			}
			if tt.code == "" {
				return
			}
			if got := w.Header().Get("Content-Type"); got != apierror.ContentTypeJSON {
				t.Errorf("Content-Type = %q", got)
			}
			if got := apierror.Decode(w.Result()).Code; got != tt.code {
				t.Errorf("code = %s, want %s", got, tt.code)
			}
			if got := w.Header().Get("Allow"); got != tt.allow {
				t.Errorf("Allow = %q, want %q", got, tt.allow)
			}
		})
	}
}

func TestRecover(t *testing.T) {
	logs := &logBuffer{}
	h := stack(t, logs)
	w := do(h, "GET", "/panic", "")
	if w.Code != 500 {
		t.Fatalf("status = %d, want 500", w.Code)
	}
	e := apierror.Decode(w.Result())
	if e.Code != apierror.InternalError || e.Foreign {
		t.Fatalf("body = %s", w.Body)
	}
	for _, leak := range []string{"boom", "secret", "42", ".go", "goroutine", "main.", "runtime", "string"} {
		if strings.Contains(w.Body.String(), leak) {
			t.Errorf("body leaks %q: %s", leak, w.Body)
		}
	}
	id := w.Header().Get("X-Request-Id")
	var found, access bool
	for _, line := range logs.lines(t) {
		if line["request_id"] != id {
			continue
		}
		if line["msg"] == "panic" {
			found = strings.Contains(line["panic"].(string), "boom: secret value 42") && strings.Contains(line["stack"].(string), "middleware_test.go")
		}
		if line["msg"] == "request" {
			access = line["status"] == 500.0 && line["code"] == "INTERNAL_ERROR" && line["level"] == "ERROR" && strings.Contains(line["error"].(string), "boom")
		}
	}
	if !found {
		t.Errorf("no panic log line with request_id %s, value and stack:\n%s", id, logs)
	}
	if !access {
		t.Errorf("no ERROR access line with status 500 for %s:\n%s", id, logs)
	}
}

func TestRecoverAbort(t *testing.T) {
	for _, tt := range []struct {
		path   string
		status float64 // in the access line: what was sent before the abort
	}{
		{"/abort", 0},
		{"/panic-late", 200},
	} {
		t.Run(tt.path, func(t *testing.T) {
			logs := &logBuffer{}
			h := stack(t, logs)
			defer func() {
				if v := recover(); v != http.ErrAbortHandler {
					t.Errorf("recovered %v, want http.ErrAbortHandler", v)
				}
				// The access line says the response was aborted, not 200.
				var access []map[string]any
				for _, line := range logs.lines(t) {
					if line["msg"] == "request" {
						access = append(access, line)
					}
				}
				if len(access) != 1 || access[0]["status"] != tt.status || access[0]["level"] != "ERROR" || access[0]["error"] != "response aborted" {
					t.Errorf("access lines %v, want one ERROR line, status %v, error \"response aborted\"", access, tt.status)
				}
			}()
			do(h, "GET", tt.path, "")
			t.Errorf("no panic reached the server")
		})
	}
}

// TestLogsHoldNoKey: an API key sent by mistake in the path or as the
// request id never reaches a log line, nor the X-Request-Id header.
func TestLogsHoldNoKey(t *testing.T) {
	key, err := auth.NewKey(true)
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	h := stack(t, logs)
	for _, tt := range []struct {
		name, path string
		hdr        []string
	}{
		{"in the path", "/v1/keys/" + key, nil},
		{"twice in the path", "/x/" + key + "/y/" + strings.Replace(key, "live", "test", 1), nil},
		{"as the request id", "/ok", []string{"X-Request-Id", key}},
		{"inside the request id", "/ok", []string{"X-Request-Id", "a." + key}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := do(h, "GET", tt.path, "", tt.hdr...)
			if id := w.Header().Get("X-Request-Id"); strings.Contains(id, "tg_") || !strings.HasPrefix(id, "req_") {
				t.Errorf("X-Request-Id = %q, want a new req_ id", id)
			}
		})
	}
	secret := key[len(auth.PrefixLive):]
	for _, line := range logs.lines(t) {
		b, _ := json.Marshal(line)
		if strings.Contains(string(b), secret) {
			t.Errorf("a log line holds the key: %s", b)
		}
	}
	if !strings.Contains(logs.String(), `"path":"/v1/keys/tg_live_[REDACTED]"`) {
		t.Errorf("no redacted path in the logs:\n%s", logs)
	}
}

func TestLoggerFields(t *testing.T) {
	fast := &logBuffer{}
	slow := &logBuffer{}
	for _, tc := range []struct {
		name string
		buf  *logBuffer
		l    *slog.Logger
	}{
		{"fast", fast, slog.New(logjson.New(fast, nil))},
		{"slog", slow, slog.New(slog.NewJSONHandler(slow, nil))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
			now := func() time.Time { clock = clock.Add(1500 * time.Microsecond); return clock }
			rt := middleware.NewRouter()
			rt.HandleFunc("GET /ok/{id}", func(w http.ResponseWriter, r *http.Request) {
				middleware.SetKeyID(r.Context(), "key_1")
				w.Write([]byte("hello"))
			})
			h := middleware.Chain(middleware.RequestID(now), middleware.Logger(tc.l, now))(rt)
			do(h, "GET", "/ok/7", "", "X-Request-Id", "r1")
			do(h, "GET", "/missing", "", "X-Request-Id", "r2")
			lines := tc.buf.lines(t)
			if len(lines) != 2 {
				t.Fatalf("got %d lines, want 2", len(lines))
			}
			for _, l := range lines {
				delete(l, "time")
			}
			want := []map[string]any{
				{"level": "INFO", "msg": "request", "request_id": "r1", "method": "GET", "route": "GET /ok/{id}", "path": "/ok/7",
					"status": 200.0, "code": "", "bytes": 5.0, "duration_ms": 1.5, "key_id": "key_1"},
				{"level": "INFO", "msg": "request", "request_id": "r2", "method": "GET", "route": "", "path": "/missing",
					"status": 404.0, "code": "ROUTE_NOT_FOUND", "bytes": float64(len(`{"error":{"code":"ROUTE_NOT_FOUND","message":"No route matches this path.","details":{"path":"/missing","request_id":"r2"}}}`) + 1), "duration_ms": 1.5},
			}
			if diff := cmp.Diff(want, lines); diff != "" {
				t.Errorf("access lines (-want +got):\n%s", diff)
			}
		})
	}
}

// TestClientClosed: a 5xx caused by the client going away (its context
// cancelled) is logged at INFO and counted with status 499, nginx's
// "client closed request": it reached no one and is not the server
// failing. A 5xx with the client still there stays an ERROR 5xx.
func TestClientClosed(t *testing.T) {
	buf := &logBuffer{}
	reg := prometheus.NewRegistry()
	rt := middleware.NewRouter()
	rt.HandleFunc("GET /store", func(w http.ResponseWriter, r *http.Request) {
		apierror.Write(w, r, fmt.Errorf("store: %w", context.Canceled)) // what a store call returns
	})
	h := middleware.Chain(middleware.RequestID(nil), middleware.Metrics(reg, nil), middleware.Logger(slog.New(logjson.New(buf, nil)), nil))(rt)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the client hung up
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequestWithContext(ctx, "GET", "/store", nil))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/store", nil)) // still there
	lines := buf.lines(t)
	if len(lines) != 2 || lines[0]["level"] != "INFO" || lines[0]["status"] != 499.0 || lines[1]["level"] != "ERROR" || lines[1]["status"] != 503.0 {
		t.Errorf("access lines %v; want INFO 499 for the client gone, ERROR 503 otherwise", lines)
	}
	want := `
# HELP tollgate_http_requests_total HTTP requests by route pattern, status and error code.
# TYPE tollgate_http_requests_total counter
tollgate_http_requests_total{code="SERVICE_UNAVAILABLE",route="GET /store",status="499"} 1
tollgate_http_requests_total{code="SERVICE_UNAVAILABLE",route="GET /store",status="503"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "tollgate_http_requests_total"); err != nil {
		t.Error(err)
	}
}

func TestBodyLimit(t *testing.T) {
	h := stack(t, &logBuffer{})
	big := `{"name":"` + strings.Repeat("x", 100) + `"}`
	w := do(h, "POST", "/things/1", big, "Content-Type", "application/json")
	if w.Code != 413 || apierror.Decode(w.Result()).Code != apierror.PayloadTooLarge {
		t.Fatalf("status %d body %s", w.Code, w.Body)
	}
	// A body without Content-Length is cut off while it is read.
	r := httptest.NewRequest("POST", "/things/1", strings.NewReader(big))
	r.ContentLength = -1
	r.Header.Set("Content-Type", "application/json")
	w = httptest.NewRecorder()
	h.ServeHTTP(w, r)
	e := apierror.Decode(w.Result())
	if w.Code != 413 || e.Code != apierror.PayloadTooLarge || e.Details["limit_bytes"] != 64.0 {
		t.Fatalf("streamed: status %d body %s", w.Code, w.Body)
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	rt := middleware.NewRouter()
	rt.HandleFunc("GET /ok", func(w http.ResponseWriter, r *http.Request) {})
	rt.HandleFunc("GET /abort", func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) })
	h := middleware.Chain(middleware.RequestID(nil), middleware.Metrics(reg, nil))(rt)
	do(h, "GET", "/ok", "")
	do(h, "GET", "/ok", "")
	do(h, "GET", "/nope", "")
	func() {
		defer func() {
			if v := recover(); v != http.ErrAbortHandler {
				t.Errorf("recovered %v, want the abort passed on", v)
			}
		}()
		do(h, "GET", "/abort", "")
	}()
	// An aborted response is counted with the status sent: none, "0".
	want := `
# HELP tollgate_http_requests_total HTTP requests by route pattern, status and error code.
# TYPE tollgate_http_requests_total counter
tollgate_http_requests_total{code="",route="GET /abort",status="0"} 1
tollgate_http_requests_total{code="",route="GET /ok",status="200"} 2
tollgate_http_requests_total{code="ROUTE_NOT_FOUND",route="unmatched",status="404"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "tollgate_http_requests_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(reg, "tollgate_http_request_duration_seconds"); n != 3 {
		t.Errorf("latency series = %d, want 3", n)
	}
}

func TestDecodeJSON(t *testing.T) {
	type inner struct {
		N int `json:"n"`
	}
	type body struct {
		Name  string         `json:"name"`
		Count int            `json:"count"`
		Tags  []string       `json:"tags"`
		In    *inner         `json:"in"`
		Meta  map[string]any `json:"meta"`
	}
	tests := []struct {
		name   string
		ctype  string
		body   string
		code   apierror.Code
		reason string
		field  string
	}{
		{"ok", "application/json", `{"name":"a","count":2}`, "", "", ""},
		{"ok with charset", "application/json; charset=utf-8", `{"name":"a"}`, "", "", ""},
		{"ok vendor json", "application/vnd.api+json", `{"name":"a"}`, "", "", ""},
		{"no content type", "", `{"name":"a"}`, apierror.UnsupportedMediaType, "", ""},
		{"form", "application/x-www-form-urlencoded", `name=a`, apierror.UnsupportedMediaType, "", ""},
		{"bad content type", "application/", `{}`, apierror.UnsupportedMediaType, "", ""},
		{"empty", "application/json", ``, apierror.InvalidRequest, "empty body", ""},
		{"syntax", "application/json", `{"name":}`, apierror.InvalidRequest, "syntax error", ""},
		{"truncated", "application/json", `{"name":"a"`, apierror.InvalidRequest, "syntax error", ""},
		{"wrong type", "application/json", `{"name":"a","count":"2"}`, apierror.InvalidRequest, "wrong type", "count"},
		{"wrong nested type", "application/json", `{"name":"a","in":{"n":true}}`, apierror.InvalidRequest, "wrong type", "in.n"},
		{"unknown field", "application/json", `{"name":"a","nope":1}`, apierror.InvalidRequest, "unknown field", "nope"},
		{"trailing", "application/json", `{"name":"a"} {}`, apierror.InvalidRequest, "trailing data", ""},
		{"invalid utf8", "application/json", "{\"name\":\"\xff\"}", apierror.InvalidRequest, "invalid UTF-8", ""},
		{"duplicate", "application/json", `{"name":"a","name":"b"}`, apierror.InvalidRequest, "duplicate field", "name"},
		{"too deep", "application/json", `{"name":"a","meta":` + strings.Repeat(`{"a":`, 40) + `1` + strings.Repeat(`}`, 40) + `}`, apierror.InvalidRequest, "too deep", ""},
		{"brackets in strings do not nest", "application/json", `{"name":"` + strings.Repeat(`[{`, 40) + `"}`, "", "", ""},
		{"array body", "application/json", `[1]`, apierror.InvalidRequest, "not an object", ""},
		{"null body", "application/json", `null`, apierror.InvalidRequest, "not an object", ""},
		{"missing required", "application/json", `{"count":1}`, apierror.MissingField, "", "name"},
		{"null required", "application/json", `{"name":null}`, apierror.MissingField, "", "name"},
		// Unreadable before missing: docs/api.md's order of the checks.
		{"unknown field and missing required", "application/json", `{"nmae":"a"}`, apierror.InvalidRequest, "unknown field", "nmae"},
		{"wrong type and missing required", "application/json", `{"count":"2"}`, apierror.InvalidRequest, "wrong type", "count"},
		{"NUL and missing required", "application/json", `{"tags":["\u0000"]}`, apierror.InvalidRequest, "NUL character", "tags.0"},
		{"NUL in a value", "application/json", `{"name":"a\u0000b"}`, apierror.InvalidRequest, "NUL character", "name"},
		{"NUL deep in a value", "application/json", `{"name":"a","meta":{"k":["x","\u0000"]}}`, apierror.InvalidRequest, "NUL character", "meta.k.1"},
		{"NUL in a name", "application/json", `{"name":"a","meta":{"k\u0000":1}}`, apierror.InvalidRequest, "NUL character", "meta.k\x00"},
		{"escaped backslash before u0000", "application/json", `{"name":"a\\u0000"}`, "", "", ""},
		{"other escapes", "application/json", `{"name":"a\u0001\t"}`, "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/", strings.NewReader(tt.body))
			if tt.ctype != "" {
				r.Header.Set("Content-Type", tt.ctype)
			}
			var v body
			err := middleware.DecodeJSON(r, &v, middleware.DecodeOptions{Required: []string{"name"}})
			if tt.code == "" {
				if err != nil {
					t.Fatalf("DecodeJSON(%s) = %v, want nil", tt.body, err)
				}
				return
			}
			var e *apierror.Error
			if !errors.As(err, &e) {
				t.Fatalf("DecodeJSON(%s) = %v, want *apierror.Error", tt.body, err)
			}
			if e.Code != tt.code {
				t.Errorf("code = %s, want %s (%v)", e.Code, tt.code, err)
			}
			if tt.reason != "" && e.Details["reason"] != tt.reason {
				t.Errorf("reason = %v, want %q (%v)", e.Details["reason"], tt.reason, err)
			}
			if tt.field != "" && e.Details["field"] != tt.field {
				t.Errorf("field = %v, want %q (%v)", e.Details["field"], tt.field, err)
			}
			if tt.code == apierror.MissingField && e.Message != "Missing required field: name" {
				t.Errorf("message = %q", e.Message)
			}
			if tt.reason == "syntax error" {
				if _, ok := e.Details["offset"]; !ok {
					t.Errorf("syntax error without offset: %v", e.Details)
				}
			}
		})
	}
}

func TestCleanPath(t *testing.T) {
	tests := []struct {
		path string
		want bool
	}{
		{"/", true}, {"/a", true}, {"/a/", true}, {"/a/b.c", true}, {"/a/..b", true}, {"/.well-known/x", true},
		{"", false}, {"a", false}, {"//", false}, {"/a//b", false}, {"/./a", false}, {"/a/.", false},
		{"/a/..", false}, {"/a/../b", false}, {"/..", false},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			if got := middleware.CleanPath(tt.path); got != tt.want {
				t.Errorf("cleanPath(%q) = %v, want %v", tt.path, got, tt.want)
			}
		})
	}
	h := stack(t, &logBuffer{})
	w := do(h, "GET", "/a/../ok", "")
	if w.Code != 404 || apierror.Decode(w.Result()).Code != apierror.RouteNotFound {
		t.Errorf("unclean path: status %d body %s", w.Code, w.Body)
	}
}

// TestArrivalTime: while Auth calls the verifier and RateLimit the store,
// arrival.From serves the clock reading taken when the request entered the
// chain, when that clock is the system's; the handler, which may run long
// after, does not get it.
func TestArrivalTime(t *testing.T) {
	fixed := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		now    func() time.Time
		wantOK bool
	}{
		{"system clock", nil, true},
		{"injected clock", func() time.Time { return fixed }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spy, storeSpy := &arrivalSpy{}, &arrivalStoreSpy{}
			var start time.Time
			var startOK, inHandler bool
			rl := middleware.RateLimit(middleware.RateLimitConfig{Store: storeSpy, Default: ratelimit.Policy{Limit: 1, Window: time.Second}})
			h := middleware.Chain(middleware.RequestID(tt.now), middleware.Auth(spy, nil), rl)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				start, startOK = middleware.StartTime(r.Context())
				_, inHandler = arrival.From(r.Context())
			}))
			r := httptest.NewRequest("GET", "/", nil)
			r.Header.Set("Authorization", "Bearer good")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != http.StatusOK || !startOK {
				t.Fatalf("status %d, StartTime ok %v", w.Code, startOK)
			}
			if spy.ok != tt.wantOK || (spy.ok && spy.got != start) {
				t.Errorf("arrival.From() in Verify = %v, %v; want StartTime %v, %v", spy.got, spy.ok, start, tt.wantOK)
			}
			if storeSpy.ok != tt.wantOK || (storeSpy.ok && storeSpy.got != start) {
				t.Errorf("arrival.From() in Take = %v, %v; want StartTime %v, %v", storeSpy.got, storeSpy.ok, start, tt.wantOK)
			}
			if inHandler {
				t.Error("arrival.From() in the handler = ok; want the time served only during Verify")
			}
		})
	}
}

// arrivalSpy is a KeyVerifier that records what arrival.From gives it.
type arrivalSpy struct {
	got time.Time
	ok  bool
}

func (s *arrivalSpy) Verify(ctx context.Context, secret string) (auth.Principal, error) {
	s.got, s.ok = arrival.From(ctx)
	return auth.Principal{AccountID: "acct", KeyID: "key_spy"}, nil
}

// arrivalStoreSpy is a ratelimit.Store that admits everything and records
// what arrival.From gives it.
type arrivalStoreSpy struct {
	got time.Time
	ok  bool
}

func (s *arrivalStoreSpy) Take(ctx context.Context, _ string, p []ratelimit.Policy, _ int) (ratelimit.Result, error) {
	s.got, s.ok = arrival.From(ctx)
	return ratelimit.Result{Allowed: true, Limit: p[0].Limit, Remaining: 1, Window: p[0].Window}, nil
}

// TestSwitchingProtocols: a 101 sent with WriteHeader is the response's
// final status (net/http sends nothing after it): logged as 101, and a
// panic after it aborts the response instead of writing a 500 over it.
func TestSwitchingProtocols(t *testing.T) {
	logs := &logBuffer{}
	l := slog.New(logjson.New(logs, nil))
	rt := middleware.NewRouter()
	rt.HandleFunc("GET /switch", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusSwitchingProtocols)
	})
	rt.HandleFunc("GET /switch-panic", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusSwitchingProtocols)
		panic("after the switch")
	})
	for _, tt := range []struct {
		path    string
		level   string
		aborted bool // the connection is cut, perhaps before the 101 left
	}{
		{"/switch", "INFO", false},
		{"/switch-panic", "ERROR", true},
	} {
		t.Run(tt.path, func(t *testing.T) {
			srv := httptest.NewUnstartedServer(middleware.Chain(middleware.RequestID(nil), middleware.Logger(l, nil), middleware.Recover(l))(rt))
			serverLog := &logBuffer{}
			srv.Config.ErrorLog = log.New(serverLog, "", 0)
			srv.Start()
			defer srv.Close()
			res, err := srv.Client().Get(srv.URL + tt.path)
			switch {
			case err == nil:
				res.Body.Close()
				if res.StatusCode != http.StatusSwitchingProtocols {
					t.Fatalf("status %d, want 101", res.StatusCode)
				}
			case !tt.aborted:
				t.Fatal(err)
			}
			srv.Close() // waits for the handler's end, and its access line
			var access map[string]any
			for _, line := range logs.lines(t) {
				if line["msg"] == "request" && line["path"] == tt.path {
					access = line
				}
			}
			if access == nil || access["status"] != 101.0 || access["level"] != tt.level {
				t.Errorf("access line %v, want status 101 at %s", access, tt.level)
			}
			if s := serverLog.String(); strings.Contains(s, "superfluous") {
				t.Errorf("a second WriteHeader after the 101:\n%s", s)
			}
		})
	}
}

// TestLoggerBytesOnWire: the access line's bytes are the body bytes sent.
// net/http discards a HEAD response's body (and a 304's) whatever the
// handler writes.
func TestLoggerBytesOnWire(t *testing.T) {
	rt := middleware.NewRouter()
	rt.HandleFunc("GET /hello", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("hello")) })
	rt.HandleFunc("GET /not-modified", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotModified)
		w.Write([]byte("hello"))
	})
	for _, tt := range []struct {
		method, path string
		status       float64
		bytes        float64
	}{
		{"GET", "/hello", 200, 5},
		{"HEAD", "/hello", 200, 0},
		{"GET", "/not-modified", 304, 0},
		{"HEAD", "/nope", 404, 0},
	} {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			logs := &logBuffer{}
			srv := httptest.NewServer(middleware.Chain(middleware.RequestID(nil), middleware.Logger(slog.New(logjson.New(logs, nil)), nil))(rt))
			defer srv.Close()
			req, _ := http.NewRequest(tt.method, srv.URL+tt.path, nil)
			res, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			srv.Close() // waits for the access line
			lines := logs.lines(t)
			if len(lines) != 1 || lines[0]["status"] != tt.status || lines[0]["bytes"] != tt.bytes {
				t.Errorf("access lines %v, want one with status %v, bytes %v", lines, tt.status, tt.bytes)
			}
		})
	}
}
