package api

import (
	"net/http"

	"github.com/tollgate-dev/tollgate/auth"
	"github.com/tollgate-dev/tollgate/middleware"
)

// Routes registers the whole surface of the API with handle. Every route
// is behind Auth (and the rate limit, when configured) and names its
// scope.
func (a *API) Routes(handle func(pattern string, h http.Handler)) {
	authed := []middleware.Middleware{middleware.Auth(a.cfg.Verifier, a.cfg.Guard)}
	if a.cfg.RateLimit != nil {
		authed = append(authed, a.cfg.RateLimit)
	}
	route := func(pattern, scope string, h http.HandlerFunc) {
		ms := append(authed[:len(authed):len(authed)], middleware.RequireScopes(scope))
		handle(pattern, middleware.Chain(ms...)(h))
	}

	route("POST /v1/keys", auth.ScopeKeysWrite, a.createKey)
	route("GET /v1/keys", auth.ScopeKeysRead, a.listKeys)
	route("GET /v1/keys/{id}", auth.ScopeKeysRead, a.getKey)
	route("DELETE /v1/keys/{id}", auth.ScopeKeysWrite, a.revokeKey)
	route("POST /v1/keys/{id}/rotate", auth.ScopeKeysWrite, a.rotateKey)
}
