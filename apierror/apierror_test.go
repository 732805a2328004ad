package apierror_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tollgate-dev/tollgate/apierror"
)

var update = flag.Bool("update", false, "rewrite golden files")

// sample returns a representative error for each code, with the details
// the catalogue lists.
func sample(c apierror.Code) *apierror.Error {
	e := apierror.New(c, "")
	switch c {
	case apierror.InvalidRequest:
		e.With("field", "limit").With("reason", "must be an integer")
	case apierror.MissingField:
		e = apierror.New(c, "Missing required field: phone").With("field", "phone")
	case apierror.ValidationError:
		e = apierror.New(c, "Invalid email format").With("field", "email").With("reason", "Invalid email format").
			With("errors", []apierror.FieldError{{Field: "email", Reason: "Invalid email format"}, {Field: "phone", Reason: "Invalid phone number"}})
	case apierror.Unauthorized:
		e.With("reason", "revoked")
	case apierror.Forbidden:
		e.With("required_scopes", []string{"leads:write"}).With("missing_scopes", []string{"leads:write"})
	case apierror.NotFound:
		e = apierror.New(c, "Session not found").With("resource", "session")
	case apierror.RouteNotFound:
		e.With("path", "/nope")
	case apierror.MethodNotAllowed:
		e.With("allowed", []string{"GET", "POST"}).WithHeader("Allow", "GET, POST")
	case apierror.AlreadyExists:
		e = apierror.New(c, "A lead with this phone number already exists").With("field", "phone").With("resource", "lead")
	case apierror.PayloadTooLarge:
		e.With("limit_bytes", 1048576)
	case apierror.UnsupportedMediaType:
		e.With("supported", []string{"application/json"})
	case apierror.Unprocessable:
		e.With("reason", "endedAt is before startedAt").With("field", "endedAt")
	case apierror.RateLimited:
		e = apierror.New(c, "Rate limit exceeded. Retry after 17 seconds.").
			With("limit", 100).With("window", "1m").With("policy", "default").WithRetryAfter(17 * time.Second)
	case apierror.QuotaExceeded:
		e.With("limit", 10000).With("window", "24h").WithRetryAfter(3600 * time.Second)
	case apierror.InternalError:
		e = apierror.Wrap(errors.New("pq: relation \"leads\" does not exist"), c, "")
	case apierror.BadGateway:
		e.With("upstream_status", 500)
	case apierror.ServiceUnavailable:
		e.With("reason", "maintenance").WithRetryAfter(30 * time.Second)
	case apierror.GatewayTimeout:
		e.With("timeout_ms", 5000)
	}
	return e
}

func record(t *testing.T, err error, accept string, opts apierror.Options) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "/v1/things/1", nil)
	if accept != "" {
		r.Header.Set("Accept", accept)
	}
	r = r.WithContext(apierror.WithOptions(r.Context(), opts))
	w := httptest.NewRecorder()
	w.Header().Set(apierror.HeaderRequestID, "req_01JTEST")
	apierror.Write(w, r, err)
	return w
}

func TestWriteGolden(t *testing.T) {
	formats := []struct {
		name   string
		accept string
		ctype  string
	}{
		{"envelope", "", apierror.ContentTypeJSON},
		{"problem", "application/problem+json", apierror.ContentTypeProblem},
	}
	for _, c := range apierror.Codes() {
		for _, f := range formats {
			t.Run(string(c)+"/"+f.name, func(t *testing.T) {
				w := record(t, sample(c), f.accept, apierror.Options{})
				if w.Code != c.Status() {
					t.Errorf("status = %d, want %d", w.Code, c.Status())
				}
				if got := w.Header().Get("Content-Type"); got != f.ctype {
					t.Errorf("Content-Type = %q, want %q", got, f.ctype)
				}
				if got := w.Header().Get("Cache-Control"); got != "no-store" {
					t.Errorf("Cache-Control = %q, want no-store", got)
				}
				golden(t, filepath.Join("testdata", "golden", strings.ToLower(string(c))+"."+f.name+".json"), w.Body.Bytes())
			})
		}
	}
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, got, "", "  "); err != nil {
		t.Fatalf("body is not JSON: %v\n%s", err, got)
	}
	if *update {
		if err := os.WriteFile(path, pretty.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run with -update): %v", err)
	}
	if diff := cmp.Diff(string(want), pretty.String()); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", path, diff)
	}
}

