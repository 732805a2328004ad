package apierror_test

import (
	"bytes"
	"encoding/json"
	"io"
	"math/big"
	"mime"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tollgate-dev/tollgate/apierror"
)

// bodyReader is a response body that counts what is read of it and
// whether it was closed.
type bodyReader struct {
	r      io.Reader
	read   int
	closed bool
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.read += n
	return n, err
}

func (b *bodyReader) Close() error { b.closed = true; return nil }

// FuzzDecode checks Decode, the client's reading of any non-2xx response,
// on a random status, Content-Type, body and X-Request-Id. Properties: it
// never panics and always returns an *Error with Status the status
// received and a code; the headers are a copy of the response's; the body
// is read up to 1 MiB and not closed; an envelope or problem+json body
// under a JSON type gives its own code and message (checked against
// encoding/json's reading of the body), any other body a Foreign error
// with the status's catalogue code and default message; details.request_id
// is the body's when it is a non-empty string, else the header's. Seeds
// live in testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	seeds := []struct {
		status      int
		ctype, body string
		id          string
	}{
		{404, "application/json; charset=utf-8", `{"error":{"code":"NOT_FOUND","message":"Lead not found","details":{"request_id":"req_1","resource":"lead"}}}`, "req_1"},
		{429, "application/problem+json", `{"type":"x","title":"t","status":429,"detail":"Slow down.","instance":"/v1","code":"RATE_LIMITED","request_id":"req_2","retry_after":3}`, ""},
		{400, "application/json", `{"success":false,"error":{"code":"INVALID_REQUEST","message":"m","details":["a"]}}`, "req_3"},
		{502, "text/html", "<html>Bad Gateway</html>", ""},
		{500, "application/json", "{not json", "req_4"},
		{418, "application/vnd.x+json", `{"error":"teapot"}`, ""},
		{409, "application/notjson", `{"error":{"code":"CONFLICT","message":"m"}}`, ""},
		{0, "", "", ""},
		{-1, "application/json", `{"error":{"code":"","message":"m"}}`, "x"},
		{503, "application/problem+json", `{"code":5}`, ""},
		{401, "application/json", `{"error":{"code":"UNAUTHORIZED","message":"m","details":{"request_id":5}}}`, "req_5"},
	}
	for _, s := range seeds {
		f.Add(s.status, s.ctype, []byte(s.body), s.id)
	}
	f.Fuzz(func(t *testing.T, status int, ctype string, body []byte, id string) {
		h := http.Header{}
		if ctype != "" {
			h.Set("Content-Type", ctype)
		}
		if id != "" {
			h.Set("X-Request-Id", id)
		}
		br := &bodyReader{r: bytes.NewReader(body)}
		e := apierror.Decode(&http.Response{StatusCode: status, Header: h, Body: br})
		switch {
		case e == nil:
			t.Fatal("Decode returned nil")
		case e.Status != status || status != 0 && e.HTTPStatus() != status:
			t.Fatalf("Status %d (HTTPStatus %d), want %d", e.Status, e.HTTPStatus(), status)
		case e.Code == "":
			t.Fatalf("no code for %d %q %q", status, ctype, body)
		case br.closed:
			t.Fatal("Decode closed the body")
		case br.read > 1<<20 || br.read < min(len(body), 1<<20):
			t.Fatalf("read %d bytes of %d", br.read, len(body))
		case !cmp.Equal(e.Header, h):
			t.Fatalf("Header %v, want %v", e.Header, h)
		}
		h.Set("X-Mutated", "1")
		if e.Header.Get("X-Mutated") != "" {
			t.Fatal("Header shares the response's map")
		}

		wantCode, wantMsg, wantID, ok := readBody(ctype, body)
		if !ok {
			wantCode = apierror.CodeForStatus(status)
			wantMsg, wantID = wantCode.Message(), ""
		}
		if e.Foreign == ok || e.Code != wantCode || e.Message != wantMsg {
			t.Fatalf("Decode(%d, %q, %q) = %s %q foreign %v; want %s %q foreign %v", status, ctype, body, e.Code, e.Message, e.Foreign, wantCode, wantMsg, !ok)
		}
		if wantID == "" {
			wantID = id
		}
		if e.RequestID() != wantID {
			t.Fatalf("RequestID() = %q, want %q (body %q, header %q)", e.RequestID(), wantID, body, id)
		}
	})
}

