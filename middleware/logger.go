package middleware

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/tollgate-dev/tollgate/logjson"
)

// Logger writes one JSON access line per request to l: method, route
// pattern, path, status, code, bytes, duration_ms, request_id, and key_id
// when the request was authenticated. A 5xx is logged at ERROR with the
// cause of the error (never sent to the client); a 4xx at INFO. now is the
// clock (time.Now if nil).
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
				a := logjson.Access{
					Time:      st.start,
					Level:     slog.LevelInfo,
					RequestID: st.id,
					Method:    r.Method,
					Route:     st.route,
					Path:      r.URL.Path,
					Status:    st.rec.status,
					Code:      string(st.rec.code()),
					Bytes:     st.rec.bytes,
					Duration:  since(st.start),
					KeyID:     st.keyID,
				}
				if a.Status == 0 {
					a.Status = http.StatusOK
				}
				if a.Status >= 500 {
					a.Level = slog.LevelError
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
