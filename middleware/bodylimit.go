package middleware

import (
	"net/http"

	"github.com/tollgate-dev/tollgate/apierror"
)

// BodyLimit refuses request bodies over n bytes with 413
// PAYLOAD_TOO_LARGE: at once when Content-Length says so, otherwise when
// a handler reads past n (the read fails with *http.MaxBytesError, which
// apierror maps to 413).
func BodyLimit(n int64) Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ContentLength > n {
				apierror.Write(w, r, apierror.New(apierror.PayloadTooLarge, "").With("limit_bytes", n))
				return
			}
			if r.Body != nil && r.Body != http.NoBody {
				r.Body = http.MaxBytesReader(w, r.Body, n)
			}
			next.ServeHTTP(w, r)
		})
	}
}
