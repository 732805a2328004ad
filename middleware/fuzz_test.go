package middleware_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/google/go-cmp/cmp"

	"github.com/tollgate-dev/tollgate/apierror"
	"github.com/tollgate-dev/tollgate/auth"
	"github.com/tollgate-dev/tollgate/middleware"
)

// fuzzBody is a representative request body for FuzzDecodeJSON: strings,
// integers of several widths and signs, a float, a bool, slices, a nested
// object behind a pointer, maps and a date-time.
type fuzzBody struct {
	Name    string            `json:"name"`
	Age     int8              `json:"age"`
	Count   uint16            `json:"count"`
	Score   int64             `json:"score"`
	Ratio   float64           `json:"ratio"`
	Active  bool              `json:"active"`
	Tags    []string          `json:"tags"`
	Nums    []int             `json:"nums"`
	Address *fuzzAddress      `json:"address"`
	Labels  map[string]string `json:"labels"`
	Meta    map[string]any    `json:"meta"`
	At      *time.Time        `json:"at"`
}

type fuzzAddress struct {
	Street string   `json:"street"`
	Zip    int32    `json:"zip"`
	Lines  []string `json:"lines"`
}

// fuzzRequired are the members FuzzDecodeJSON's flags can make required.
var fuzzRequired = []string{"name", "address", "tags", "count"}