// readBody reads a tollgate error body as the contract describes it, with
// encoding/json: ok when ctype is JSON (application/json or a +json type)
// and body an envelope or problem+json with a non-empty code; id is
// details.request_id (problem+json: request_id) when a string.
func readBody(ctype string, body []byte) (code apierror.Code, message, id string, ok bool) {
	mt, _, _ := mime.ParseMediaType(ctype)
	if mt != "application/json" && !strings.HasSuffix(mt, "+json") {
		return "", "", "", false
	}
	if mt == "application/problem+json" {
		var p map[string]any
		if json.Unmarshal(body, &p) != nil {
			return "", "", "", false
		}
		c, _ := p["code"].(string)
		message, _ = p["detail"].(string)
		id, _ = p["request_id"].(string)
		return apierror.Code(c), message, id, c != ""
	}
	var env struct {
		Error *struct {
			Code    string          `json:"code"`
			Message string          `json:"message"`
			Details json.RawMessage `json:"details"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &env) != nil || env.Error == nil || env.Error.Code == "" {
		return "", "", "", false
	}
	var d map[string]any
	_ = json.Unmarshal(env.Error.Details, &d)
	id, _ = d["request_id"].(string)
	return apierror.Code(env.Error.Code), env.Error.Message, id, true
}

// problemMembers are the members of RFC 9457 that problem+json writes for
// every error: details of these names do not survive that format.
var problemMembers = []string{"type", "title", "status", "detail", "instance", "code"}

// FuzzWriteDecode checks that what Write sends, Decode reads back: for a
// random code (any of the catalogue, or a random string), message,
// details (a string, an integer, a list, a bool, a nested object), Accept
// header, success field option and X-Request-Id, the decoded error has
// the code Write sent (INTERNAL_ERROR with its generic message for
// INTERNAL_ERROR and codes outside the catalogue), the message (as JSON
// carries it: invalid UTF-8 becomes U+FFFD), the status, details.request_id
// equal to the X-Request-Id header, and the same details, in the envelope
// (with and without "success") and in problem+json (whose own member
// names are not details). Write picks problem+json only for an Accept
// that names it, always for Accept: application/problem+json. Seeds live
// in testdata/fuzz/FuzzWriteDecode.
func FuzzWriteDecode(f *testing.F) {
	f.Add(uint8(0), "", "Field name is bad.", "field", "name", int64(7), "", false, "req_1")
	f.Add(uint8(15), "", "Retry after 3 seconds.", "retry_after", "3", int64(3), "application/problem+json", true, "")
	f.Add(uint8(10), "", "", "retry_after", "", int64(0), "", true, "")
	f.Add(uint8(0x80|3), "", "<b>&amp;</b> \u2028 \xff", "type", "x", int64(1)<<60, "application/problem+json;q=0.5, application/json;q=0.1", false, "r")
	f.Add(uint8(200), "NOT_A_CODE", "secret internal text", "request_id", "forged", int64(-1), "*/*", true, "id")
	f.Add(uint8(17), "", "boom", "", "", int64(0), "application/PROBLEM+json", false, "")
	f.Fuzz(func(t *testing.T, codeIdx uint8, rawCode, message, key, sval string, n int64, accept string, success bool, id string) {
		codes := apierror.Codes()
		code := apierror.Code(rawCode)
		if int(codeIdx&0x7f) < len(codes) {
			code = codes[codeIdx&0x7f]
		}
		e := apierror.New(code, message).With("n", n).With("list", []string{sval, key}).With("flag", success)
		if codeIdx&0x80 != 0 {
			e.With("nested", map[string]any{"v": sval, "n": n})
		}
		e.With(key, sval)
		wantCode, wantMsg := code, e.Message
		if code == apierror.InternalError || !code.Known() {
			wantCode, wantMsg = apierror.InternalError, apierror.InternalError.Message()
		}
		r := httptest.NewRequest("GET", "/v1/x", nil)
		if accept != "" {
			r.Header.Set("Accept", accept)
		}
		r = r.WithContext(apierror.WithOptions(r.Context(), apierror.Options{SuccessField: success}))
		w := httptest.NewRecorder()
		if id != "" {
			w.Header()["X-Request-Id"] = []string{id}
		}
		apierror.Write(w, r, e)
		resp := w.Result()
		ct := resp.Header.Get("Content-Type")
		problem := ct == apierror.ContentTypeProblem
		switch {
		case ct != apierror.ContentTypeJSON && !problem:
			t.Fatalf("Content-Type %q", ct)
		case problem && !strings.Contains(strings.ToLower(accept), "problem+json"):
			t.Fatalf("problem+json for Accept %q", accept)
		case !problem && accept == apierror.ContentTypeProblem:
			t.Fatalf("the envelope for Accept %q", accept)
		case resp.StatusCode != wantCode.Status():
			t.Fatalf("status %d for %s", resp.StatusCode, wantCode)
		}
		sentID := resp.Header.Get("X-Request-Id")
		if id != "" && sentID != id || sentID == "" {
			t.Fatalf("X-Request-Id %q, set %q", sentID, id)
		}
		if !problem {
			var top map[string]json.RawMessage
			if err := json.Unmarshal(w.Body.Bytes(), &top); err != nil {
				t.Fatalf("envelope %s: %v", w.Body, err)
			}
			if s, ok := top["success"]; ok != success || ok && string(s) != "false" {
				t.Fatalf("success field %s (option %v): %s", s, success, w.Body)
			}
		}

		// An id or a message that is not UTF-8 reaches the body as JSON
		// carries it.
		got := apierror.Decode(resp)
		if got.Foreign || got.Code != wantCode || got.Message != wire(t, wantMsg) || got.Status != resp.StatusCode || got.RequestID() != wire(t, sentID) {
			t.Fatalf("Decode = %s %q foreign %v status %d request_id %q; want %s %q %d %q (body %s)",
				got.Code, got.Message, got.Foreign, got.Status, got.RequestID(), wantCode, wantMsg, resp.StatusCode, sentID, w.Body)
		}
		want := map[string]any{}
		for k, v := range e.Details {
			want[k] = v
		}
		want["request_id"] = sentID
		if code == apierror.IdempotencyKeyInUse && (want["retry_after"] == nil || want["retry_after"] == "") {
			want["retry_after"] = 1 // Write adds it with Retry-After: 1
		}
		if problem {
			for _, k := range problemMembers {
				delete(want, k)
			}
		}
		if diff := cmp.Diff(wire(t, want), wire(t, got.Details)); diff != "" {
			t.Fatalf("details differ (body %s):\n%s", w.Body, diff)
		}
	})
}

// wire returns v as JSON carries it: encoded and decoded by encoding/json.
func wire[T any](t *testing.T, v T) T {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out T
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// FuzzParseRetryAfter checks ParseRetryAfter and ParseRateLimit on random
// header values and clocks. Properties: they never panic; a wait is never
// negative nor above 2^31 seconds, and is 0 when ok is false; a
// Retry-After of decimal digits is that many seconds (clamped to 2^31); an
// HTTP date is the wait from the response's Date (or from now without
// one), at least 0; the seconds and HTTP-date forms of a wait n round-trip
// to n; ParseRateLimit is ok exactly when the three headers are decimal
// integers, and then returns them. Seeds live in
// testdata/fuzz/FuzzParseRetryAfter.
func FuzzParseRetryAfter(f *testing.F) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	f.Add("17", "", now.Unix(), uint32(17), "100", "42", "1800000000")
	f.Add("99999999999999999999", "", now.Unix(), uint32(1<<31), "x", "0", "")
	f.Add(" -3 ", now.Format(http.TimeFormat), now.Unix(), uint32(0), "1", "-1", "-9223372036854775808")
	f.Add(now.Add(time.Minute).Format(http.TimeFormat), now.Add(-time.Hour).Format(http.TimeFormat), now.Unix()+3600, uint32(3600), "+1", "1", "9223372036854775807")
	f.Add("Sunday, 22-Nov-26 10:00:00 GMT", "Mon Jan  2 15:04:05 2006", int64(0), uint32(4294967295), "", "", "")
	f.Add("+5", "garbage", int64(-1), uint32(1), "1.5", "1e3", "0x10")
	f.Fuzz(func(t *testing.T, retryAfter, date string, nowUnix int64, n uint32, limit, remaining, reset string) {
		// Whole seconds within the years HTTP dates can write.
		nowUnix %= 200_000_000_000
		if nowUnix < 0 {
			nowUnix = -nowUnix
		}
		now := time.Unix(nowUnix, 0).UTC()
		const maxWait = time.Duration(1<<31) * time.Second
		h := http.Header{}
		if retryAfter != "" {
			h.Set("Retry-After", retryAfter)
		}
		if date != "" {
			h.Set("Date", date)
		}
		d, ok := apierror.ParseRetryAfter(h, now)
		if d < 0 || d > maxWait || !ok && d != 0 {
			t.Fatalf("ParseRetryAfter(%q, Date %q) = %v, %v", retryAfter, date, d, ok)
		}
		v := strings.TrimSpace(retryAfter)
		if digits(v) {
			s, _ := new(big.Int).SetString(v, 10)
			want := maxWait
			if s.IsInt64() && s.Int64() <= int64(maxWait/time.Second) {
				want = time.Duration(s.Int64()) * time.Second
			}
			if !ok || d != want {
				t.Fatalf("ParseRetryAfter(%q) = %v, %v; want %v", retryAfter, d, ok, want)
			}
		}
		if at, err := http.ParseTime(v); err == nil && !digits(v) && !strings.HasPrefix(v, "+") {
			from := now
			if sd, err := http.ParseTime(date); err == nil {
				from = sd
			}
			if want := min(max(at.Sub(from), 0), maxWait); !ok || d != want {
				t.Fatalf("ParseRetryAfter(%q, Date %q) = %v, %v; want %v", retryAfter, date, d, ok, want)
			}
		}

		// Round trips of a wait of n seconds, in both forms.
		want := min(time.Duration(n)*time.Second, maxWait)
		secs := http.Header{"Retry-After": {strconv.FormatUint(uint64(n), 10)}}
		if d, ok := apierror.ParseRetryAfter(secs, now); !ok || d != want {
			t.Fatalf("Retry-After: %d = %v, %v; want %v", n, d, ok, want)
		}
		server := now.Add(-time.Duration(n%7200) * time.Second) // a local clock ahead of the server's
		dated := http.Header{"Date": {server.Format(http.TimeFormat)}, "Retry-After": {server.Add(time.Duration(n) * time.Second).Format(http.TimeFormat)}}
		if d, ok := apierror.ParseRetryAfter(dated, now); !ok || d != want {
			t.Fatalf("Retry-After: %s (Date %s) = %v, %v; want %v", dated.Get("Retry-After"), dated.Get("Date"), d, ok, want)
		}

		rh := http.Header{}
		for k, v := range map[string]string{"X-RateLimit-Limit": limit, "X-RateLimit-Remaining": remaining, "X-RateLimit-Reset": reset} {
			if v != "" {
				rh.Set(k, v)
			}
		}
		rl, ok := apierror.ParseRateLimit(rh)
		l, err1 := strconv.ParseInt(limit, 10, strconv.IntSize)
		rem, err2 := strconv.ParseInt(remaining, 10, strconv.IntSize)
		rs, err3 := strconv.ParseInt(reset, 10, 64)
		if wantOK := err1 == nil && err2 == nil && err3 == nil; ok != wantOK {
			t.Fatalf("ParseRateLimit(%q, %q, %q) ok = %v", limit, remaining, reset, ok)
		}
		if ok && (int64(rl.Limit) != l || int64(rl.Remaining) != rem || rl.Reset.Unix() != rs) {
			t.Fatalf("ParseRateLimit(%q, %q, %q) = %+v", limit, remaining, reset, rl)
		}
		if !ok && rl != (apierror.RateLimit{}) {
			t.Fatalf("ParseRateLimit(%q, %q, %q) refused with %+v", limit, remaining, reset, rl)
		}
	})
}

// digits reports whether s is an optional "+" and decimal digits, the
// form strconv.ParseInt reads as a non-negative number.
func digits(s string) bool {
	s = strings.TrimPrefix(s, "+")
	return s != "" && strings.Trim(s, "0123456789") == ""
}
