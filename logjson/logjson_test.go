package logjson_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/logjson"
)

func TestAppendString(t *testing.T) {
	tests := []string{"", "plain", `q"uote`, `back\slash`, "new\nline\t\r", "\x00\x1f", "héllo ✓", "bad \xff utf8", "</script>"}
	for _, s := range tests {
		t.Run(s, func(t *testing.T) {
			b := logjson.AppendString(nil, s)
			var got string
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatalf("AppendString(%q) = %s: not JSON: %v", s, b, err)
			}
			if want := strings.ToValidUTF8(s, "\ufffd"); got != want {
				t.Errorf("round trip of %q = %q, want %q", s, got, want)
			}
		})
	}
}

func TestAccessLine(t *testing.T) {
	var buf bytes.Buffer
	h := logjson.New(&buf, nil)
	h.Access(&logjson.Access{
		Time: time.Date(2026, 11, 22, 10, 0, 1, 234567891, time.UTC), Level: slog.LevelInfo,
		RequestID: "req_1", Method: "GET", Route: "GET /x/{id}", Path: "/x/\"1\"", Status: 200,
		Bytes: 12, Duration: 1500 * time.Microsecond, KeyID: "key_1",
	})
	want := `{"time":"2026-11-22T10:00:01.234Z","level":"INFO","msg":"request","request_id":"req_1","method":"GET","route":"GET /x/{id}","path":"/x/\"1\"","status":200,"code":"","bytes":12,"duration_ms":1.5,"key_id":"key_1"}` + "\n"
	if got := buf.String(); got != want {
		t.Errorf("line =\n%s\nwant\n%s", got, want)
	}
	// Debug lines are dropped at the default level.
	buf.Reset()
	h.Access(&logjson.Access{Level: slog.LevelDebug})
	if buf.Len() != 0 {
		t.Errorf("debug line written at info level: %s", buf.String())
	}
}

func TestBufferedOrder(t *testing.T) {
	var buf bytes.Buffer
	h := logjson.New(&buf, &logjson.Options{BufferSize: 1 << 20})
	h.Access(&logjson.Access{RequestID: "a", Level: slog.LevelInfo})
	if buf.Len() != 0 {
		t.Fatalf("buffered line written at once")
	}
	slog.New(h).Error("boom", "request_id", "b")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"request_id":"a"`) || !strings.Contains(lines[1], `"msg":"boom"`) {
		t.Fatalf("an error record must flush buffered lines first, in order:\n%s", buf.String())
	}
	h.Access(&logjson.Access{RequestID: "c", Level: slog.LevelInfo})
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"request_id":"c"`) {
		t.Errorf("Close did not flush: %s", buf.String())
	}
	if !strings.Contains(lines[1], `"time":"`) || strings.Count(lines[1], ".") < 1 {
		t.Errorf("time missing: %s", lines[1])
	}
}

// TestAccessUrgency checks which access lines skip the buffer: a 5xx other
// than 503, or a line with an error cause, is written at once (after what
// is buffered); a 503 without a cause, even at ERROR level, waits for the
// flush.
func TestAccessUrgency(t *testing.T) {
	cases := []struct {
		name string
		a    logjson.Access
		now  bool
	}{
		{"200", logjson.Access{Status: 200, Level: slog.LevelInfo}, false},
		{"429", logjson.Access{Status: 429, Level: slog.LevelInfo}, false},
		{"503 overloaded", logjson.Access{Status: 503, Level: slog.LevelError}, false},
		{"502", logjson.Access{Status: 502, Level: slog.LevelError}, true},
		{"504", logjson.Access{Status: 504, Level: slog.LevelError}, true},
		{"503 with a cause", logjson.Access{Status: 503, Level: slog.LevelError, Error: "dial tcp: connection refused"}, true},
		{"500", logjson.Access{Status: 500, Level: slog.LevelError}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			h := logjson.New(&buf, &logjson.Options{BufferSize: 1 << 20})
			h.Access(&logjson.Access{RequestID: "first", Status: 200, Level: slog.LevelInfo})
			c.a.RequestID = "second"
			h.Access(&c.a)
			got := strings.Count(buf.String(), "\n")
			if want := map[bool]int{true: 2, false: 0}[c.now]; got != want {
				t.Fatalf("%d lines written before the flush, want %d:\n%s", got, want, buf.String())
			}
			if err := h.Close(); err != nil {
				t.Fatal(err)
			}
			if i, j := strings.Index(buf.String(), `"first"`), strings.Index(buf.String(), `"second"`); i < 0 || j < i {
				t.Fatalf("lines missing or out of order:\n%s", buf.String())
			}
		})
	}
}

func BenchmarkAccess(b *testing.B) {
	h := logjson.New(discard{}, nil)
	a := &logjson.Access{Time: time.Now(), Level: slog.LevelInfo, RequestID: "req_01JTESTTESTTESTTESTTESTTEST", Method: "GET", Route: "GET /v1/leads/{id}", Path: "/v1/leads/lead_1", Status: 200, Bytes: 321, Duration: time.Millisecond}
	b.ReportAllocs()
	for b.Loop() {
		h.Access(a)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