// FuzzDecodeJSON checks DecodeJSON, the strict decoder handlers use, on a
// random Content-Type, body, body limit and options (flags: bit 0
// Optional, bit 1 AllowNUL, bits 2–3 MaxDepth 0/1/2/4, bits 4–7 which of
// fuzzRequired are required), decoding into fuzzBody. Properties:
//
//   - it never panics;
//   - it succeeds, or returns an *apierror.Error whose code is
//     INVALID_REQUEST, MISSING_FIELD, VALIDATION_ERROR,
//     UNSUPPORTED_MEDIA_TYPE or PAYLOAD_TOO_LARGE with that code's 4xx
//     status, and apierror.Write makes of it a JSON envelope with that
//     status and code;
//   - 415 exactly when the Content-Type is not JSON (unless an Optional
//     body is only white space); 413 only past the limit, with
//     details.limit_bytes;
//   - on success the body was valid JSON per encoding/json with no
//     duplicate member, its Content-Type JSON, each required member
//     present and not null, and the value, re-encoded by encoding/json and
//     decoded again, is the same;
//   - the details an error promises hold: a syntax error's or trailing
//     data's offset lies within the body (and the body before trailing
//     data is one valid JSON value), details.field names a member the body
//     has (its first dotted segment is a top-level member), a missing
//     field is required and absent or null, a duplicate is one, and so on;
//     a syntax error is invalid JSON for encoding/json too, except for an
//     escaped lone surrogate ("\ud800"), which I-JSON (RFC 7493) forbids
//     and encoding/json reads as U+FFFD.
//
// Seeds live in testdata/fuzz/FuzzDecodeJSON.
func FuzzDecodeJSON(f *testing.F) {
	seeds := []struct {
		ctype string
		body  string
		limit uint16
		flags uint8
	}{
		{"application/json", `{"name":"a","age":1,"count":2,"tags":["x"],"address":{"street":"s","zip":75001}}`, 0, 0xf0},
		{"application/json; charset=utf-8", `{"name":"a","meta":{"k":[1,2.5,"x",null,true]},"labels":{"a":"b"}}`, 0, 0x10},
		{"application/vnd.api+json", `{"at":"2026-11-22T10:00:00+01:00","ratio":-0}`, 0, 0},
		{"text/plain", `{"name":"a"}`, 0, 0},
		{"application/json", `{"name":"a","name":"b"}`, 0, 0},
		{"application/json", `{"name":"a"} {}`, 0, 0},
		{"application/json", `{"name":}`, 0, 0},
		{"application/json", `{"age":128}`, 0, 0},
		{"application/json", `{"count":-1}`, 0, 0},
		{"application/json", `{"address":{"zip":"x"}}`, 0, 0x20},
		{"application/json", `{"name":"a\u0000"}`, 0, 0},
		{"application/json", `{"name":"a\u0000"}`, 0, 2},
		{"application/json", `{"meta":{"a":{"b":{}}}}`, 0, 0x08},
		{"application/json", "  \n", 0, 1},
		{"", " ", 0, 1},
		{"application/json", `{"name":"` + strings.Repeat("a", 40) + `"}`, 16, 0},
		{"application/json", `[]`, 0, 0},
		{"application/json", "{\"name\":\"\xff\"}", 0, 0},
		{"application/problem+json", `{"tags":null}`, 0, 0x40},
	}
	for _, s := range seeds {
		f.Add(s.ctype, []byte(s.body), s.limit, s.flags)
	}
	f.Fuzz(func(t *testing.T, ctype string, body []byte, limit uint16, flags uint8) {
		opts := middleware.DecodeOptions{
			Optional: flags&1 != 0,
			AllowNUL: flags&2 != 0,
			MaxDepth: []int{0, 1, 2, 4}[flags>>2&3],
		}
		for i, name := range fuzzRequired {
			if flags&(1<<(4+i)) != 0 {
				opts.Required = append(opts.Required, name)
			}
		}
		maxDepth := opts.MaxDepth
		if maxDepth == 0 {
			maxDepth = middleware.DefaultMaxDepth
		}
		r := httptest.NewRequest("POST", "/", bytes.NewReader(body))
		if ctype != "" {
			r.Header.Set("Content-Type", ctype)
		}
		if limit > 0 {
			r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, int64(limit))
		}
		var v fuzzBody
		err := middleware.DecodeJSON(r, &v, opts)

		whiteOnly := len(bytes.Trim(body, " \t\r\n")) == 0
		jsonCT := isJSONType(ctype)
		tooLarge := limit > 0 && len(body) > int(limit)
		if err == nil {
			switch {
			case tooLarge:
				t.Fatalf("accepted %d bytes past a limit of %d", len(body), limit)
			case opts.Optional && whiteOnly:
				if !cmp.Equal(v, fuzzBody{}) {
					t.Fatalf("an empty optional body set %+v", v)
				}
				return
			case !jsonCT:
				t.Fatalf("accepted Content-Type %q", ctype)
			case !json.Valid(body):
				t.Fatalf("accepted %q, which encoding/json finds invalid", body)
			}
			if _, dup, hasDup := scanJSON(body); hasDup {
				t.Fatalf("accepted %q with a duplicate member %q", body, dup)
			}
			var raw map[string]json.RawMessage
			if err := json.Unmarshal(body, &raw); err != nil {
				t.Fatalf("accepted %q, which is not an object for encoding/json: %v", body, err)
			}
			for _, name := range opts.Required {
				if val, ok := raw[name]; !ok || string(val) == "null" {
					t.Fatalf("accepted %q without required %q", body, name)
				}
			}
			again, err := json.Marshal(v)
			if err != nil {
				t.Fatalf("re-encode %+v (from %q): %v", v, body, err)
			}
			var w fuzzBody
			if err := middleware.Unmarshal(again, &w, middleware.DecodeOptions{Required: opts.Required, AllowNUL: opts.AllowNUL, MaxDepth: opts.MaxDepth}); err != nil {
				t.Fatalf("decode of the re-encoded %s (from %q): %v", again, body, err)
			}
			if diff := cmp.Diff(v, w); diff != "" {
				t.Fatalf("re-encoded value differs (from %q, re-encoded %s):\n%s", body, again, diff)
			}
			return
		}

		var e *apierror.Error
		if !errors.As(err, &e) {
			t.Fatalf("DecodeJSON(%q, %q) = %T %v, want *apierror.Error", ctype, body, err, err)
		}
		switch e.Code {
		case apierror.InvalidRequest, apierror.MissingField, apierror.ValidationError,
			apierror.UnsupportedMediaType, apierror.PayloadTooLarge:
		default:
			t.Fatalf("DecodeJSON(%q, %q) code %s: %v", ctype, body, e.Code, err)
		}
		if s := e.HTTPStatus(); s != e.Code.Status() || s < 400 || s > 499 {
			t.Fatalf("DecodeJSON(%q, %q) status %d for %s", ctype, body, s, e.Code)
		}
		checkEnvelope(t, e)

		if e.Code == apierror.PayloadTooLarge {
			// An Optional body is read before its Content-Type is checked.
			if !tooLarge || !jsonCT && !opts.Optional {
				t.Fatalf("413 for %d bytes, limit %d, Content-Type %q", len(body), limit, ctype)
			}
			if got, _ := e.Details["limit_bytes"].(int64); got != int64(limit) {
				t.Fatalf("limit_bytes = %v, want %d", e.Details["limit_bytes"], limit)
			}
			return
		}
		if want := !jsonCT && !(opts.Optional && whiteOnly); want != (e.Code == apierror.UnsupportedMediaType) {
			t.Fatalf("Content-Type %q (body %q): got %v", ctype, body, err)
		}
		if tooLarge && e.Code != apierror.UnsupportedMediaType {
			t.Fatalf("%d bytes past a limit of %d: got %v, want 413", len(body), limit, err)
		}
		if e.Code == apierror.UnsupportedMediaType {
			return
		}

		reason, _ := e.Details["reason"].(string)
		field, hasField := e.Details["field"].(string)
		offset, hasOffset := e.Details["offset"].(int64)
		switch {
		case e.Code == apierror.MissingField:
			if !slices.Contains(opts.Required, field) || e.Message != "Missing required field: "+field {
				t.Fatalf("MISSING_FIELD field %q message %q, required %v", field, e.Message, opts.Required)
			}
			var raw map[string]json.RawMessage
			if err := json.Unmarshal(body, &raw); err != nil {
				t.Fatalf("MISSING_FIELD for %q, which encoding/json cannot read: %v", body, err)
			}
			if val, ok := raw[field]; ok && string(val) != "null" {
				t.Fatalf("MISSING_FIELD %q but %q has it: %s", field, body, val)
			}
			return
		case e.Code == apierror.ValidationError:
			if !strings.HasPrefix(reason, "Must be at ") && reason != "Out of range" {
				t.Fatalf("VALIDATION_ERROR reason %q for %q", reason, body)
			}
		case reason == "empty body":
			if len(bytes.TrimSpace(body)) != 0 {
				t.Fatalf("empty body for %q", body)
			}
			return
		case reason == "invalid UTF-8":
			if utf8.Valid(body) {
				t.Fatalf("invalid UTF-8 for %q", body)
			}
			return
		case reason == "too deep":
			if e.Details["max_depth"] != maxDepth || bytes.Count(body, []byte("{"))+bytes.Count(body, []byte("[")) <= maxDepth {
				t.Fatalf("too deep (%v) for %q, max %d", e.Details["max_depth"], body, maxDepth)
			}
			return
		case reason == "syntax error" || reason == "trailing data":
			if !hasOffset || offset < 0 || offset > int64(len(body)) {
				t.Fatalf("%s offset %v outside %q", reason, e.Details["offset"], body)
			}
			// A lone surrogate escaped (\ud800) is refused (RFC 7493,
			// I-JSON); encoding/json reads it as U+FFFD.
			if json.Valid(body) && !loneSurrogate.Match(body) {
				t.Fatalf("%s for %q, which encoding/json finds valid", reason, body)
			}
			if reason == "trailing data" && (offset == 0 || !json.Valid(body[:offset])) {
				t.Fatalf("trailing data at %d, but %q is not one value", offset, body[:offset])
			}
			return
		case reason == "not an object":
			if trimmed := bytes.Trim(body, " \t\r\n"); json.Valid(body) && len(trimmed) > 0 && trimmed[0] == '{' {
				t.Fatalf("not an object for %q", body)
			}
			return
		}
		// The body was read as JSON: what remains (duplicate, unknown
		// field, wrong type, NUL, range) names a member of it. A
		// duplicate may be found before a syntax error further on.
		if !json.Valid(body) && reason != "duplicate field" {
			t.Fatalf("%s (%s) for %q, which encoding/json finds invalid", e.Code, reason, body)
		}
		top, dup, hasDup := scanJSON(body)
		switch reason {
		case "duplicate field":
			// In a body that is not JSON the decoder may read an object
			// where a name should be, and find its duplicate first:
			// {{"a":0,"a" is a duplicate, not a syntax error at byte 1.
			if !hasDup && (json.Valid(body) || !repeatedString(body, field)) {
				t.Fatalf("duplicate field %q in %q, which has none", field, body)
			}
		case "NUL character":
			if opts.AllowNUL || !bytes.Contains(body, []byte(`\u0000`)) {
				t.Fatalf("NUL character in %q (AllowNUL %v)", body, opts.AllowNUL)
			}
		case "unknown field", "wrong type":
			if hasDup {
				t.Fatalf("%s before the duplicate %q in %q", reason, dup, body)
			}
		}
		// A member may be named "": details.field is then "" too.
		if e.Code == apierror.ValidationError || reason == "unknown field" || reason == "duplicate field" {
			if !hasField {
				t.Fatalf("%s (%s) for %q without details.field: %v", e.Code, reason, body, e.Details)
			}
		}
		if hasField && (json.Valid(body) || hasDup) && !namesMember(field, top) {
			t.Fatalf("%s (%s) field %q is not under a top-level member of %q (%q)", e.Code, reason, field, body, top)
		}
	})
}

