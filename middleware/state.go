package middleware

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/tollgate-dev/tollgate/apierror"
	"github.com/tollgate-dev/tollgate/arrival"
	"github.com/tollgate-dev/tollgate/auth"
)

// state is what one request's middleware share: its id, the clock reading
// taken when it arrived, the matched route, the key that authenticated it,
// and what was written back. It is allocated once per request, together
// with the context that carries it and the ResponseWriter that records
// the response, so the core chain costs few allocations.
type state struct {
	req http.Request // the request as passed on, carrying ctx
	ctx stateCtx
	rec recorder
	hdr [1]string
	id  string
	// idBuf holds a request id this chain made, and id then aliases it
	// (see setNewID): one allocation less per request. It is written once,
	// before id is set, and never again.
	idBuf [len(idPrefix) + ulid.EncodedSize]byte
	start time.Time
	route string
	keyID string
	// authed is set by Auth: the caller, served to auth.PrincipalFrom by
	// stateCtx. It is a separate allocation so that requests without a
	// key keep the state small.
	authed *authState
	// arrival is set while Auth and RateLimit call the verifier and the
	// limiter, which may then take start instead of reading the clock
	// (arrival.From). Only then: a later call on this context (a
	// streaming handler, a goroutine the handler starts) must read its
	// own clock, or it would judge expiry and refill at a stale time. It
	// is atomic because goroutines started before Auth may hold the
	// context.
	arrival atomic.Bool
}

// serveArrival turns on or off serving the request's start time to
// arrival.From (see arrival). It does nothing outside the chain.
func (st *state) serveArrival(on bool) {
	if st != nil {
		st.arrival.Store(on)
	}
}

// authState is what Auth and RateLimit add to an authenticated request.
type authState struct {
	principal auth.Principal
	rate      rateHeaders
}

// rateHeaders backs the values of the legacy rate-limit headers: vals
// holds the header slices, buf their bytes (the strings alias it).
// RateLimit fills one rateHeaders once (used), so a value handed out is
// never rewritten.
type rateHeaders struct {
	vals [3][1]string
	buf  [3 * 20]byte // three int64s in decimal
	used bool
}

type stateKey struct{}

// stateCtx carries the state without a separate context.WithValue
// allocation.
type stateCtx struct {
	context.Context
	st *state
}

// Value serves the state, the principal and, while Auth and RateLimit
// call the verifier and the limiter, the arrival time (the clock reading
// taken when the request entered the chain, for arrival.From);
// type assertions keep it cheaper than interface comparisons, as it runs
// several times per request.
func (c *stateCtx) Value(key any) any {
	if _, ok := key.(stateKey); ok {
		return c.st
	}
	if auth.IsPrincipalKey(key) {
		if a := c.st.authed; a != nil {
			return &a.principal
		}
	}
	if arrival.IsKey(key) && c.st.arrival.Load() && !c.st.start.IsZero() {
		return &c.st.start // never written again once set
	}
	return c.Context.Value(key)
}

func stateFrom(ctx context.Context) *state {
	st, _ := ctx.Value(stateKey{}).(*state)
	return st
}

// begin returns the request's state, creating it (and the recording
// writer) if no earlier middleware did.
func begin(w http.ResponseWriter, r *http.Request, now time.Time) (*state, http.ResponseWriter, *http.Request) {
	if st := stateFrom(r.Context()); st != nil {
		return st, w, r
	}
	st := &state{start: now}
	st.rec.ResponseWriter = w
	st.ctx = stateCtx{Context: r.Context(), st: st}
	// The request the chain passes on is WithContext's shallow copy, kept
	// inside the state: one allocation for both.
	st.req = *r.WithContext(&st.ctx)
	return st, &st.rec, &st.req
}

// RequestIDFrom returns the request id of the request ctx belongs to, or
// "" outside the RequestID middleware.
func RequestIDFrom(ctx context.Context) string {
	if st := stateFrom(ctx); st != nil {
		return st.id
	}
	return ""
}

// SetKeyID records the id of the API key that authenticated the request,
// for the access log. It does nothing outside the chain.
func SetKeyID(ctx context.Context, id string) {
	if st := stateFrom(ctx); st != nil {
		st.keyID = id
	}
}

// StartTime returns the clock reading taken when the request entered the
// chain, so later layers need not read the clock again; ok is false
// outside the chain, or when no timing middleware (RequestID, Logger,
// Metrics) read the clock.
func StartTime(ctx context.Context) (t time.Time, ok bool) {
	return stateFrom(ctx).startTime()
}

// startTime is StartTime for a state already in hand (nil outside the
// chain).
func (st *state) startTime() (time.Time, bool) {
	if st != nil && !st.start.IsZero() {
		return st.start, true
	}
	return time.Time{}, false
}

// recorder is the ResponseWriter wrapper that records the status, bytes
// written and error code of a response.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	err    *apierror.Error
	// slots is the Concurrency limit holding a slot for this request,
	// given back when the connection is hijacked (see Hijack).
	slots chan struct{}
}

// WriteHeader records the first final status: 1xx responses other than
// 101 Switching Protocols are informational, and another may follow.
func (w *recorder) WriteHeader(code int) {
	if w.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

// TrackError implements apierror.Tracker.
func (w *recorder) TrackError(e *apierror.Error) { w.err = e }

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush implements http.Flusher when the underlying writer does.
func (w *recorder) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack implements http.Hijacker when the underlying writer does. A
// connection taken before any response is one switching protocols (a
// WebSocket): it is logged and counted as 101. A hijacked connection is
// no longer a request: it gives its Concurrency slot back, so that
// long-lived connections do not starve the requests.
func (w *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		if w.status == 0 {
			w.status = http.StatusSwitchingProtocols
		}
		if w.slots != nil {
			<-w.slots
			w.slots = nil
		}
	}
	return c, rw, err
}

// final returns the status the response ended with: the one sent, else
// 200 (net/http sends it for a handler that wrote nothing), or 0 when the
// response was aborted before anything was sent.
func (w *recorder) final(aborted bool) int {
	if w.status == 0 && !aborted {
		return http.StatusOK
	}
	return w.status
}

// StatusClientClosed is the status logged and counted (nginx's 499,
// "client closed request") for a request that failed with a 5xx because
// its client went away: the answer reached no one, and it is not the
// server failing.
const StatusClientClosed = 499

// outcome returns the status to log and count for r's response:
// final(aborted), or StatusClientClosed for a 5xx caused by r's client
// going away: its error's cause is the cancellation, and r's context was
// cancelled (net/http cancels it when the connection closes). Any other
// 5xx (a panic, a store down) stays what it is, client gone or not.
func (w *recorder) outcome(r *http.Request, aborted bool) int {
	s := w.final(aborted)
	if s >= 500 && w.err != nil && errors.Is(w.err, context.Canceled) && errors.Is(r.Context().Err(), context.Canceled) {
		return StatusClientClosed
	}
	return s
}

// written reports whether headers were already sent.
func (w *recorder) written() bool { return w.status != 0 }

// code returns the error code of the response, "" for none.
func (w *recorder) code() apierror.Code {
	if w.err != nil {
		return w.err.Code
	}
	return ""
}

// clocks returns the clock to read and a since function for durations:
// time.Now and time.Since (one monotonic clock read) by default, or now
// for both when a test injects a clock.
func clocks(now func() time.Time) (func() time.Time, func(time.Time) time.Duration) {
	if now == nil {
		return time.Now, time.Since
	}
	return now, func(t time.Time) time.Duration { return now().Sub(t) }
}
