package middleware

import (
	"context"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tollgate-dev/tollgate/apierror"
)

// DefaultConcurrency is the concurrency limit Concurrency uses for n ≤ 0:
// 64 requests in flight per CPU.
func DefaultConcurrency() int { return 64 * runtime.GOMAXPROCS(0) }

// Concurrency lets at most n requests through at once; the next ones are
// refused at once with 503 SERVICE_UNAVAILABLE, reason "overloaded", and
// Retry-After: 1, instead of queueing without bound. Refusing early keeps
// the latency of the admitted requests close to that of an idle server.
// n ≤ 0 means DefaultConcurrency(). A request whose connection is hijacked
// (a WebSocket after 101 Switching Protocols) gives its slot back then,
// when Concurrency runs inside RequestID, Logger or Metrics (whose writer
// sees the hijack): the connection may live for hours and is no longer a
// request.
func Concurrency(n int) Middleware {
	if n <= 0 {
		n = DefaultConcurrency()
	}
	slots := make(chan struct{}, n)
	// Built once: refusals come in floods, and Write only reads it.
	refusal := apierror.New(apierror.ServiceUnavailable, "The server is overloaded; retry shortly.").
		With("reason", "overloaded").WithRetryAfter(time.Second)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case slots <- struct{}{}:
			default:
				apierror.Write(w, r, refusal)
				return
			}
			if st := stateFrom(r.Context()); st != nil && st.rec.slots == nil {
				st.rec.slots = slots // the recorder gives it back on a hijack
				defer func() {
					if st.rec.slots != nil {
						st.rec.slots = nil
						<-slots
					}
				}()
			} else {
				defer func() { <-slots }()
			}
			next.ServeHTTP(w, r)
		})
	}
}

// Timeout gives each request a deadline of d. Handlers that pass the
// context to their stores fail with context.DeadlineExceeded, which
// apierror maps to 503 SERVICE_UNAVAILABLE, reason "timeout". The
// connection's read deadline is set to the same instant, so a body that
// trickles in cannot hold the request (and a Concurrency slot) for the
// server's whole ReadTimeout: its read fails, and the request gets its 400.
// A request that runs past its deadline is the last on its connection
// (apierror.Write adds Connection: close): when that read deadline fires
// in net/http's background read, net/http cancels the connection's
// context, which every later request on it would inherit.
func Timeout(d time.Duration) Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx, cancel := context.WithTimeout(r.Context(), d)
			defer cancel()
			deadline, _ := ctx.Deadline()
			_ = http.NewResponseController(w).SetReadDeadline(deadline) // not supported by every writer: the context still ends it
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}

// Maintenance is a switch for maintenance mode. While on, the requests it
// guards get 503 SERVICE_UNAVAILABLE, reason "maintenance", with
// Retry-After. It is safe for concurrent use.
type Maintenance struct {
	on      atomic.Bool
	refusal *apierror.Error // built once; Write only reads it
}

// NewMaintenance returns a switch, on or off, whose refusals ask clients
// to retry after retryAfter (60 s if zero).
func NewMaintenance(on bool, retryAfter time.Duration) *Maintenance {
	if retryAfter <= 0 {
		retryAfter = time.Minute
	}
	m := &Maintenance{refusal: apierror.New(apierror.ServiceUnavailable, "The service is down for maintenance.").
		With("reason", "maintenance").WithRetryAfter(retryAfter)}
	m.on.Store(on)
	return m
}

// Set turns maintenance mode on or off.
func (m *Maintenance) Set(on bool) { m.on.Store(on) }

// On reports whether maintenance mode is on.
func (m *Maintenance) On() bool { return m.on.Load() }

// MaintenanceExempt is the path prefix Guard lets through while
// maintenance mode is on, so the switch can be turned off again.
const MaintenanceExempt = "/v1/admin/"

// Guard refuses requests while maintenance mode is on, except those under
// MaintenanceExempt.
func (m *Maintenance) Guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m.on.Load() && !strings.HasPrefix(r.URL.Path, MaintenanceExempt) {
			apierror.Write(w, r, m.refusal)
			return
		}
		next.ServeHTTP(w, r)
	})
}
