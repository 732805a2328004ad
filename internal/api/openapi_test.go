package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/google/go-cmp/cmp"

	"github.com/tollgate-dev/tollgate/apierror"
	"github.com/tollgate-dev/tollgate/internal/api"
	"github.com/tollgate-dev/tollgate/internal/server"
)

var update = flag.Bool("update", false, "copy internal/api/openapi.json to docs/openapi.json")

// docsCopy is the copy of the document kept for readers of the repository.
const docsCopy = "../../docs/openapi.json"

// contract is the OpenAPI document, loaded, validated and routed.
type contract struct {
	doc    *openapi3.T
	router routers.Router
}

var (
	contractOnce sync.Once
	contractVal  *contract
	contractErr  error
)

// loadContract loads and validates the served document once per test
// binary.
func loadContract(t testing.TB) *contract {
	t.Helper()
	contractOnce.Do(func() {
		ctx := context.Background()
		loader := openapi3.NewLoader()
		doc, err := loader.LoadFromData(api.OpenAPIDocument())
		if err != nil {
			contractErr = fmt.Errorf("load: %w", err)
			return
		}
		if err := doc.Validate(ctx, openapi3.EnableSchemaFormatValidation()); err != nil {
			contractErr = fmt.Errorf("validate: %w", err)
			return
		}
		router, err := gorillamux.NewRouter(doc)
		if err != nil {
			contractErr = fmt.Errorf("router: %w", err)
			return
		}
		contractVal = &contract{doc: doc, router: router}
	})
	if contractErr != nil {
		t.Fatalf("openapi.json: %v", contractErr)
	}
	return contractVal
}

// check validates a response against the document: its status must be
// listed for the operation, and its headers and body must match. A
// request to a path or method the document does not list must have been
// answered 404 ROUTE_NOT_FOUND or 405 METHOD_NOT_ALLOWED, with the body
// and headers of those components.
func (c *contract) check(req *http.Request, status int, header http.Header, body []byte) error {
	if req.Method == http.MethodHead {
		return nil // no body to check; the GET twin is checked
	}
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		name := "RouteNotFound"
		if err == routers.ErrMethodNotAllowed {
			name = "MethodNotAllowed"
		}
		ref := c.doc.Components.Responses[name]
		if ref == nil {
			return fmt.Errorf("components.responses.%s missing", name)
		}
		want := map[string]int{"RouteNotFound": 404, "MethodNotAllowed": 405}[name]
		if status != want {
			return fmt.Errorf("%s %s: not in the document, answered %d, want %d (%s)", req.Method, req.URL.Path, status, want, name)
		}
		// Validate against the shared component by routing a synthetic
		// operation that answers only with it.
		op := openapi3.NewOperation()
		op.Responses = openapi3.NewResponses(openapi3.WithStatus(want, ref))
		route = &routers.Route{Spec: c.doc, Path: req.URL.Path, Method: req.Method, Operation: op}
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 status,
		Header:                 header,
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	in.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		return fmt.Errorf("%s %s → %d does not match the document: %w\nbody: %s", req.Method, req.URL.String(), status, err, body)
	}
	return nil
}

// checkRecorder is check for an httptest recorder.
func (c *contract) checkRecorder(t *testing.T, r *http.Request, w *httptest.ResponseRecorder) {
	t.Helper()
	if err := c.check(r, w.Code, w.Header(), w.Body.Bytes()); err != nil {
		t.Error(err)
	}
}

func TestOpenAPIDocumentIsValid(t *testing.T) {
	c := loadContract(t)
	if c.doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi = %q, want 3.1.0", c.doc.OpenAPI)
	}
	for _, name := range []string{"bearerAuth", "apiKeyAuth"} {
		if c.doc.Components.SecuritySchemes[name] == nil {
			t.Errorf("security scheme %s missing", name)
		}
	}
	if s := c.doc.Components.SecuritySchemes["apiKeyAuth"]; s != nil && (s.Value.In != "header" || s.Value.Name != "x-api-key") {
		t.Errorf("apiKeyAuth = %+v, want header x-api-key", s.Value)
	}
}