// TestEveryCode walks the catalogue: each code has a status in 4xx/5xx, a
// message, the envelope shape, and round-trips through Decode.
func TestEveryCode(t *testing.T) {
	seen := map[apierror.Code]bool{}
	for _, c := range apierror.Codes() {
		t.Run(string(c), func(t *testing.T) {
			if seen[c] {
				t.Fatalf("code listed twice")
			}
			seen[c] = true
			if !c.Known() {
				t.Errorf("Known() = false")
			}
			if s := c.Status(); s < 400 || s > 599 {
				t.Errorf("Status() = %d", s)
			}
			if c.Message() == "" {
				t.Errorf("Message() is empty")
			}
			if strings.ToUpper(string(c)) != string(c) {
				t.Errorf("code is not UPPER_SNAKE")
			}
			wantRetry := c.Status() == 429 || c.Status() >= 500 || c == apierror.IdempotencyKeyInUse
			if c.Retryable() != wantRetry {
				t.Errorf("Retryable() = %v, want %v", c.Retryable(), wantRetry)
			}
			for _, accept := range []string{"", "application/problem+json"} {
				w := record(t, sample(c), accept, apierror.Options{})
				got := apierror.Decode(w.Result())
				if got.Code != c || got.Foreign || got.Status != c.Status() {
					t.Errorf("Decode(%q) = %v foreign=%v status=%d", accept, got.Code, got.Foreign, got.Status)
				}
				if got.RequestID() != "req_01JTEST" {
					t.Errorf("Decode(%q).RequestID() = %q", accept, got.RequestID())
				}
				if want := sample(c).Message; c != apierror.InternalError && got.Message != want {
					t.Errorf("Decode(%q).Message = %q, want %q", accept, got.Message, want)
				}
			}
		})
	}
	if len(seen) != 21 {
		t.Errorf("catalogue has %d codes, want 21", len(seen))
	}
}

func TestWriteHeaders(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		header string
		want   string
	}{
		{"retry after on 429", sample(apierror.RateLimited), "Retry-After", "17"},
		{"retry after on 503", sample(apierror.ServiceUnavailable), "Retry-After", "30"},
		{"www-authenticate on 401", sample(apierror.Unauthorized), "WWW-Authenticate", `Bearer realm="tollgate"`},
		{"allow on 405", sample(apierror.MethodNotAllowed), "Allow", "GET, POST"},
		{"in use retry after 1", apierror.New(apierror.IdempotencyKeyInUse, ""), "Retry-After", "1"},
		{"request id kept", apierror.New(apierror.NotFound, ""), "X-Request-Id", "req_01JTEST"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := record(t, tt.err, "", apierror.Options{})
			if got := w.Header().Get(tt.header); got != tt.want {
				t.Errorf("%s = %q, want %q", tt.header, got, tt.want)
			}
		})
	}
}

func TestWriteInternalHidesCause(t *testing.T) {
	errs := []error{
		errors.New("secret internal detail *main.thing at /src/x.go:12"),
		apierror.Wrap(errors.New("secret internal detail"), apierror.InternalError, "secret internal detail"),
		fmt.Errorf("store: %w", errors.New("secret internal detail")),
	}
	for i, err := range errs {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			w := record(t, err, "", apierror.Options{})
			if w.Code != 500 {
				t.Fatalf("status = %d, want 500", w.Code)
			}
			if strings.Contains(w.Body.String(), "secret") || strings.Contains(w.Body.String(), ".go") {
				t.Errorf("body leaks the cause: %s", w.Body)
			}
			if apierror.Decode(w.Result()).Code != apierror.InternalError {
				t.Errorf("code is not INTERNAL_ERROR: %s", w.Body)
			}
		})
	}
}

func TestWriteSuccessField(t *testing.T) {
	w := record(t, sample(apierror.NotFound), "", apierror.Options{SuccessField: true})
	var body map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if body["success"] != false {
		t.Errorf("success = %v, want false; body %s", body["success"], w.Body)
	}
	w = record(t, sample(apierror.NotFound), "", apierror.Options{})
	if strings.Contains(w.Body.String(), "success") {
		t.Errorf("success present without the option: %s", w.Body)
	}
}

func TestWriteMakesRequestID(t *testing.T) {
	w := httptest.NewRecorder()
	apierror.Write(w, httptest.NewRequest("GET", "/", nil), apierror.New(apierror.NotFound, ""))
	id := w.Header().Get(apierror.HeaderRequestID)
	if !strings.HasPrefix(id, "req_") {
		t.Fatalf("X-Request-Id = %q", id)
	}
	if got := apierror.Decode(w.Result()).RequestID(); got != id {
		t.Errorf("details.request_id = %q, want %q", got, id)
	}
}

func TestWriteHead(t *testing.T) {
	w := httptest.NewRecorder()
	apierror.Write(w, httptest.NewRequest("HEAD", "/", nil), apierror.New(apierror.NotFound, ""))
	if w.Code != 404 || w.Body.Len() != 0 {
		t.Errorf("HEAD: status %d, body %q", w.Code, w.Body)
	}
}

