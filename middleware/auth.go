package middleware

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tollgate-dev/tollgate/apierror"
	"github.com/tollgate-dev/tollgate/auth"
	"github.com/tollgate-dev/tollgate/ratelimit"
)

// KeyVerifier checks a presented API key; *auth.Verifier is one.
type KeyVerifier interface {
	Verify(ctx context.Context, secret string) (auth.Principal, error)
}

// queryKeyParams are query parameters that look like credentials. A
// request carrying one is refused: keys in URLs end up in logs.
var queryKeyParams = []string{"api_key", "apikey", "api-key", "key", "access_token", "token", "x-api-key", "authorization"}

// Auth authenticates each request with an API key from
// "Authorization: Bearer <key>" or "x-api-key: <key>" and puts the
// auth.Principal in the context (auth.PrincipalFrom).
//
// Refusals: 401 UNAUTHORIZED with details.reason missing, malformed,
// unknown, revoked or expired (and WWW-Authenticate: Bearer); 400
// INVALID_REQUEST when both headers carry different keys or a key is in
// the query string (a parameter named like a credential, such as api_key,
// token or authorization, or a key's prefix anywhere in a name or a
// value); 503 SERVICE_UNAVAILABLE when the key store is down
// (never 401). When guard is not nil, a client address with too many
// failed authentications gets 429 RATE_LIMITED before any lookup.
func Auth(v KeyVerifier, guard *Guard) Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.RawQuery != "" {
				if err := checkQuery(r.URL.RawQuery); err != nil {
					apierror.Write(w, r, err)
					return
				}
			}
			secret, err := presentedKey(r.Header)
			if err != nil {
				apierror.Write(w, r, err)
				return
			}
			var client string // computed only when needed: while anyone is blocked, or on a failure
			if guard != nil && guard.size.Load() != 0 {
				client = clientAddr(r)
				if d, blocked := guard.blocked(client); blocked {
					apierror.Write(w, r, guard.refusal(d))
					return
				}
			}
			st := stateFrom(r.Context())
			st.serveArrival(true) // the verifier may take the start time
			p, err := v.Verify(r.Context(), secret)
			st.serveArrival(false)
			if err != nil {
				e := authError(r.Context(), err)
				if guard != nil && e.Code == apierror.Unauthorized {
					if client == "" {
						client = clientAddr(r)
					}
					guard.fail(r.Context(), client)
				}
				apierror.Write(w, r, e)
				return
			}
			if st != nil && st.authed == nil {
				// The request's state carries the principal: no new
				// context, no copy of the request.
				st.authed, st.keyID = &authState{principal: p}, p.KeyID
				next.ServeHTTP(w, r)
				return
			}
			next.ServeHTTP(w, r.WithContext(auth.WithPrincipal(r.Context(), p)))
		})
	}
}

// RequireScopes refuses a request whose key lacks any of scopes with 403
// FORBIDDEN, details.required_scopes and details.missing_scopes. It runs
// after Auth; without a principal it answers 401.
func RequireScopes(scopes ...string) Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, ok := auth.PrincipalFrom(r.Context())
			if !ok {
				apierror.Write(w, r, unauthorized("missing", "An API key is required."))
				return
			}
			if missing := p.Scopes.Missing(scopes); len(missing) > 0 {
				apierror.Write(w, r, apierror.New(apierror.Forbidden, "The API key lacks a required scope: "+strings.Join(missing, ", ")+".").
					With("required_scopes", scopes).With("missing_scopes", missing))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// unauthorized is a 401; apierror.Write adds its WWW-Authenticate header.
func unauthorized(reason, message string) *apierror.Error {
	return apierror.New(apierror.Unauthorized, message).With("reason", reason)
}

// authError maps a Verify error to the answer (see storeFailure for a
// failed lookup).
func authError(ctx context.Context, err error) *apierror.Error {
	switch {
	case errors.Is(err, auth.ErrMissing):
		return unauthorized("missing", "An API key is required.")
	case errors.Is(err, auth.ErrMalformed):
		return unauthorized("malformed", "The API key is malformed.")
	case errors.Is(err, auth.ErrUnknown):
		return unauthorized("unknown", "The API key is not recognised.")
	case errors.Is(err, auth.ErrRevoked):
		return unauthorized("revoked", "The API key has been revoked.")
	case errors.Is(err, auth.ErrExpired):
		return unauthorized("expired", "The API key has expired.")
	}
	// auth.ErrUnavailable, and anything else: never a 401 for an outage.
	return storeFailure(ctx, err, "The key store is unavailable.", "store_unavailable")
}

// storeFailure is the answer to a store call that failed: 503 with reason
// (a store outage), or, when the request's own deadline or cancellation
// cut the call short (middleware.Timeout, a client gone), 503 "timeout"
// or "cancelled", so that slow requests do not read as an outage.
func storeFailure(ctx context.Context, err error, message, reason string) *apierror.Error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return apierror.From(fmt.Errorf("%w: %w", ctxErr, err))
	}
	return apierror.Wrap(err, apierror.ServiceUnavailable, message).
		With("reason", reason).WithRetryAfter(time.Second)
}