// loneSurrogate matches the escape of a UTF-16 surrogate (paired or not;
// an over-approximation).
var loneSurrogate = regexp.MustCompile(`\\u[dD][89abcdefABCDEF][0-9a-fA-F]{2}`)

// isJSONType reports whether a Content-Type is JSON, as docs/api.md
// says: application/json or application/*+json, parameters allowed.
func isJSONType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	sub, ok := strings.CutPrefix(mt, "application/")
	return ok && (sub == "json" || strings.HasSuffix(sub, "+json"))
}

// scanJSON reads data token by token, up to its end or its first syntax
// error, and returns the names of its top-level object (none if it is not
// one) and whether a name is repeated within one object (hasDup), the
// first such name being dup.
// The tokenizer is told to allow duplicates: they are found here.
func scanJSON(data []byte) (top []string, dup string, hasDup bool) {
	d := jsontext.NewDecoder(bytes.NewReader(data), jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	type frame struct {
		object  bool
		wantKey bool
		names   map[string]bool
	}
	var stack []*frame
	for {
		tok, err := d.ReadToken()
		if err != nil {
			return top, dup, hasDup
		}
		if n := len(stack); n > 0 && stack[n-1].object {
			fr := stack[n-1]
			if fr.wantKey && tok.Kind() == '"' {
				name := tok.String()
				if fr.names[name] && !hasDup {
					dup, hasDup = name, true
				}
				fr.names[name] = true
				if n == 1 {
					top = append(top, name)
				}
				fr.wantKey = false
				continue
			}
			fr.wantKey = true // tok is a member's value, or the object's end
		}
		switch tok.Kind() {
		case '{':
			stack = append(stack, &frame{object: true, wantKey: true, names: map[string]bool{}})
		case '[':
			stack = append(stack, &frame{})
		case '}', ']':
			stack = stack[:len(stack)-1]
		}
	}
}

// repeatedString reports whether data holds, twice or more, a string
// literal that is field or the last dotted segment of it. It is the
// check of a duplicate in data that is not JSON, which the tokenizer of
// scanJSON stops reading at its first error.
func repeatedString(data []byte, field string) bool {
	seen := map[string]int{}
	for i := 0; i < len(data); i++ {
		if data[i] != '"' {
			continue
		}
		j := i + 1
		for j < len(data) && data[j] != '"' {
			if data[j] == '\\' {
				j++
			}
			j++
		}
		if j >= len(data) {
			break
		}
		var s string
		if json.Unmarshal(data[i:j+1], &s) == nil {
			seen[s]++
		}
		i = j
	}
	for s, n := range seen {
		if n > 1 && (field == s || strings.HasSuffix(field, "."+s)) {
			return true
		}
	}
	return false
}

// namesMember reports whether field, a dotted path DecodeJSON reported
// (cut to 128 bytes and to valid UTF-8), lies under one of the top-level
// names: it is the name, starts with the name and a dot, or is a cut of
// such a path.
func namesMember(field string, top []string) bool {
	for _, name := range top {
		if field == name || strings.HasPrefix(field, name+".") {
			return true
		}
		if len(field) > 124 && strings.HasPrefix(name+".", field) {
			return true // cut inside the name
		}
	}
	return false
}

// checkEnvelope writes e as a handler would and checks the response: e's
// status, a JSON Content-Type, and an envelope that decodes to e's code.
func checkEnvelope(t *testing.T, e *apierror.Error) {
	t.Helper()
	w := httptest.NewRecorder()
	apierror.Write(w, httptest.NewRequest("POST", "/", nil), e)
	if w.Code != e.HTTPStatus() {
		t.Fatalf("Write(%v) status %d, want %d", e, w.Code, e.HTTPStatus())
	}
	if ct := w.Header().Get("Content-Type"); ct != apierror.ContentTypeJSON {
		t.Fatalf("Write(%v) Content-Type %q", e, ct)
	}
	var env struct {
		Error struct {
			Code    apierror.Code  `json:"code"`
			Message string         `json:"message"`
			Details map[string]any `json:"details"`
		} `json:"error"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil || env.Error.Code != e.Code || env.Error.Details["request_id"] == nil {
		t.Fatalf("Write(%v) body %s: %v", e, w.Body, err)
	}
}

// requestIDShape is the documented rule for an inbound X-Request-Id.
var requestIDShape = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)

// FuzzRequestID checks the RequestID middleware on a random inbound
// X-Request-Id (and a second value of the header). Properties: it never
// panics; an id is kept exactly when it is 1–128 characters of
// [A-Za-z0-9._-] holding no API key prefix (design.md, ValidRequestID),
// and is then echoed unchanged; any other is replaced by a new
// "req_<ulid>"; the handler's RequestIDFrom, the response header and an
// error's details.request_id are the same id. Seeds live in
// testdata/fuzz/FuzzRequestID.
func FuzzRequestID(f *testing.F) {
	for _, s := range []string{"", "abc-123_X.y", strings.Repeat("a", 128), strings.Repeat("a", 129),
		"a b", "réq", "req_01JD0000000000000000000000", "x-tg_live_abc", "TG_LIVE_abc", "a\r\nb", "a\x00"} {
		f.Add(s, "")
	}
	f.Add("ok", "second")
	f.Fuzz(func(t *testing.T, inbound, second string) {
		var seen string
		h := middleware.RequestID(nil)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			seen = middleware.RequestIDFrom(r.Context())
			apierror.Write(w, r, apierror.New(apierror.NotFound, ""))
		}))
		r := httptest.NewRequest("GET", "/", nil)
		if inbound != "" {
			r.Header["X-Request-Id"] = []string{inbound}
			if second != "" {
				r.Header["X-Request-Id"] = append(r.Header["X-Request-Id"], second)
			}
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		got := w.Header().Get("X-Request-Id")
		keep := requestIDShape.MatchString(inbound) && !auth.Mentions(inbound)
		if keep != middleware.ValidRequestID(inbound) {
			t.Fatalf("ValidRequestID(%q) = %v, want %v", inbound, !keep, keep)
		}
		switch {
		case keep && got != inbound:
			t.Fatalf("X-Request-Id %q replaced by %q", inbound, got)
		case !keep && !ulidID.MatchString(got):
			t.Fatalf("X-Request-Id %q replaced by %q, want a new req_<ulid>", inbound, got)
		case !requestIDShape.MatchString(got):
			t.Fatalf("X-Request-Id %q breaks the documented rule", got)
		case seen != got:
			t.Fatalf("RequestIDFrom = %q, header %q", seen, got)
		}
		if e := apierror.Decode(w.Result()); e.RequestID() != got || e.Code != apierror.NotFound {
			t.Fatalf("details.request_id = %q (code %s), header %q", e.RequestID(), e.Code, got)
		}
	})
}

// FuzzIdempotencyKey checks the Idempotency-Key header rule (design.md:
// one value of at most 255 printable ASCII characters) on random values.
// Properties: it never panics; a value is accepted exactly when it is one
// value of 1–255 bytes from 0x20–0x7e, and is returned unchanged; any
// other is a 400 INVALID_REQUEST with details.field Idempotency-Key and a
// reason. Seeds live in testdata/fuzz/FuzzIdempotencyKey.
func FuzzIdempotencyKey(f *testing.F) {
	for _, s := range []string{"k", "", " ", strings.Repeat("k", 255), strings.Repeat("k", 256), "idk_é", "a\tb", "\x7f", "~"} {
		f.Add(s, false)
	}
	f.Add("k", true)
	f.Fuzz(func(t *testing.T, key string, repeated bool) {
		vals := []string{key}
		if repeated {
			vals = append(vals, key)
		}
		got, err := middleware.CheckIdempotencyKey(vals)
		want := !repeated && len(key) >= 1 && len(key) <= middleware.MaxIdempotencyKeyLen &&
			!strings.ContainsFunc(key, func(c rune) bool { return c < 0x20 || c > 0x7e })
		if want {
			if err != nil || got != key {
				t.Fatalf("CheckIdempotencyKey(%q) = %q, %v; want it kept", vals, got, err)
			}
			return
		}
		var e *apierror.Error
		if !errors.As(err, &e) || e.Code != apierror.InvalidRequest || e.HTTPStatus() != http.StatusBadRequest {
			t.Fatalf("CheckIdempotencyKey(%q) = %q, %v; want 400 INVALID_REQUEST", vals, got, err)
		}
		if e.Details["field"] != middleware.HeaderIdempotencyKey || e.Details["reason"] == "" || got != "" {
			t.Fatalf("CheckIdempotencyKey(%q) details %v, key %q", vals, e.Details, got)
		}
		checkEnvelope(t, e)
	})
}
