package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tollgate-dev/tollgate/apierror"
	"github.com/tollgate-dev/tollgate/internal/server"
	"github.com/tollgate-dev/tollgate/internal/testenv"
	"github.com/tollgate-dev/tollgate/logjson"
	"github.com/tollgate-dev/tollgate/middleware"
)

// panicDetector discards log lines, noting whether one reported a panic.
type panicDetector struct{ panicked atomic.Bool }

func (p *panicDetector) Write(b []byte) (int, error) {
	if bytes.Contains(b, []byte(`"msg":"panic"`)) {
		p.panicked.Store(true)
	}
	return len(b), nil
}

type downStore struct{}

func (downStore) Ping(context.Context) error {
	return fmt.Errorf("dial tcp 127.0.0.1:5432: connection refused")
}

// newServer returns a server with a few demonstration routes: one that
// decodes JSON strictly, one that panics.
func newServer(t testing.TB, logs io.Writer, checks map[string]server.Checker) *server.Server {
	t.Helper()
	s := server.New(server.Config{Logger: slog.New(logjson.New(logs, &logjson.Options{Level: slog.LevelDebug})), BodyLimit: 4096, Checks: checks})
	s.Handle("POST /v1/echo/{id}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Name  string         `json:"name"`
			Count int            `json:"count"`
			Meta  map[string]any `json:"meta"`
		}
		if err := middleware.DecodeJSON(r, &body, middleware.DecodeOptions{Required: []string{"name"}}); err != nil {
			apierror.Write(w, r, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"id": r.PathValue("id"), "name": body.Name})
	}))
	s.Handle("GET /v1/panic", http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic("kaboom: *sql.DB at /src/db.go:42")
	}))
	return s
}

func TestOperationalRoutes(t *testing.T) {
	tests := []struct {
		name   string
		checks map[string]server.Checker
		path   string
		status int
		code   apierror.Code
	}{
		{"healthz", nil, "/healthz", 200, ""},
		{"readyz up", nil, "/readyz", 200, ""},
		{"readyz down", map[string]server.Checker{"database": downStore{}}, "/readyz", 503, apierror.ServiceUnavailable},
		{"healthz while store down", map[string]server.Checker{"database": downStore{}}, "/healthz", 200, ""},
		{"metrics", nil, "/metrics", 200, ""},
		{"unknown", nil, "/nope", 404, apierror.RouteNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newServer(t, io.Discard, tt.checks).Handler()
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest("GET", tt.path, nil))
			if w.Code != tt.status {
				t.Fatalf("GET %s = %d, want %d: %s", tt.path, w.Code, tt.status, w.Body)
			}
			if tt.code != "" {
				e := apierror.Decode(w.Result())
				if e.Code != tt.code || e.Foreign {
					t.Errorf("code = %s, want %s", e.Code, tt.code)
				}
				if strings.Contains(w.Body.String(), "refused") {
					t.Errorf("body leaks the cause: %s", w.Body)
				}
			}
		})
	}
}