// presentedKey returns the key from the Authorization or x-api-key header.
func presentedKey(h http.Header) (string, error) {
	authz, apiKey := h["Authorization"], h["X-Api-Key"] // canonical names: no per-request canonicalisation
	if len(authz) > 1 || len(apiKey) > 1 {
		return "", apierror.New(apierror.InvalidRequest, "Send one API key, in one header.").With("reason", "repeated credentials header")
	}
	var bearer, plain string
	if len(authz) == 1 {
		scheme, token, ok := strings.Cut(trimOWS(authz[0]), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return "", unauthorized("malformed", "The Authorization header must be: Bearer <key>.")
		}
		bearer = trimOWS(token)
		if bearer == "" {
			return "", unauthorized("malformed", "The Authorization header must be: Bearer <key>.")
		}
	}
	if len(apiKey) == 1 {
		plain = trimOWS(apiKey[0])
		if plain == "" {
			return "", unauthorized("malformed", "The x-api-key header is empty.")
		}
	}
	switch {
	case bearer != "" && plain != "" && bearer != plain:
		return "", apierror.New(apierror.InvalidRequest, "Authorization and x-api-key carry different keys; send one.").
			With("reason", "conflicting credentials")
	case bearer != "":
		return bearer, nil
	case plain != "":
		return plain, nil
	}
	return "", unauthorized("missing", "An API key is required: send Authorization: Bearer <key> or x-api-key.")
}

// trimOWS trims the whitespace HTTP allows around a header value and
// between a scheme and its token, spaces and tabs (RFC 9110 §5.6.3), and
// nothing else: a key wrapped in Unicode spaces is malformed.
// (strings.Trim builds its cutset's table on every call: this runs on
// every authenticated request.)
func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

func checkQuery(raw string) error {
	q, err := url.ParseQuery(raw)
	if err != nil {
		return apierror.New(apierror.InvalidRequest, "The query string is malformed.").With("reason", "bad query")
	}
	for name, vals := range q {
		for _, p := range queryKeyParams {
			if strings.EqualFold(name, p) {
				return queryKeyError(name)
			}
		}
		if auth.Mentions(name) {
			return queryKeyError("")
		}
		for _, v := range vals {
			if auth.Mentions(v) {
				return queryKeyError(name)
			}
		}
	}
	return nil
}

// queryKeyError refuses a key in the query string, under parameter name
// ("" when the key is the name: it is not echoed back).
func queryKeyError(name string) error {
	e := apierror.New(apierror.InvalidRequest, "API keys are not accepted in the query string; use the Authorization header.").
		With("reason", "key in query string")
	if name != "" {
		e.With("field", name)
	}
	return e
}

// clientAddr is the client address that per-address limits count: the
// IPv4 address of RemoteAddr, or the /64 network of an IPv6 one. An IPv6
// host is usually given a whole /64 and can pick a new address from it
// for every request, so counting single addresses would let it step
// around the limits (the failed-authentication guard, RateLimit without a
// key). An IPv4-mapped address counts as its IPv4 address.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	a = a.Unmap().WithZone("")
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// Guard slows down key guessing: a client address that fails to
// authenticate more often than its policy allows is refused with 429
// RATE_LIMITED, before any key lookup, until the policy admits it again.
// It is safe for concurrent use.
type Guard struct {
	store  ratelimit.Store
	policy ratelimit.Policy
	now    func() time.Time
	mu     sync.Mutex
	until  map[string]time.Time
	size   atomic.Int64 // len(until), read without mu
}

// NewGuard returns a Guard counting failures per client address in store
// under policy (for example 20 per minute). now is the clock (time.Now if
// nil).
func NewGuard(store ratelimit.Store, policy ratelimit.Policy, now func() time.Time) *Guard {
	if now == nil {
		now = time.Now
	}
	if policy.Name == "" {
		policy.Name = "auth_failures"
	}
	return &Guard{store: store, policy: policy, now: now, until: map[string]time.Time{}}
}

func (g *Guard) blocked(client string) (time.Duration, bool) {
	if g.size.Load() == 0 {
		return 0, false // nobody is blocked: no lock on the request path
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	defer func() { g.size.Store(int64(len(g.until))) }()
	until, ok := g.until[client]
	if !ok {
		return 0, false
	}
	d := until.Sub(g.now())
	if d <= 0 {
		delete(g.until, client)
		return 0, false
	}
	return d, true
}

func (g *Guard) fail(ctx context.Context, client string) {
	res, err := g.store.Take(ctx, "authfail:"+client, []ratelimit.Policy{g.policy}, 1)
	if err != nil || res.Allowed {
		return // a store failure must not lock clients out
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	if n := len(g.until); n > 0 && n%1024 == 0 {
		// Keep the map small by dropping expired blocks, amortised: a
		// sweep every 1,024 new blocks, not one per failure.
		for k, t := range g.until {
			if !t.After(now) {
				delete(g.until, k)
			}
		}
	}
	g.until[client] = now.Add(res.RetryAfter)
	g.size.Store(int64(len(g.until)))
}

func (g *Guard) refusal(d time.Duration) *apierror.Error {
	return rateLimited("Too many failed authentications.", g.policy.Limit, g.policy.Window, g.policy.Name, d)
}
