package client

import (
	"errors"
	"time"

	"github.com/tollgate-dev/tollgate/apierror"
)

// Sentinels for errors.Is, one per catalogue code:
//
//	if errors.Is(err, client.ErrNotFound) { … }
//
// Each matches any error whose chain holds an *apierror.Error with that
// code. They are values to compare with, never to modify.
var (
	ErrInvalidRequest       = apierror.Sentinel(apierror.InvalidRequest)
	ErrMissingField         = apierror.Sentinel(apierror.MissingField)
	ErrValidation           = apierror.Sentinel(apierror.ValidationError)
	ErrUnauthorized         = apierror.Sentinel(apierror.Unauthorized)
	ErrForbidden            = apierror.Sentinel(apierror.Forbidden)
	ErrNotFound             = apierror.Sentinel(apierror.NotFound)
	ErrRouteNotFound        = apierror.Sentinel(apierror.RouteNotFound)
	ErrMethodNotAllowed     = apierror.Sentinel(apierror.MethodNotAllowed)
	ErrAlreadyExists        = apierror.Sentinel(apierror.AlreadyExists)
	ErrConflict             = apierror.Sentinel(apierror.Conflict)
	ErrIdempotencyKeyInUse  = apierror.Sentinel(apierror.IdempotencyKeyInUse)
	ErrPayloadTooLarge      = apierror.Sentinel(apierror.PayloadTooLarge)
	ErrUnsupportedMediaType = apierror.Sentinel(apierror.UnsupportedMediaType)
	ErrUnprocessable        = apierror.Sentinel(apierror.Unprocessable)
	ErrIdempotencyKeyReused = apierror.Sentinel(apierror.IdempotencyKeyReused)
	ErrRateLimited          = apierror.Sentinel(apierror.RateLimited)
	ErrQuotaExceeded        = apierror.Sentinel(apierror.QuotaExceeded)
	ErrInternal             = apierror.Sentinel(apierror.InternalError)
	ErrBadGateway           = apierror.Sentinel(apierror.BadGateway)
	ErrServiceUnavailable   = apierror.Sentinel(apierror.ServiceUnavailable)
	ErrGatewayTimeout       = apierror.Sentinel(apierror.GatewayTimeout)
)

// ErrSecretNotReceived is the cause of the error Keys.Create and
// Keys.Rotate return when the answer holds no secret: it was the stored
// replay of an earlier attempt with the same Idempotency-Key (a replay
// never holds one), either because the first answer was cut off and the
// client retried, or because the caller repeated the call with
// ContextWithIdempotencyKey. The key exists and works; unless an earlier
// call received its secret, revoke it (its id is in the *CreatedKey
// returned with the error) and create another.
var ErrSecretNotReceived = errors.New("the key was made but its secret was not received")

// Error is the error every Client method returns when a call fails. Err is
// the *apierror.Error of the last response for a non-2xx answer, otherwise
// the transport or context error, or the reason a 2xx answer could not be
// decoded (or a request not made); errors.Is and errors.As see through it.
// The rate-limit state and the wait the last response named are parsed
// into RateLimit and RetryAfter.
type Error struct {
	// Op names the call, e.g. "get lead".
	Op string
	// Method and Path are the request's.
	Method string
	Path   string
	// Attempts is how many attempts were sent.
	Attempts int
	// Stop says why no further attempt was made; it is empty when no
	// attempt failed (a 2xx answer could not be decoded, or the request
	// could not be built).
	Stop StopReason
	// RateLimit is the X-RateLimit-* state of the last response, nil if it
	// had none.
	RateLimit *apierror.RateLimit
	// RetryAfter is the wait the last response named (Retry-After, else
	// details.retry_after); zero when it named none or named garbage
	// (negative, NaN, infinite). A wait above 2^31 seconds is clamped to
	// 2^31 seconds.
	RetryAfter time.Duration
	// Err is the cause.
	Err error
}

// Error returns "client: <op>: <cause>".
func (e *Error) Error() string { return "client: " + e.Op + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// APIError returns the server's error, or nil when the call failed without
// a response (connection error, cancelled context).
func (e *Error) APIError() *apierror.Error {
	var a *apierror.Error
	if errors.As(e.Err, &a) {
		return a
	}
	return nil
}

// newError builds the *Error of a failed call from the engine's outcome.
func newError(op, method, path string, out outcome, cause error, now time.Time) *Error {
	e := &Error{Op: op, Method: method, Path: path, Attempts: out.attempts, Stop: out.stop, Err: cause}
	if a := out.apiErr; a != nil {
		if cause == nil {
			e.Err = a
		}
		if rl, ok := apierror.ParseRateLimit(a.Header); ok {
			e.RateLimit = &rl
		}
		if d, ok := apierror.ParseRetryAfter(a.Header, now); ok {
			e.RetryAfter = d
		} else if d, ok := seconds(a.Details["retry_after"]); ok {
			e.RetryAfter = d
		}
	}
	return e
}
