// Package logjson is a log/slog JSON handler with a fast path for access
// lines.
//
// General records go through the standard library's slog.JSONHandler.
// Access lines, one per HTTP request, are encoded by appending (no
// reflection, no allocation) in the same JSON shape, and may be buffered
// and flushed in batches, so logging every request does not cost a write
// system call each. An access line that reports a failure (any 5xx but
// 503, or any line with an error cause) and any other record flush the
// buffer first and are written at once, so order is kept and errors reach
// the log immediately. A 503 without a cause (load shedding, maintenance)
// stays buffered: those come in floods, exactly when the server can least
// afford a system call each.
package logjson

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Options configure a Handler.
type Options struct {
	// Level is the minimum level written; nil means slog.LevelInfo.
	Level slog.Leveler
	// BufferSize, when positive, lets access lines collect in memory up to
	// this many bytes before they are written.
	BufferSize int
	// FlushInterval, when positive with BufferSize, flushes buffered
	// access lines at this interval until Close.
	FlushInterval time.Duration
}

// stamp caches the formatted second of the last access line.
type stamp struct {
	sec int64
	b   [19]byte // 2006-01-02T15:04:05
}

// Handler is a slog.Handler writing JSON lines to one io.Writer, plus the
// Access fast path. It is safe for concurrent use.
type Handler struct {
	slog.Handler
	sink  *sink
	level slog.Leveler
	stamp atomic.Pointer[stamp]
}

// appendTime appends t in UTC as 2006-01-02T15:04:05.000Z, formatting the
// date and time of day once per second.
func (h *Handler) appendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	sec := t.Unix()
	s := h.stamp.Load()
	if s == nil || s.sec != sec {
		s = &stamp{sec: sec}
		t.Truncate(time.Second).AppendFormat(s.b[:0], "2006-01-02T15:04:05")
		h.stamp.Store(s)
	}
	b = append(b, s.b[:]...)
	ms := t.Nanosecond() / 1e6
	return append(b, '.', byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10), 'Z')
}

// New returns a Handler writing to w. Call Close to flush and stop the
// background flusher.
func New(w io.Writer, opts *Options) *Handler {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Level == nil {
		o.Level = slog.LevelInfo
	}
	s := &sink{w: w, max: o.BufferSize, stop: make(chan struct{})}
	if o.BufferSize > 0 && o.FlushInterval > 0 {
		s.done = make(chan struct{})
		go s.loop(o.FlushInterval)
	}
	return &Handler{
		Handler: slog.NewJSONHandler(s, &slog.HandlerOptions{Level: o.Level, ReplaceAttr: utcMillis}),
		sink:    s,
		level:   o.Level,
	}
}

// utcMillis formats record times as the access path does:
// 2006-01-02T15:04:05.000Z.
func utcMillis(groups []string, a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey && len(groups) == 0 && a.Value.Kind() == slog.KindTime {
		return slog.String(slog.TimeKey, a.Value.Time().UTC().Format("2006-01-02T15:04:05.000Z"))
	}
	return a
}

// Flush writes buffered access lines.
func (h *Handler) Flush() error { return h.sink.flush() }

// Close flushes buffered lines and stops the background flusher. The
// Handler may still be used; later access lines are written at once.
func (h *Handler) Close() error {
	h.sink.close()
	return h.sink.flush()
}

// Access is one access-log line.
type Access struct {
	Time      time.Time
	Level     slog.Level
	RequestID string
	Method    string
	Route     string
	Path      string
	Status    int
	Code      string
	Bytes     int64
	Duration  time.Duration
	KeyID     string
	Error     string
}

// Attrs returns the fields of a as slog attributes, in the order the fast
// path writes them; for loggers whose handler has no fast path.
func (a *Access) Attrs() []slog.Attr {
	attrs := []slog.Attr{
		slog.String("request_id", a.RequestID),
		slog.String("method", a.Method),
		slog.String("route", a.Route),
		slog.String("path", a.Path),
		slog.Int("status", a.Status),
		slog.String("code", a.Code),
		slog.Int64("bytes", a.Bytes),
		slog.Float64("duration_ms", durationMillis(a.Duration)),
	}
	if a.KeyID != "" {
		attrs = append(attrs, slog.String("key_id", a.KeyID))
	}
	if a.Error != "" {
		attrs = append(attrs, slog.String("error", a.Error))
	}
	return attrs
}

