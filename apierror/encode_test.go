package apierror

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
)

// TestAppendEnvelopeMatchesMarshal checks the reflection-free encoder
// against json.Marshal on random envelopes: byte for byte, escaping
// included, with and without the success field.
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
		code, msg, success := Code(str()), str(), i%2 == 0
		got, ok := appendEnvelope(nil, code, msg, details, success)
		if !ok {
			t.Fatalf("appendEnvelope refused %#v", details)
		}
		env := envelope{Error: wireBody{Code: code, Message: msg, Details: details}}
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
		b, ok := appendEnvelope([]byte("x"), InvalidRequest, "m", Details{"k": v}, false)
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
			_, _ = appendEnvelope(make([]byte, 0, 256), RateLimited, msg, details, false)
		}
	})
}
