package middleware

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/tollgate-dev/tollgate/auth"
	"github.com/tollgate-dev/tollgate/logjson"
)

// Logger writes one JSON access line per request to l: method, route
// pattern, path, status, code, bytes (of body sent: 0 for HEAD),
// duration_ms, request_id, and key_id when the request was
// authenticated. A 5xx is logged at ERROR with the
// cause of the error (never sent to the client); a 4xx at INFO. A response
// aborted by a panic that reaches Logger (http.ErrAbortHandler) is logged
// at ERROR with error "response aborted" and the status sent before it (0
// for none), and the panic goes on. Anything in the path that looks like
// an API key is logged as its prefix and "[REDACTED]". now is the clock
// (time.Now if nil).
//
// When l's handler is a *logjson.Handler, lines take its allocation-free
// path; any other handler gets the same fields through slog.
func Logger(l *slog.Logger, now func() time.Time) Middleware {
	now, since := clocks(now)
	fast, _ := l.Handler().(*logjson.Handler)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			st, w, r := begin(w, r, time.Time{})
			if st.start.IsZero() {
				st.start = now()
			}
			defer func() {
				// A panic that gets here (http.ErrAbortHandler, re-panicked
				// by Recover, or any panic without Recover) aborts the
				// response: logged as such, then passed on to net/http.
				v := recover()
				a := logjson.Access{
					Time:      st.start,
					Level:     slog.LevelInfo,
					RequestID: st.id,
					Method:    r.Method,
					Route:     st.route,
					Path:      auth.Redact(r.URL.Path),
					Status:    st.rec.outcome(r, v != nil),
					Code:      string(st.rec.code()),
					Bytes:     st.rec.bytes,
					Duration:  since(st.start),
					KeyID:     st.keyID,
				}
				if r.Method == http.MethodHead {
					// net/http discards a HEAD response's body: none was sent.
					a.Bytes = 0
				}
				if v != nil {
					defer panic(v) // once the line is written
					a.Level, a.Error = slog.LevelError, "response aborted"
				}
				if a.Status >= 500 || a.Status == StatusClientClosed {
					if a.Status >= 500 {
						a.Level = slog.LevelError
					}
					if st.rec.err != nil {
						if c := st.rec.err.Unwrap(); c != nil {
							a.Error = c.Error()
						}
					}
				}
				if fast != nil {
					fast.Access(&a)
					return
				}
				l.LogAttrs(context.Background(), a.Level, logjson.AccessMessage, a.Attrs()...)
			}()
			next.ServeHTTP(w, r)
		})
	}
}