func TestMetricsCountRequests(t *testing.T) {
	h := newServer(t, io.Discard, nil).Handler()
	for _, p := range []string{"/healthz", "/healthz", "/nope"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", p, nil))
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{
		`tollgate_http_requests_total{code="",route="GET /healthz",status="200"} 2`,
		`tollgate_http_requests_total{code="ROUTE_NOT_FOUND",route="unmatched",status="404"} 1`,
		`tollgate_http_request_duration_seconds_bucket{route="GET /healthz",le="+Inf"} 2`,
	} {
		if !strings.Contains(w.Body.String(), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestPanicOverHTTP is the check: a route that panics answers 500
// INTERNAL_ERROR, the log line with the same request id holds the panic
// value, and the body holds no stack, file name or Go type name.
func TestPanicOverHTTP(t *testing.T) {
	logs := &testenv.Buffer{}
	ts := httptest.NewServer(newServer(t, logs, nil).Handler())
	defer ts.Close()
	resp, err := http.Get(ts.URL + "/v1/panic")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 500 {
		t.Fatalf("status = %d", resp.StatusCode)
	}
	var env struct {
		Error struct {
			Code    string         `json:"code"`
			Details map[string]any `json:"details"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &env); err != nil || env.Error.Code != "INTERNAL_ERROR" {
		t.Fatalf("body = %s (%v)", body, err)
	}
	id := resp.Header.Get("X-Request-Id")
	if env.Error.Details["request_id"] != id || id == "" {
		t.Errorf("request_id %v, header %q", env.Error.Details["request_id"], id)
	}
	for _, leak := range []string{"kaboom", "sql.DB", ".go", "goroutine", "panic"} {
		if bytes.Contains(body, []byte(leak)) {
			t.Errorf("body leaks %q: %s", leak, body)
		}
	}
	found := false
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, `"request_id":"`+id+`"`) && strings.Contains(line, "kaboom: *sql.DB at /src/db.go:42") {
			found = true
		}
	}
	if !found {
		t.Errorf("no log line with request id %s and the panic value:\n%s", id, logs)
	}
}

// TestGracefulShutdown checks that cancelling Serve's context lets an
// in-flight request finish before Serve returns.
func TestGracefulShutdown(t *testing.T) {
	s := newServer(t, io.Discard, nil)
	entered := make(chan struct{})
	release := make(chan struct{})
	s.Handle("GET /v1/slow", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		w.Write([]byte("done"))
	}))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, l) }()

	got := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + l.Addr().String() + "/v1/slow")
		if err != nil {
			got <- "error: " + err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- fmt.Sprintf("%d %s", resp.StatusCode, b)
	}()
	<-entered
	cancel()
	select {
	case err := <-served:
		t.Fatalf("Serve returned %v before the in-flight request finished", err)
	default:
	}
	close(release)
	if g := <-got; g != "200 done" {
		t.Errorf("in-flight request got %q, want 200 done", g)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve = %v", err)
	}
	if _, err := net.Dial("tcp", l.Addr().String()); err == nil {
		t.Errorf("listener still accepts after shutdown")
	}
}

// FuzzChain sends arbitrary requests through the whole chain, parsed from
// raw bytes as the server would. No input may panic (the Recover
// middleware would log it), and every non-2xx answer must be a valid
// envelope, or problem+json when asked, whose request_id is the
// X-Request-Id header.
func FuzzChain(f *testing.F) {
	seeds := []struct {
		method, path, headers, ctype string
		body                         []byte
	}{
		{"GET", "/nope", "", "", nil},
		{"POST", "/v1/echo/1", "", "application/json", []byte(`{"name":"a","count":1}`)},
		{"POST", "/v1/echo/1", "Accept: application/problem+json", "application/json", []byte(`{"name":1}`)},
		{"POST", "/v1/echo/x", "X-Request-Id: abc", "text/plain", []byte(`hello`)},
		{"DELETE", "/v1/echo/1", "", "", nil},
		{"POST", "/v1/echo/1", "", "application/json", []byte(`{"name":"a","name":"b"}`)},
		{"POST", "/v1/echo/1", "", "application/json", []byte(`{"meta":{"a":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}}`)},
		{"GET", "/v1/../healthz", "", "", nil},
		{"GET", "/readyz", "Accept: application/problem+json;q=0.1, application/json", "", nil},
		{"PATCH", "/metrics", "", "application/json", []byte(`{}`)},
		{"POST", "/v1/echo/1", "Content-Length: 99999", "application/json", bytes.Repeat([]byte("a"), 5000)},
	}
	for _, s := range seeds {
		f.Add(s.method, s.path, s.headers, s.ctype, s.body)
	}
	logs := &panicDetector{}
	h := newServer(f, logs, nil).Handler()
	f.Fuzz(func(t *testing.T, method, path, headers, ctype string, body []byte) {
		var raw bytes.Buffer
		fmt.Fprintf(&raw, "%s %s HTTP/1.1\r\nHost: localhost\r\n", method, path)
		for _, line := range strings.Split(headers, "\n") {
			if line = strings.TrimSpace(line); line != "" {
				raw.WriteString(line + "\r\n")
			}
		}
		if ctype != "" {
			fmt.Fprintf(&raw, "Content-Type: %s\r\n", ctype)
		}
		fmt.Fprintf(&raw, "Content-Length: %d\r\n\r\n", len(body))
		raw.Write(body)
		r, err := http.ReadRequest(bufio.NewReader(&raw))
		if err != nil {
			return // net/http's own parser refuses it before any handler runs
		}
		r.RemoteAddr = "192.0.2.1:1234"
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if logs.panicked.Load() {
			t.Fatalf("a request panicked: %q", raw.String())
		}
		id := w.Header().Get("X-Request-Id")
		if id == "" {
			t.Fatalf("no X-Request-Id for %q", raw.String())
		}
		if w.Code < 300 {
			return
		}
		ct := w.Header().Get("Content-Type")
		if ct != apierror.ContentTypeJSON && ct != apierror.ContentTypeProblem {
			t.Fatalf("status %d with Content-Type %q for %q: %s", w.Code, ct, raw.String(), w.Body)
		}
		if r.Method == http.MethodHead {
			return
		}
		var m map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
			t.Fatalf("status %d body is not JSON for %q: %s", w.Code, raw.String(), w.Body)
		}
		resp := w.Result()
		resp.Body = io.NopCloser(bytes.NewReader(w.Body.Bytes()))
		e := apierror.Decode(resp)
		if e.Foreign || !e.Code.Known() || e.Code.Status() != w.Code || e.Message == "" {
			t.Fatalf("status %d: not a valid envelope for %q: %s", w.Code, raw.String(), w.Body)
		}
		if ct == apierror.ContentTypeJSON {
			env, _ := m["error"].(map[string]any)
			if _, ok := env["details"].(map[string]any); !ok || len(m) != 1 {
				t.Fatalf("status %d: envelope shape wrong for %q: %s", w.Code, raw.String(), w.Body)
			}
		}
		if e.Details["request_id"] != id {
			t.Fatalf("details.request_id %v != X-Request-Id %q", e.Details["request_id"], id)
		}
	})
}
