package logjson_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/internal/testenv"
	"github.com/tollgate-dev/tollgate/logjson"
)

// TestAccessMatchesJSONHandler checks that the fast path writes the same
// bytes as slog.JSONHandler given the same fields (Access.Attrs), for
// strings that need escaping.
func TestAccessMatchesJSONHandler(t *testing.T) {
	strs := []string{"", "plain", `q"uote`, `back\slash`, "new\nline\t\r", "\x00\x1f\x7f", "héllo ✓",
		"bad \xff utf8", "</script>&", "line\u2028sep\u2029para", "abcdefg\u2028", "\xe2\x80", strings.Repeat("ab\x01", 3000)}
	tm := time.Date(2026, 11, 22, 10, 0, 1, 234567891, time.UTC)
	for _, s := range strs {
		for _, lv := range []slog.Level{slog.LevelInfo, slog.LevelError, slog.LevelWarn + 1} {
			a := logjson.Access{Time: tm, Level: lv, RequestID: s, Method: s, Route: s, Path: s, Status: 499,
				Code: s, Bytes: 3, Duration: 1234 * time.Microsecond, KeyID: s, Error: s}
			var fast, std bytes.Buffer
			logjson.New(&fast, nil).Access(&a)
			r := slog.NewRecord(tm, lv, logjson.AccessMessage, 0)
			r.AddAttrs(a.Attrs()...)
			_ = slog.NewJSONHandler(&std, &slog.HandlerOptions{ReplaceAttr: func(_ []string, at slog.Attr) slog.Attr {
				if at.Key == slog.TimeKey {
					return slog.String(slog.TimeKey, at.Value.Time().Format("2006-01-02T15:04:05.000Z"))
				}
				return at
			}}).Handle(context.Background(), r)
			if fast.String() != std.String() {
				t.Errorf("%q at %v: fast path\n%s\nslog.JSONHandler\n%s", s, lv, fast.String(), std.String())
			}
		}
	}
}

// TestConcurrentWriters: many goroutines mixing buffered access lines,
// urgent ones and slog records, into a file, with a small buffer and a
// short flush interval; after Close every line parses and none is lost.
func TestConcurrentWriters(t *testing.T) {
	cases := []struct {
		name string
		opts *logjson.Options
	}{
		{"unbuffered", nil},
		{"buffered", &logjson.Options{BufferSize: 300}},
		{"flushed", &logjson.Options{BufferSize: 4096, FlushInterval: time.Millisecond}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "log")
			f, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			h := logjson.New(f, c.opts)
			l := slog.New(h).With("k", "v\u2028").WithGroup("g")
			const G, N = 16, 200
			var wg sync.WaitGroup
			for g := range G {
				wg.Go(func() {
					for i := range N {
						id := fmt.Sprintf("%d-%d", g, i)
						switch i % 3 {
						case 0:
							h.Access(&logjson.Access{Time: time.Now(), Level: slog.LevelInfo, RequestID: id, Path: "/x\n\"", Status: 200})
						case 1:
							h.Access(&logjson.Access{Time: time.Now(), Level: slog.LevelError, RequestID: id, Status: 500, Error: "e\x00"})
						default:
							l.Info("m", "request_id", id)
						}
					}
				})
			}
			wg.Wait()
			if err := h.Close(); err != nil {
				t.Fatal(err)
			}
			f.Close()
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			sc := bufio.NewScanner(bytes.NewReader(data))
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				var m map[string]any
				if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
					t.Fatalf("line %q: %v", sc.Text(), err)
				}
				id, _ := m["request_id"].(string)
				if g, ok := m["g"].(map[string]any); ok {
					id, _ = g["request_id"].(string)
				}
				seen[id] = true
			}
			if len(seen) != G*N {
				t.Fatalf("%d distinct lines, want %d", len(seen), G*N)
			}
		})
	}
}

// TestFlushInterval: a buffered line reaches the writer by the flusher,
// without Close, Flush or another record.
func TestFlushInterval(t *testing.T) {
	pr, pw := io.Pipe()
	h := logjson.New(pw, &logjson.Options{BufferSize: 1 << 20, FlushInterval: time.Millisecond})
	defer h.Close()
	go h.Access(&logjson.Access{Level: slog.LevelInfo, RequestID: "a"})
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil || !strings.Contains(line, `"request_id":"a"`) {
		t.Fatalf("read %q, %v", line, err)
	}
}

type failWriter struct{ n int }

var errWrite = errors.New("disk full")

func (w *failWriter) Write(p []byte) (int, error) { w.n++; return 0, errWrite }

// TestCloseAndFailures: Close twice, writes after Close, a failing writer.
func TestCloseAndFailures(t *testing.T) {
	var buf testenv.Buffer
	h := logjson.New(&buf, &logjson.Options{BufferSize: 1 << 20, FlushInterval: time.Hour})
	h.Access(&logjson.Access{Level: slog.LevelInfo, RequestID: "a"})
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	h.Access(&logjson.Access{Level: slog.LevelInfo, RequestID: "b"})
	slog.New(h).Info("c")
	if got := strings.Count(buf.String(), "\n"); got != 3 {
		t.Fatalf("%d lines, want 3:\n%s", got, buf.String())
	}

	fw := &failWriter{}
	h = logjson.New(fw, &logjson.Options{BufferSize: 1 << 20})
	h.Access(&logjson.Access{Level: slog.LevelInfo, RequestID: "a"})
	if err := h.Close(); !errors.Is(err, errWrite) {
		t.Fatalf("Close = %v, want %v", err, errWrite)
	}
	if err := slog.New(h).Handler().Handle(context.Background(), slog.NewRecord(time.Now(), slog.LevelInfo, "x", 0)); !errors.Is(err, errWrite) {
		t.Fatalf("Handle = %v, want %v", err, errWrite)
	}
}
