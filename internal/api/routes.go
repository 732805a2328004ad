package api

import (
	"net/http"

	"github.com/tollgate-dev/tollgate/auth"
	"github.com/tollgate-dev/tollgate/middleware"
)

// Routes registers the whole surface of the API with handle. Every /v1
// route is behind Auth (and the rate limit and idempotency keys, when
// configured) and names its scope; /openapi.json is public.
func (a *API) Routes(handle func(pattern string, h http.Handler)) {
	authed := []middleware.Middleware{middleware.Auth(a.cfg.Verifier, a.cfg.Guard)}
	if a.cfg.RateLimit != nil {
		authed = append(authed, a.cfg.RateLimit)
	}
	// The scope is checked before idempotency: a key without the route's
	// scope gets 403, never another key's stored answer to replay.
	route := func(pattern, scope string, h http.HandlerFunc, before ...middleware.Middleware) {
		ms := append(authed[:len(authed):len(authed)], middleware.RequireScopes(scope))
		if a.cfg.Idempotency != nil {
			ms = append(append(ms, before...), a.cfg.Idempotency)
		}
		handle(pattern, middleware.Chain(ms...)(h))
	}
	// The keys API's handlers check what the calling key may grant: an
	// Idempotency-Key there belongs to the calling key, so another key of
	// the account cannot replay an answer it would not be given.
	perKey := middleware.Middleware(middleware.IdempotencyPerKey)

	route("POST /v1/keys", auth.ScopeKeysWrite, a.createKey, perKey)
	route("GET /v1/keys", auth.ScopeKeysRead, a.listKeys)
	route("GET /v1/keys/{id}", auth.ScopeKeysRead, a.getKey)
	route("DELETE /v1/keys/{id}", auth.ScopeKeysWrite, a.revokeKey)
	route("POST /v1/keys/{id}/rotate", auth.ScopeKeysWrite, a.rotateKey, perKey)

	route("POST /v1/sessions", auth.ScopeSessionsWrite, a.createSession)
	route("GET /v1/sessions", auth.ScopeSessionsRead, a.listSessions)
	route("GET /v1/sessions/{id}", auth.ScopeSessionsRead, a.getSession)
	route("PATCH /v1/sessions/{id}", auth.ScopeSessionsWrite, a.updateSession)
	route("DELETE /v1/sessions/{id}", auth.ScopeSessionsWrite, a.deleteSession)

	route("POST /v1/leads", auth.ScopeLeadsWrite, a.createLead)
	route("GET /v1/leads", auth.ScopeLeadsRead, a.listLeads)
	route("GET /v1/leads/{id}", auth.ScopeLeadsRead, a.getLead)
	route("PATCH /v1/leads/{id}", auth.ScopeLeadsWrite, a.updateLead)
	route("DELETE /v1/leads/{id}", auth.ScopeLeadsWrite, a.deleteLead)

	route("GET /v1/admin/maintenance", auth.ScopeAdminWrite, a.getMaintenance)
	route("PUT /v1/admin/maintenance", auth.ScopeAdminWrite, a.setMaintenance)

	handle("GET /openapi.json", OpenAPIHandler()) // public: no key needed
}