// TestOpenAPIDocsCopy keeps docs/openapi.json byte-identical to the
// served document; -update rewrites the copy.
func TestOpenAPIDocsCopy(t *testing.T) {
	served := api.OpenAPIDocument()
	if *update {
		if err := os.WriteFile(docsCopy, served, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(docsCopy)
	if err != nil {
		t.Fatalf("read the docs copy (run go test -run TestOpenAPIDocsCopy -update): %v", err)
	}
	if !bytes.Equal(got, served) {
		t.Errorf("docs/openapi.json differs from internal/api/openapi.json; run go test ./internal/api -run TestOpenAPIDocsCopy -update")
	}
	var v any
	if err := json.Unmarshal(served, &v); err != nil {
		t.Fatalf("openapi.json is not JSON: %v", err)
	}
}

// TestOpenAPIDescribesEveryRoute compares the operations in the document
// with the routes the server registers: none missing, none extra, and the
// scope each names is the scope the route enforces.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	c := loadContract(t)
	var registered []string
	api.New(api.Config{}).Routes(func(pattern string, _ http.Handler) { registered = append(registered, pattern) })
	registered = append(registered, "GET /healthz", "GET /readyz", "GET /metrics") // server.New's own
	slices.Sort(registered)

	var documented []string
	for path, item := range c.doc.Paths.Map() {
		for method := range item.Operations() {
			documented = append(documented, method+" "+path)
		}
	}
	slices.Sort(documented)
	if diff := cmp.Diff(registered, documented); diff != "" {
		t.Errorf("routes (-registered +documented):\n%s", diff)
	}

	// The operational routes are exactly those server.New registers.
	srv := server.New(server.Config{})
	h := srv.Handler()
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", p, nil))
		if w.Code != 200 {
			t.Errorf("server.New: GET %s = %d, want 200", p, w.Code)
		}
	}
}

// TestOpenAPIScopes: each /v1 operation's security names exactly the scope
// its route enforces, checked by calling it with keys that hold every
// scope but that one.
func TestOpenAPIScopes(t *testing.T) {
	c := loadContract(t)
	e := newEnv(t, nil)
	all := []string{"sessions:read", "sessions:write", "leads:read", "leads:write", "keys:read", "keys:write"}
	for path, item := range c.doc.Paths.Map() {
		for method, op := range item.Operations() {
			if !strings.HasPrefix(path, "/v1/") {
				if op.Security == nil || len(*op.Security) != 0 {
					t.Errorf("%s %s: want security: [] (public)", method, path)
				}
				continue
			}
			t.Run(method+" "+path, func(t *testing.T) {
				if op.Security == nil || len(*op.Security) != 2 {
					t.Fatalf("security = %v, want bearerAuth and apiKeyAuth", op.Security)
				}
				scopes := (*op.Security)[0]["bearerAuth"]
				if len(scopes) != 1 || !slices.Equal((*op.Security)[1]["apiKeyAuth"], scopes) {
					t.Fatalf("security = %v, want one scope, the same for both schemes", *op.Security)
				}
				others := slices.DeleteFunc(slices.Clone(all), func(s string) bool { return s == scopes[0] })
				key := e.newKey(others...).Secret
				target := strings.ReplaceAll(path, "{id}", "x")
				w := e.do(method, target, `{}`, bearer(key)...)
				if got := decode(t, w); got.Code != apierror.Forbidden || fmt.Sprint(got.Details["missing_scopes"]) != "["+scopes[0]+"]" {
					t.Errorf("without %s: %d %s", scopes[0], w.Code, w.Body)
				}
			})
		}
	}
}

