package middleware

import "net/http"

// CleanPath exports cleanPath for tests.
var CleanPath = cleanPath

// ExactRoute reports whether rt's exact-route lookup finds r.
func ExactRoute(rt *Router, r *http.Request) bool {
	_, ok := rt.lookup(r)
	return ok
}
