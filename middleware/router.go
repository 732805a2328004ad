package middleware

import (
	"net/http"
	"strings"

	"github.com/tollgate-dev/tollgate/apierror"
)

// Router is an http.ServeMux that answers with the error contract where
// ServeMux would write plain text: an unknown path gets 404
// ROUTE_NOT_FOUND, a known path with another method 405
// METHOD_NOT_ALLOWED with an Allow header. It records the matched pattern
// for the access log and metrics.
//
// Patterns are ServeMux patterns ("GET /v1/leads/{id}"); the pattern "/"
// is taken by the router itself. Register routes before serving; serving
// is safe for concurrent use.
type Router struct {
	mux *http.ServeMux
}

// probeMethods are the methods tried when building an Allow header.
var probeMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions}

// NewRouter returns an empty Router.
func NewRouter() *Router {
	rt := &Router{mux: http.NewServeMux()}
	rt.mux.HandleFunc("/", rt.fallback)
	return rt
}

// Handle registers h for pattern.
func (rt *Router) Handle(pattern string, h http.Handler) { rt.mux.Handle(pattern, h) }

// HandleFunc registers f for pattern.
func (rt *Router) HandleFunc(pattern string, f http.HandlerFunc) { rt.mux.HandleFunc(pattern, f) }

// ServeHTTP dispatches r to the handler of the pattern that matches it.
func (rt *Router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if st := stateFrom(r.Context()); st != nil {
		defer func() { st.route = r.Pattern }()
	}
	if r.Method != http.MethodConnect && !cleanPath(r.URL.Path) {
		// ServeMux would redirect to the cleaned path with an HTML body;
		// an API answers that such a path does not exist.
		apierror.Write(w, r, apierror.New(apierror.RouteNotFound, "").With("path", r.URL.Path))
		return
	}
	rt.mux.ServeHTTP(w, r)
}

// cleanPath reports whether p is absolute and has no empty, "." or ".."
// segments (a trailing slash is allowed).
func cleanPath(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] != '/' || i+1 == len(p) {
			continue
		}
		switch rest := p[i+1:]; {
		case rest[0] == '/':
			return false
		case rest[0] == '.' && (len(rest) == 1 || rest[1] == '/'):
			return false
		case len(rest) >= 2 && rest[0] == '.' && rest[1] == '.' && (len(rest) == 2 || rest[2] == '/'):
			return false
		}
	}
	return true
}

// fallback answers every request no registered pattern matched.
func (rt *Router) fallback(w http.ResponseWriter, r *http.Request) {
	r.Pattern = ""
	if allowed := rt.allowed(r); len(allowed) > 0 {
		allow := strings.Join(allowed, ", ")
		apierror.Write(w, r, apierror.New(apierror.MethodNotAllowed, "Method "+safeMethod(r.Method)+" is not allowed on this path.").
			With("allowed", allowed).WithHeader("Allow", allow))
		return
	}
	apierror.Write(w, r, apierror.New(apierror.RouteNotFound, "").With("path", r.URL.Path))
}

// allowed returns the methods some registered pattern accepts for r's path.
func (rt *Router) allowed(r *http.Request) []string {
	var out []string
	probe := *r
	for _, m := range probeMethods {
		if m == r.Method {
			continue
		}
		probe.Method = m
		if _, pattern := rt.mux.Handler(&probe); pattern != "" && pattern != "/" {
			out = append(out, m)
		}
	}
	return out
}

// safeMethod returns m if it is a short token, for use in a message.
func safeMethod(m string) string {
	if len(m) == 0 || len(m) > 16 {
		return "this"
	}
	for i := 0; i < len(m); i++ {
		if c := m[i]; c < 'A' || c > 'Z' {
			return "this"
		}
	}
	return m
}
