package apierror

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxDecodeBytes bounds how much of an error body Decode reads.
const maxDecodeBytes = 1 << 20

// RateLimit is the rate-limit state a response announced in its
// X-RateLimit-* headers.
type RateLimit struct {
	Limit     int
	Remaining int
	Reset     time.Time
}

// ParseRateLimit reads X-RateLimit-Limit, -Remaining and -Reset (unix
// seconds) from h. ok is false unless all three parse.
func ParseRateLimit(h http.Header) (rl RateLimit, ok bool) {
	l, err1 := strconv.Atoi(h.Get("X-RateLimit-Limit"))
	rem, err2 := strconv.Atoi(h.Get("X-RateLimit-Remaining"))
	reset, err3 := strconv.ParseInt(h.Get("X-RateLimit-Reset"), 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return RateLimit{}, false
	}
	return RateLimit{Limit: l, Remaining: rem, Reset: time.Unix(reset, 0)}, true
}

// maxRetryAfter is the longest wait ParseRetryAfter returns (about 68
// years): a longer one is clamped to it.
const maxRetryAfter = 1 << 31 * time.Second

// ParseRateLimitReset returns the wait from now until h's
// X-RateLimit-Reset (unix seconds) when its X-RateLimit-Remaining is 0 or
// absent: the rule a client applies when no Retry-After says more. ok is
// false when requests remain, the reset does not parse, or it is not
// ahead of now. A reset too far to hold, even one too large for an
// int64, is clamped to 2^31 seconds, as ParseRetryAfter clamps, not
// dropped.
func ParseRateLimitReset(h http.Header, now time.Time) (time.Duration, bool) {
	if rem := strings.TrimSpace(h.Get("X-RateLimit-Remaining")); rem != "" && rem != "0" {
		return 0, false
	}
	// Out of range, ParseInt returns the int64 of the same sign that is
	// furthest from zero. The reset is compared in seconds first:
	// time.Unix overflows near the int64 limits.
	reset, err := strconv.ParseInt(strings.TrimSpace(h.Get("X-RateLimit-Reset")), 10, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, false
	}
	secs := now.Unix()
	if reset <= secs {
		return 0, false
	}
	if uint64(reset-secs) > uint64(maxRetryAfter/time.Second) {
		return maxRetryAfter, true
	}
	return time.Unix(reset, 0).Sub(now), true
}

// ParseRetryAfter reads a Retry-After value, either delay seconds or an
// HTTP date, taken relative to the response's Date header when it has one
// (both are the server's clock, so a skewed local clock does not shift
// the wait) and else to now. ok is false if h has none or it does not
// parse. A date in the past gives 0. A wait longer than 2^31 seconds,
// even one too large for an int64, is clamped to 2^31 seconds rather than
// dropped, so that a caller's cap on waits still sees that it is too long.
func ParseRetryAfter(h http.Header, now time.Time) (d time.Duration, ok bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	// Out of range, ParseInt returns the int64 of the same sign that is
	// furthest from zero.
	if s, err := strconv.ParseInt(v, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		if s < 0 {
			return 0, false
		}
		if s > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter, true
		}
		return time.Duration(s) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	if date, err := http.ParseTime(h.Get("Date")); err == nil {
		now = date
	}
	return min(max(t.Sub(now), 0), maxRetryAfter), true
}

// Decode turns a non-2xx response into an *Error. A tollgate envelope or
// problem+json body, sent as application/json or a +json type, gives its
// code, message and details (details that are not an object are
// dropped); any other body (an HTML page from a proxy, empty, garbage, or
// JSON under another type) gives an *Error built from the status, with
// Foreign set. The response's headers are kept in Header (for
// Retry-After and the rate-limit headers), Status is the status received,
// and details.request_id falls back to the X-Request-Id header.
//
// Decode reads at most 1 MiB of the body and does not close it.
func Decode(resp *http.Response) *Error {
	var data []byte
	if resp.Body != nil {
		data, _ = io.ReadAll(io.LimitReader(resp.Body, maxDecodeBytes))
	}
	e := decodeBody(resp.Header.Get("Content-Type"), data)
	if e == nil {
		code := CodeForStatus(resp.StatusCode)
		e = &Error{Code: code, Message: code.Message(), Foreign: true}
	}
	e.Status = resp.StatusCode
	e.Header = resp.Header.Clone()
	if e.RequestID() == "" {
		if id := resp.Header.Get(HeaderRequestID); id != "" {
			e.With("request_id", id)
		}
	}
	return e
}

func decodeBody(contentType string, data []byte) *Error {
	mt, _, _ := mime.ParseMediaType(contentType)
	if !(mt == "application/json" || strings.HasSuffix(mt, "+json")) || len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	if mt == "application/problem+json" {
		var p map[string]any
		if unmarshalObject(data, &p) != nil {
			return nil
		}
		code, _ := p["code"].(string)
		if code == "" {
			return nil
		}
		msg, _ := p["detail"].(string)
		d := Details{}
		for k, v := range p {
			switch k {
			case "type", "title", "status", "detail", "instance", "code":
			default:
				d[k] = v
			}
		}
		return &Error{Code: Code(code), Message: msg, Details: d}
	}
	// details is read on its own: one that is not an object is dropped,
	// and the code and message are kept.
	var env struct {
		Error *struct {
			Code    string          `json:"code"`
			Message string          `json:"message"`
			Details json.RawMessage `json:"details"`
		} `json:"error"`
	}
	if json.Unmarshal(data, &env) != nil || env.Error == nil || env.Error.Code == "" {
		return nil
	}
	var d Details
	if len(env.Error.Details) > 0 && unmarshalObject(env.Error.Details, &d) != nil {
		d = nil
	}
	return &Error{Code: Code(env.Error.Code), Message: env.Error.Message, Details: d}
}

// unmarshalObject decodes the JSON object data into m as json.Unmarshal
// does (numbers become float64), except that a number too large for a
// float64 (1e400) stays a json.Number instead of failing the whole object:
// a huge retry_after must not cost the request_id beside it.
func unmarshalObject(data []byte, m *map[string]any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(m); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("apierror: data after the JSON object")
	}
	for k, v := range *m {
		(*m)[k] = floats(v)
	}
	return nil
}

// floats turns the json.Numbers in v that fit a float64 into float64s.
func floats(v any) any {
	switch x := v.(type) {
	case json.Number:
		if f, err := x.Float64(); err == nil {
			return f
		}
	case map[string]any:
		for k, e := range x {
			x[k] = floats(e)
		}
	case []any:
		for i, e := range x {
			x[i] = floats(e)
		}
	}
	return v
}
