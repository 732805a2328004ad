// Package middleware holds tollgate's net/http middleware: request ids,
// panic recovery, access logs, metrics, body limits, a router that answers
// unknown paths and methods with the error contract, and a strict JSON
// decoder for handlers.
//
// Every middleware writes errors through apierror.Write.
package middleware

import "net/http"

// Middleware wraps a handler.
type Middleware = func(http.Handler) http.Handler

// Chain composes middleware: Chain(a, b, c)(h) is a(b(c(h))), so the first
// middleware sees the request first.
func Chain(ms ...Middleware) Middleware {
	return func(h http.Handler) http.Handler {
		for i := len(ms) - 1; i >= 0; i-- {
			h = ms[i](h)
		}
		return h
	}
}