func TestAcceptNegotiation(t *testing.T) {
	tests := []struct {
		accept string
		want   string
	}{
		{"", apierror.ContentTypeJSON},
		{"*/*", apierror.ContentTypeJSON},
		{"application/json", apierror.ContentTypeJSON},
		{"application/problem+json", apierror.ContentTypeProblem},
		{"application/problem+json, application/json;q=0.5", apierror.ContentTypeProblem},
		{"application/json, application/problem+json;q=0.5", apierror.ContentTypeJSON},
		{"application/problem+json;q=0", apierror.ContentTypeJSON},
		{"text/html, application/problem+json", apierror.ContentTypeProblem},
		{"APPLICATION/PROBLEM+JSON", apierror.ContentTypeProblem},
		{"application/problem+json;q=garbage", apierror.ContentTypeProblem},
		// A wildcard accepts the envelope at its own q.
		{"application/problem+json;q=0.5, */*", apierror.ContentTypeJSON},
		{"application/problem+json;q=0.1, application/*;q=0.9", apierror.ContentTypeJSON},
		{"application/problem+json, */*;q=0.8", apierror.ContentTypeProblem},
		{"application/problem+json;q=0.5, application/json;q=0.1, */*", apierror.ContentTypeProblem},
	}
	for _, tt := range tests {
		t.Run(tt.accept, func(t *testing.T) {
			w := record(t, sample(apierror.NotFound), tt.accept, apierror.Options{})
			if got := w.Header().Get("Content-Type"); got != tt.want {
				t.Errorf("Accept %q: Content-Type = %q, want %q", tt.accept, got, tt.want)
			}
		})
	}
}

func TestDecodeForeign(t *testing.T) {
	tests := []struct {
		name   string
		status int
		ctype  string
		body   string
		want   apierror.Code
	}{
		{"html 502 from a proxy", 502, "text/html", "<html><body>Bad Gateway</body></html>", apierror.BadGateway},
		{"empty 503", 503, "", "", apierror.ServiceUnavailable},
		{"garbage json", 500, "application/json", "{not json", apierror.InternalError},
		{"json without error", 404, "application/json", `{"message":"nope"}`, apierror.NotFound},
		{"problem without code", 429, "application/problem+json", `{"title":"x","status":429}`, apierror.RateLimited},
		{"unknown 4xx", 418, "text/plain", "teapot", apierror.InvalidRequest},
		{"error is a string", 400, "application/json", `{"error":"bad"}`, apierror.InvalidRequest},
		{"envelope under a type that is not JSON", 409, "application/notjson", `{"error":{"code":"CONFLICT","message":"m"}}`, apierror.Conflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := &http.Response{StatusCode: tt.status, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(tt.body))}
			if tt.ctype != "" {
				resp.Header.Set("Content-Type", tt.ctype)
			}
			resp.Header.Set("X-Request-Id", "req_proxy")
			got := apierror.Decode(resp)
			if got.Code != tt.want || !got.Foreign || got.Status != tt.status {
				t.Errorf("Decode = code %s foreign %v status %d, want %s true %d", got.Code, got.Foreign, got.Status, tt.want, tt.status)
			}
			if got.RequestID() != "req_proxy" {
				t.Errorf("RequestID() = %q, want req_proxy", got.RequestID())
			}
		})
	}
}

// TestDecodeOddDetails: an envelope whose details are not an object keeps
// its code and message; the details are dropped.
func TestDecodeOddDetails(t *testing.T) {
	for _, details := range []string{`["a"]`, `"s"`, `5`, `null`} {
		t.Run(details, func(t *testing.T) {
			body := `{"error":{"code":"VALIDATION_ERROR","message":"Field x is bad.","details":` + details + `}}`
			resp := &http.Response{StatusCode: 400, Header: http.Header{"Content-Type": {"application/json"}, "X-Request-Id": {"req_1"}},
				Body: io.NopCloser(strings.NewReader(body))}
			got := apierror.Decode(resp)
			if got.Code != apierror.ValidationError || got.Message != "Field x is bad." || got.Foreign || got.RequestID() != "req_1" {
				t.Errorf("Decode = %s %q foreign %v request_id %q; want the envelope's code and message", got.Code, got.Message, got.Foreign, got.RequestID())
			}
		})
	}
}

