package auth

import "context"

// Principal is the authenticated caller: the key that was presented and the
// account it belongs to. Principals returned by a Verifier share their
// Scopes with its cache; treat them as read-only.
type Principal struct {
	AccountID string
	KeyID     string
	Scopes    Scopes
	// RatePlan is the key's rate plan, e.g. "600/1m"; empty means the
	// server's default.
	RatePlan string
	// Live reports whether the key was a live key (not a test key).
	Live bool
}

// principalKey is the context key for a *Principal.
type principalKey struct{}

// PrincipalKey is the context key PrincipalFrom reads, for middleware that
// carries the principal in a context type of its own (to save the
// allocations of WithPrincipal on the request path): its Value method
// returns a *Principal for this key. Everyone else uses WithPrincipal.
var PrincipalKey any = principalKey{}

// IsPrincipalKey reports whether key is PrincipalKey. It is cheaper than
// comparing the two interfaces, for Value methods on the request path.
func IsPrincipalKey(key any) bool {
	_, ok := key.(principalKey)
	return ok
}

// WithPrincipal returns a copy of ctx carrying a copy of p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, &p)
}

// PrincipalFrom returns the Principal stored by WithPrincipal, if any.
// The returned value is shared by everyone holding ctx: do not modify it.
func PrincipalFrom(ctx context.Context) (*Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(*Principal)
	return p, ok
}