func TestOpenAPIServed(t *testing.T) {
	c := loadContract(t)
	e := newEnv(t, nil)
	r := httptest.NewRequest("GET", "/openapi.json", nil)
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	if w.Code != 200 {
		t.Fatalf("GET /openapi.json without a key = %d: %s", w.Code, w.Body)
	}
	if !bytes.Equal(w.Body.Bytes(), api.OpenAPIDocument()) {
		t.Errorf("served body differs from OpenAPIDocument()")
	}
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q", ct)
	}
	c.checkRecorder(t, r, w)

	etag := w.Header().Get("ETag")
	r = httptest.NewRequest("GET", "/openapi.json", nil)
	r.Header.Set("If-None-Match", etag)
	w = httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	if w.Code != 304 || w.Body.Len() != 0 {
		t.Errorf("If-None-Match %s = %d %q, want 304 and no body", etag, w.Code, w.Body)
	}
	c.checkRecorder(t, r, w)

	w = e.do("POST", "/openapi.json", "")
	if w.Code != 405 || w.Header().Get("Allow") == "" {
		t.Errorf("POST /openapi.json = %d Allow %q", w.Code, w.Header().Get("Allow"))
	}
}

// TestOpenAPICheckCanFail makes sure the response check rejects what it
// should: an undocumented status, a body of the wrong shape, an error code
// of another status, a missing X-Request-Id.
func TestOpenAPICheckCanFail(t *testing.T) {
	c := loadContract(t)
	lead := `{"id":"lead_01JD3Q8Z4XK5N6P7R8S9T0V1W2","name":"Ada","email":"","phone":"+14155550123","company":"","notes":"","status":"new","createdAt":"2026-11-22T10:00:00Z","updatedAt":"2026-11-22T10:00:00Z"}`
	hdr := func(kv ...string) http.Header {
		h := http.Header{"Content-Type": {"application/json; charset=utf-8"}, "X-Request-Id": {"req_1"}}
		for i := 0; i+1 < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	tests := []struct {
		name    string
		method  string
		path    string
		status  int
		header  http.Header
		body    string
		wantErr bool
	}{
		{"good lead", "GET", "/v1/leads/lead_1", 200, hdr(), lead, false},
		{"undocumented status", "GET", "/v1/leads/lead_1", 418, hdr(), lead, true},
		{"snake case field", "GET", "/v1/leads/lead_1", 200, hdr(), strings.Replace(lead, "createdAt", "created_at", 1), true},
		{"bad phone", "GET", "/v1/leads/lead_1", 200, hdr(), strings.Replace(lead, "+14155550123", "4155550123", 1), true},
		{"no request id", "GET", "/v1/leads/lead_1", 200, http.Header{"Content-Type": {"application/json"}}, lead, true},
		{"good 404", "GET", "/v1/leads/lead_1", 404, hdr(), `{"error":{"code":"NOT_FOUND","message":"Lead not found","details":{"request_id":"req_1","resource":"lead"}}}`, false},
		{"404 with a 400 code", "GET", "/v1/leads/lead_1", 404, hdr(), `{"error":{"code":"VALIDATION_ERROR","message":"x","details":{"request_id":"req_1"}}}`, true},
		{"404 without request_id", "GET", "/v1/leads/lead_1", 404, hdr(), `{"error":{"code":"NOT_FOUND","message":"x","details":{}}}`, true},
		{"429 without Retry-After", "GET", "/v1/leads", 429, hdr(), `{"error":{"code":"RATE_LIMITED","message":"x","details":{"request_id":"req_1"}}}`, true},
		{"unknown route 404", "GET", "/v1/nope", 404, hdr(), `{"error":{"code":"ROUTE_NOT_FOUND","message":"x","details":{"request_id":"req_1","path":"/v1/nope"}}}`, false},
		{"unknown route 200", "GET", "/v1/nope", 200, hdr(), `{}`, true},
		{"405 without Allow", "PUT", "/v1/leads", 405, hdr(), `{"error":{"code":"METHOD_NOT_ALLOWED","message":"x","details":{"request_id":"req_1"}}}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, tt.path, nil)
			err := c.check(r, tt.status, tt.header, []byte(tt.body))
			if (err != nil) != tt.wantErr {
				t.Errorf("check = %v, want error %v", err, tt.wantErr)
			}
		})
	}
}

// readAll reads and closes a response body.
func readAll(t testing.TB, rc io.ReadCloser) []byte {
	t.Helper()
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