// AccessMessage is the msg of every access line.
const AccessMessage = "request"

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// Access writes one access line if a.Level is enabled. It does not
// allocate. A line with a 5xx status other than 503, or with an error
// cause, is written at once; others are buffered when the Handler buffers.
func (h *Handler) Access(a *Access) {
	if a.Level < h.level.Level() {
		return
	}
	s := h.sink
	urgent := a.Error != "" || a.Status >= 500 && a.Status != 503
	if !urgent && s.max > 0 {
		// Buffered: encode straight into the sink's buffer.
		s.mu.Lock()
		if !s.isClosed() {
			s.buf = h.appendAccess(s.buf, a)
			if len(s.buf) >= s.max {
				_, _ = s.w.Write(s.buf)
				s.buf = s.buf[:0]
			}
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
	}
	bp := bufPool.Get().(*[]byte)
	b := h.appendAccess((*bp)[:0], a)
	_, _ = s.Write(b)
	*bp = b
	bufPool.Put(bp)
}

// appendAccess appends a's JSON line to b.
func (h *Handler) appendAccess(b []byte, a *Access) []byte {
	b = append(b, `{"time":"`...)
	b = h.appendTime(b, a.Time)
	b = append(b, `","level":"`...)
	b = append(b, a.Level.String()...)
	b = append(b, `","msg":"`+AccessMessage+`","request_id":`...)
	b = AppendString(b, a.RequestID)
	b = append(b, `,"method":`...)
	b = AppendString(b, a.Method)
	b = append(b, `,"route":`...)
	b = AppendString(b, a.Route)
	b = append(b, `,"path":`...)
	b = AppendString(b, a.Path)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(a.Status), 10)
	b = append(b, `,"code":`...)
	b = AppendString(b, a.Code)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, a.Bytes, 10)
	b = append(b, `,"duration_ms":`...)
	b = appendMillis(b, a.Duration)
	if a.KeyID != "" {
		b = append(b, `,"key_id":`...)
		b = AppendString(b, a.KeyID)
	}
	if a.Error != "" {
		b = append(b, `,"error":`...)
		b = AppendString(b, a.Error)
	}
	return append(b, "}\n"...)
}

// appendMillis appends d in milliseconds with microsecond precision, as
// strconv.AppendFloat(b, durationMillis(d), 'f', -1, 64) would ("12",
// "0.25", "1.234") for any duration below 2^43 ms (about 279 years, past
// which the float's digits run out), without the float formatting.
func appendMillis(b []byte, d time.Duration) []byte {
	us := d.Microseconds()
	if us < 0 {
		b = append(b, '-')
		us = -us
	}
	b = strconv.AppendInt(b, us/1000, 10)
	frac := us % 1000
	if frac == 0 {
		return b
	}
	b = append(b, '.', byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10))
	for b[len(b)-1] == '0' {
		b = b[:len(b)-1]
	}
	return b
}

func durationMillis(d time.Duration) float64 {
	return float64(d.Microseconds()) / 1000
}

// WithAttrs returns the standard handler with attrs; the result has no
// access fast path.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler { return h.Handler.WithAttrs(attrs) }

// WithGroup returns the standard handler with a group; the result has no
// access fast path.
func (h *Handler) WithGroup(name string) slog.Handler { return h.Handler.WithGroup(name) }

// Handle writes r as a JSON line, after any buffered access lines.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error { return h.Handler.Handle(ctx, r) }

const hex = "0123456789abcdef"

// safe marks the bytes AppendString copies as they are: printable ASCII
// other than '"' and '\\'.
var safe = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// safeWord reports whether the 8 bytes of x (loaded from a string) are
// all safe (see safe), testing them at once: no byte below 0x20, none with
// the high bit set, none equal to '"' or '\\'.
func safeWord(x uint64) bool {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	q := x ^ (lo * '"')
	bs := x ^ (lo * '\\')
	// (v - lo) &^ v has a high bit set where v has a zero byte (the classic
	// test, exact as to whether there is one); x - 0x20·lo likewise where x
	// has a byte below 0x20.
	return ((x-lo*0x20)&^x|(q-lo)&^q|(bs-lo)&^bs|x)&hi == 0
}

// load64 returns the 8 bytes of s at i as a little-endian word; the
// compiler turns it into one load.
func load64(s string, i int) uint64 {
	s = s[i : i+8]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// AppendString appends s to b as a JSON string, escaping quotes,
// backslashes, control characters and U+2028 and U+2029, and replacing
// invalid UTF-8 with U+FFFD, as slog.JSONHandler does.
func AppendString(b []byte, s string) []byte {
	b = append(b, '"')
	i := 0
	for i+8 <= len(s) && safeWord(load64(s, i)) {
		i += 8
	}
	for i < len(s) && safe[s[i]] {
		i++
	}
	if i == len(s) { // the common case: nothing to escape
		b = append(b, s...)
		return append(b, '"')
	}
	start := 0
	for i < len(s) {
		c := s[i]
		if safe[c] {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			// Valid JSON, but not JavaScript: escaped as slog.JSONHandler
			// does.
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// sink serialises writes to w and holds buffered access lines.
type sink struct {
	mu   sync.Mutex
	w    io.Writer
	buf  []byte
	max  int
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// Write writes p at once, after anything buffered. slog.JSONHandler calls
// it once per record.
func (s *sink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.buf) > 0 {
		_, _ = s.w.Write(s.buf)
		s.buf = s.buf[:0]
	}
	return s.w.Write(p)
}

func (s *sink) flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.buf) == 0 {
		return nil
	}
	_, err := s.w.Write(s.buf)
	s.buf = s.buf[:0]
	return err
}

func (s *sink) isClosed() bool {
	select {
	case <-s.stop:
		return true
	default:
		return false
	}
}

func (s *sink) close() {
	s.once.Do(func() { close(s.stop) })
	if s.done != nil {
		<-s.done
	}
}

func (s *sink) loop(every time.Duration) {
	defer close(s.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			_ = s.flush()
		case <-s.stop:
			return
		}
	}
}
