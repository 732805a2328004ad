package middleware

import (
	"encoding/binary"
	"math/rand/v2"
	"net/http"
	"time"
	"unsafe"

	"github.com/oklog/ulid/v2"

	"github.com/tollgate-dev/tollgate/apierror"
	"github.com/tollgate-dev/tollgate/auth"
)

// MaxRequestIDLen is the longest inbound X-Request-Id that is kept.
const MaxRequestIDLen = 128

// RequestID gives every request an id and sets it as the X-Request-Id
// response header. An inbound X-Request-Id of 1–128 characters from
// [A-Za-z0-9._-] is kept (unless it holds an API key's prefix, see
// ValidRequestID); otherwise a new "req_<ulid>" replaces it.
// RequestIDFrom reads it back. now is the clock (time.Now if nil); it is
// read once per request and shared with the other middleware.
//
// Put RequestID first in the chain.
func RequestID(now func() time.Time) Middleware {
	if now == nil {
		now = time.Now
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			st, w, r := begin(w, r, now())
			if st.id == "" {
				// Index the map with the canonical name: Header.Get would
				// canonicalise the constant on every request.
				if in := r.Header[apierror.HeaderRequestID]; len(in) > 0 && ValidRequestID(in[0]) {
					st.id = in[0]
				} else {
					st.setNewID()
				}
			}
			st.hdr[0] = st.id
			w.Header()[apierror.HeaderRequestID] = st.hdr[:]
			next.ServeHTTP(w, r)
		})
	}
}

// ValidRequestID reports whether id may be kept as a request id: 1–128
// characters of [A-Za-z0-9._-], holding no API key's prefix (a key sent
// as a request id would be logged on every line and echoed back).
func ValidRequestID(id string) bool {
	if len(id) == 0 || len(id) > MaxRequestIDLen || auth.Mentions(id) {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// idPrefix starts every request id tollgate makes.
const idPrefix = "req_"

// setNewID gives the request a new id, "req_" and a ULID of its start
// time: 48 bits of milliseconds and 80 random bits from the runtime's
// per-thread generator (no lock). The id's bytes live in the state itself,
// which the id string aliases: the state outlives every holder of the
// string, and idBuf is never written again.
func (st *state) setNewID() {
	var id ulid.ULID
	_ = id.SetTime(ulid.Timestamp(st.start))
	binary.BigEndian.PutUint64(id[6:14], rand.Uint64())
	binary.BigEndian.PutUint16(id[14:], uint16(rand.Uint32()))
	copy(st.idBuf[:], idPrefix)
	_ = id.MarshalTextTo(st.idBuf[len(idPrefix):])
	st.id = unsafe.String(&st.idBuf[0], len(st.idBuf))
}
