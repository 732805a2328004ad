package middleware

import (
	"maps"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/tollgate-dev/tollgate/apierror"
)

// Router is an http.ServeMux that answers with the error contract where
// ServeMux would write plain text: an unknown path gets 404
// ROUTE_NOT_FOUND, a known path with another method 405
// METHOD_NOT_ALLOWED with an Allow header. A path with no route of its
// own, only with a trailing slash added ("/v1/things" where the pattern is
// "/v1/things/" or "/v1/things/{$}"), gets 404 ROUTE_NOT_FOUND, not
// ServeMux's redirect, as do paths with empty, "." or ".." segments. It
// records the matched pattern for the access log and metrics.
//
// Patterns are ServeMux patterns ("GET /v1/leads/{id}"); the pattern "/"
// is taken by the router itself. Routes may be registered while serving.
//
// A request whose method and path equal a pattern with a method and a
// literal path (no host, no wildcard, no trailing slash) goes straight to
// that pattern's handler: no other pattern can be more specific, so this
// is the route ServeMux would pick, found with one map lookup instead of
// its tree walk, and r.Pattern is set as ServeMux sets it. Everything else
// goes to the ServeMux. (One difference: a Router mounted under another
// ServeMux's wildcard pattern leaves that pattern's path values readable
// on the fast path, where ServeMux would clear them.)
type Router struct {
	mux   *http.ServeMux
	mu    sync.Mutex                         // serialises registrations
	exact atomic.Pointer[map[string][]route] // path → routes; copied on write
	hosts bool                               // a host pattern exists: no exact lookups
	// methods are the methods tried for an Allow header: probeMethods and
	// any other a pattern names. Copied on write.
	methods atomic.Pointer[[]string]
	// slash is set once a pattern other than the root ends in "/" or
	// "{$}": ServeMux may then redirect a path without that slash to it,
	// and ServeHTTP probes for that redirect.
	slash atomic.Bool
}

// muxHasPatterns reports whether ServeMux matches Go 1.22 patterns, which
// GODEBUG=httpmuxgo121=1 turns off; the exact-route lookup is then off
// too.
var muxHasPatterns = sync.OnceValue(func() (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	m := http.NewServeMux()
	m.HandleFunc("GET /probe", func(http.ResponseWriter, *http.Request) {})
	_, p := m.Handler(&http.Request{Method: http.MethodGet, Host: "localhost", URL: &url.URL{Path: "/probe"}})
	return p == "GET /probe"
})

// route is a pattern with a method and a literal path.
type route struct {
	method, pattern string
	h               http.Handler
}

// probeMethods are the methods tried when building an Allow header, with
// any other method a pattern names.
var probeMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions}

// NewRouter returns an empty Router.
func NewRouter() *Router {
	rt := &Router{mux: http.NewServeMux()}
	rt.mux.HandleFunc("/", rt.fallback)
	return rt
}

// Handle registers h for pattern. It panics, as ServeMux does, on an
// invalid or conflicting pattern.
func (rt *Router) Handle(pattern string, h http.Handler) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.mux.Handle(pattern, h)
	// Split as ServeMux does: the method ends at the first space or tab.
	method, path := "", pattern
	if i := strings.IndexAny(pattern, " \t"); i >= 0 {
		method, path = pattern[:i], strings.TrimLeft(pattern[i+1:], " \t")
	}
	if ms := rt.probes(); method != "" && !slices.Contains(ms, method) {
		ms = append(ms[:len(ms):len(ms)], method)
		rt.methods.Store(&ms)
	}
	// The root ("/", "/{$}") never causes a redirect: every path already
	// starts with its slash. Only deeper patterns cost the probe.
	if path != "/" && path != "/{$}" && (strings.HasSuffix(path, "/") || strings.HasSuffix(path, "{$}")) {
		rt.slash.Store(true)
	}
	switch {
	case !strings.HasPrefix(path, "/"):
		rt.hosts = true
		rt.exact.Store(nil)
		return
	case rt.hosts, method == "", !muxHasPatterns(), strings.HasSuffix(path, "/"), strings.ContainsAny(path, "{}%"):
		return
	}
	next := map[string][]route{}
	if old := rt.exact.Load(); old != nil {
		maps.Copy(next, *old)
	}
	next[path] = append(next[path][:len(next[path]):len(next[path])], route{method: method, pattern: pattern, h: h})
	rt.exact.Store(&next)
}

// HandleFunc registers f for pattern.
func (rt *Router) HandleFunc(pattern string, f http.HandlerFunc) { rt.Handle(pattern, f) }

// lookup returns the route with r's method and path exactly, if any.
func (rt *Router) lookup(r *http.Request) (route, bool) {
	m := rt.exact.Load()
	if m == nil || r.URL.RawPath != "" {
		return route{}, false
	}
	for _, e := range (*m)[r.URL.Path] {
		if e.method == r.Method {
			return e, true
		}
	}
	return route{}, false
}

// ServeHTTP dispatches r to the handler of the pattern that matches it.
func (rt *Router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if st := stateFrom(r.Context()); st != nil {
		defer func() { st.route = r.Pattern }()
	}
	if p := r.URL.Path; !strings.HasPrefix(p, "/") || r.Method != http.MethodConnect && !cleanPath(p) {
		// ServeMux would redirect to the cleaned path with an HTML body,
		// and answer a CONNECT without a path (authority form) with its
		// plain-text 404; an API answers that such a path does not exist.
		if p == "" {
			p = r.RequestURI
		}
		apierror.Write(w, r, apierror.New(apierror.RouteNotFound, "").With("path", p))
		return
	}
	if e, ok := rt.lookup(r); ok {
		r.Pattern = e.pattern
		e.h.ServeHTTP(w, r)
		return
	}
	if rt.slash.Load() && !strings.HasSuffix(r.URL.Path, "/") {
		// ServeMux would redirect to the path with a trailing slash, with
		// an HTML body; this path has no route of its own.
		if h, _ := rt.mux.Handler(r); isRedirect(h) {
			apierror.Write(w, r, apierror.New(apierror.RouteNotFound, "").With("path", r.URL.Path))
			return
		}
	}
	rt.mux.ServeHTTP(w, r)
}

// redirectType is the type of the handler ServeMux.Handler returns for a
// redirect.
var redirectType = reflect.TypeOf(http.RedirectHandler("/", http.StatusTemporaryRedirect))

// isRedirect reports whether h is one of ServeMux's redirects.
func isRedirect(h http.Handler) bool { return reflect.TypeOf(h) == redirectType }

// probes returns the methods to try for an Allow header.
func (rt *Router) probes() []string {
	if ms := rt.methods.Load(); ms != nil {
		return *ms
	}
	return probeMethods
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
	for _, m := range rt.probes() {
		if m == r.Method {
			continue
		}
		probe.Method = m
		// A redirect to the path with a trailing slash is no route here
		// (see ServeHTTP).
		if h, pattern := rt.mux.Handler(&probe); pattern != "" && pattern != "/" && !isRedirect(h) {
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
