package middleware

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/tollgate-dev/tollgate/apierror"
)

// errPanic is the cause recorded for a recovered panic.
var errPanic = errors.New("panic")

// Recover turns a panic in next into 500 INTERNAL_ERROR. The panic value
// and the stack go to l with the request id; the response body holds
// nothing internal. http.ErrAbortHandler is re-panicked so net/http aborts
// the connection as it should. If headers were already sent, nothing more
// is written.
func Recover(l *slog.Logger) Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			st, w, r := begin(w, r, time.Time{})
			defer func() {
				v := recover()
				if v == nil {
					return
				}
				if v == http.ErrAbortHandler {
					panic(v)
				}
				l.LogAttrs(r.Context(), slog.LevelError, "panic",
					slog.String("request_id", st.id),
					slog.String("panic", fmt.Sprint(v)),
					slog.String("stack", string(debug.Stack())))
				if st.rec.written() {
					// Too late for an error body; abort the response so the
					// client sees a broken one rather than a truncated 200.
					panic(http.ErrAbortHandler)
				}
				apierror.Write(w, r, apierror.Wrap(fmt.Errorf("%w: %v", errPanic, v), apierror.InternalError, ""))
			}()
			next.ServeHTTP(w, r)
		})
	}
}