// TestDecodeHugeNumbers: a number too large for a float64 in the details
// (of the envelope or of problem+json) stays a json.Number; it does not
// cost the details around it. Other numbers are float64, as always.
func TestDecodeHugeNumbers(t *testing.T) {
	tests := []struct {
		name, contentType, body string
	}{
		{"envelope", "application/json", `{"error":{"code":"RATE_LIMITED","message":"Slow down.","details":{"request_id":"req_9","retry_after":1e400,"limit":10,"nested":{"n":[1e400,2]}}}}`},
		{"problem+json", "application/problem+json", `{"type":"about:blank","title":"Too Many Requests","status":429,"detail":"Slow down.","code":"RATE_LIMITED","request_id":"req_9","retry_after":1e400,"limit":10,"nested":{"n":[1e400,2]}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := &http.Response{StatusCode: 429, Header: http.Header{"Content-Type": {tt.contentType}},
				Body: io.NopCloser(strings.NewReader(tt.body))}
			got := apierror.Decode(resp)
			want := apierror.Details{"request_id": "req_9", "retry_after": json.Number("1e400"), "limit": 10.0,
				"nested": map[string]any{"n": []any{json.Number("1e400"), 2.0}}}
			if got.Code != apierror.RateLimited || got.Foreign || !reflect.DeepEqual(got.Details, want) {
				t.Errorf("Decode = %s foreign %v details %#v; want RATE_LIMITED with %#v", got.Code, got.Foreign, got.Details, want)
			}
		})
	}
	t.Run("trailing data", func(t *testing.T) {
		resp := &http.Response{StatusCode: 429, Header: http.Header{"Content-Type": {"application/problem+json"}},
			Body: io.NopCloser(strings.NewReader(`{"code":"RATE_LIMITED","detail":"x"} {"code":"NOT_FOUND"}`))}
		if got := apierror.Decode(resp); !got.Foreign {
			t.Errorf("Decode of problem+json with trailing data = %s, not foreign", got.Code)
		}
	})
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		value  string
		want   time.Duration
		wantOK bool
	}{
		{"", 0, false},
		{"17", 17 * time.Second, true},
		{"0", 0, true},
		{"-3", 0, false},
		{"4294967296", 1 << 31 * time.Second, true},
		{"99999999999999999999", 1 << 31 * time.Second, true},
		{"-99999999999999999999", 0, false},
		{"1.5", 0, false},
		{"soon", 0, false},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{now.AddDate(100, 0, 0).Format(http.TimeFormat), 1 << 31 * time.Second, true},
	}
	// An HTTP date is the server's clock: with a Date header, the wait is
	// from it, whatever the local clock says.
	t.Run("date relative to the response's Date", func(t *testing.T) {
		server := now.Add(-10 * time.Second) // the local clock runs 10 s ahead
		h := http.Header{"Date": {server.Format(http.TimeFormat)}, "Retry-After": {server.Add(5 * time.Second).Format(http.TimeFormat)}}
		if got, ok := apierror.ParseRetryAfter(h, now); got != 5*time.Second || !ok {
			t.Errorf("ParseRetryAfter = %v, %v; want 5s, true", got, ok)
		}
		h.Set("Date", "garbage") // unparsable: the local clock
		if got, ok := apierror.ParseRetryAfter(h, now); got != 0 || !ok {
			t.Errorf("with a bad Date: %v, %v; want 0s, true", got, ok)
		}
	})
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			h := http.Header{}
			if tt.value != "" {
				h.Set("Retry-After", tt.value)
			}
			got, ok := apierror.ParseRetryAfter(h, now)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", tt.value, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestCodeOfAndIs(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want apierror.Code
	}{
		{"nil", nil, ""},
		{"plain", errors.New("x"), apierror.InternalError},
		{"wrapped api error", fmt.Errorf("handler: %w", apierror.New(apierror.NotFound, "")), apierror.NotFound},
		{"deadline", fmt.Errorf("db: %w", context.DeadlineExceeded), apierror.ServiceUnavailable},
		{"max bytes", &http.MaxBytesError{Limit: 10}, apierror.PayloadTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := apierror.CodeOf(tt.err); got != tt.want {
				t.Errorf("CodeOf(%v) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
	cause := errors.New("root")
	err := fmt.Errorf("outer: %w", apierror.Wrap(cause, apierror.Conflict, ""))
	if !errors.Is(err, cause) {
		t.Errorf("errors.Is(err, cause) = false")
	}
	if !errors.Is(err, apierror.Sentinel(apierror.Conflict)) {
		t.Errorf("errors.Is(err, Sentinel(CONFLICT)) = false")
	}
	if errors.Is(err, apierror.Sentinel(apierror.NotFound)) {
		t.Errorf("errors.Is(err, Sentinel(NOT_FOUND)) = true")
	}
}

// TestDocsListEveryCode keeps docs/errors.md in step with the catalogue.
func TestDocsListEveryCode(t *testing.T) {
	doc, err := os.ReadFile("../docs/errors.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range apierror.Codes() {
		heading := "### " + string(c) + "\n**" + fmt.Sprint(c.Status()) + ".**"
		if !strings.Contains(string(doc), heading) {
			t.Errorf("docs/errors.md has no section %q", heading)
		}
		row := fmt.Sprintf("| %d | [%s](#%s) |", c.Status(), c, strings.ToLower(string(c)))
		if !strings.Contains(string(doc), row) {
			t.Errorf("docs/errors.md table has no row %q", row)
		}
	}
}
