package apierror

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"net/http"
	"testing"
	"time"
)

// TestAppendEnvelopeMatchesMarshal checks the reflection-free encoder
// against json.Marshal on random envelopes: byte for byte, escaping
// included, with and without the success field, and with extra members
// (new keys, or keys the details already hold, which they replace)
// against the merged map.
func TestAppendEnvelopeMatchesMarshal(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	alphabet := []string{"a", "Z", "0", " ", "_", "\"", "\\", "<", ">", "&", "\n", "\t", "\x00", "\x1f", "\x7f", "é", "✓", "\u2028", "\u2029", "\xff", "\xc3", "/"}
	str := func() string {
		n := r.IntN(12)
		s := ""
		for range n {
			s += alphabet[r.IntN(len(alphabet))]
		}
		return s
	}
	value := func() any {
		switch r.IntN(7) {
		case 0:
			return str()
		case 1:
			return r.IntN(2000) - 1000
		case 2:
			return []int64{0, math.MaxInt64, math.MinInt64, -1}[r.IntN(4)]
		case 3:
			return r.IntN(2) == 0
		case 4:
			return Code(str())
		case 5:
			if r.IntN(4) == 0 {
				return []string(nil)
			}
			s := make([]string, r.IntN(3))
			for i := range s {
				s[i] = str()
			}
			return s
		}
		return "req_" + str()
	}
	for i := range 20000 {
		details := Details{}
		if i%1000 == 0 {
			details = nil
		}
		for range r.IntN(6) {
			if details != nil {
				details[str()] = value()
			}
		}
		var extra []member
		for range r.IntN(3) {
			key := "request_id"
			if k := r.IntN(3); k == 1 {
				key = str()
			} else if k == 2 && len(details) > 0 {
				for dk := range details { // a key the details hold
					key = dk
					break
				}
			}
			if indexMember(extra, key) < 0 {
				extra = append(extra, member{key, value()})
			}
		}
		code, msg, success := Code(str()), str(), i%2 == 0
		got, ok := appendEnvelope(nil, code, msg, details, extra, success)
		if !ok {
			t.Fatalf("appendEnvelope refused %#v + %#v", details, extra)
		}
		wantDetails := details
		if len(extra) > 0 {
			wantDetails = merged(details, extra)
		}
		env := envelope{Error: wireBody{Code: code, Message: msg, Details: wantDetails}}
		if success {
			env.Success = &falseValue
		}
		want, err := json.Marshal(env)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Fatalf("appendEnvelope:\n got %s\nwant %s", got, want)
		}
	}
}

// TestAppendEnvelopeFallsBack checks that values the fast encoder does not
// know leave the buffer untouched and report false.
func TestAppendEnvelopeFallsBack(t *testing.T) {
	for _, v := range []any{1.5, map[string]any{"a": 1}, []FieldError{{Field: "f"}}, nil, uint(3)} {
		b, ok := appendEnvelope([]byte("x"), InvalidRequest, "m", Details{"k": v}, nil, false)
		if ok || string(b) != "x" {
			t.Errorf("appendEnvelope with %#v = %q, %v; want untouched and false", v, b, ok)
		}
	}
}

// BenchmarkEnvelope compares the reflection-free encoder with json.Marshal
// on a typical refusal (429 RATE_LIMITED details).
func BenchmarkEnvelope(b *testing.B) {
	details := Details{"limit": 100, "window": "1m", "retry_after": 12, "policy": "key", "request_id": "req_01M81NM5PRCMDJZ2SKJ3E4SQ87"}
	msg := "Rate limit exceeded. Retry after 12 seconds."
	b.Run("impl=marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = json.Marshal(envelope{Error: wireBody{Code: RateLimited, Message: msg, Details: details}})
		}
	})
	b.Run("impl=append", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = appendEnvelope(make([]byte, 0, 256), RateLimited, msg, details, nil, false)
		}
	})
}

// discardWriter is a ResponseWriter that keeps only its header map.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(int)             {}

// BenchmarkWrite is one constant refusal (503 maintenance, built once as
// the middleware builds it) written for a request that has its id: the
// path a refused flood takes.
func BenchmarkWrite(b *testing.B) {
	e := New(ServiceUnavailable, "The service is down for maintenance.").With("reason", "maintenance").WithRetryAfter(time.Minute)
	r, _ := http.NewRequest("POST", "http://localhost/v1/leads", nil)
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		w.h[HeaderRequestID] = []string{"req_01M81ZHPT9P9FMYKATMECZTM0B"}
		Write(w, r, e)
	}
}
