// Package apierror is tollgate's error catalogue and its one error writer.
//
// Every non-2xx response tollgate writes goes through Write, which produces
// the JSON envelope {"error":{"code","message","details"}} or, when the
// request asks for it, RFC 9457 problem+json. Clients turn any non-2xx
// response back into an *Error with Decode.
//
// The package imports only the standard library.
package apierror

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Details holds the optional members of an error's details object. The
// writer adds request_id.
type Details = map[string]any

// FieldError describes one invalid field of a request, for
// VALIDATION_ERROR's details.errors.
type FieldError struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

// Error is an error with a catalogue code, a safe human message, details for
// programs, and headers to send with it. The cause, if any, is kept for logs
// and errors.Is/As, and never sent to a client.
//
// An *Error is not safe for concurrent mutation; build it, then write it.
type Error struct {
	// Code is the catalogue code.
	Code Code
	// Message is one human sentence, safe to show.
	Message string
	// Details are the code's optional members (field, reason, limit, …).
	Details Details
	// Header holds headers to send with the error (Retry-After, Allow, …).
	Header http.Header
	// Status is the HTTP status. Zero means Code.Status(). Decode sets it
	// to the status received.
	Status int
	// Foreign is set by Decode when the body was not a tollgate error (an
	// HTML page from a proxy, an empty or garbled body).
	Foreign bool

	cause    error
	sentinel bool
}

// New returns an *Error with code and message; an empty message means the
// code's default message.
func New(code Code, message string) *Error {
	if message == "" {
		message = code.Message()
	}
	return &Error{Code: code, Message: message}
}

// Wrap returns an *Error with code and message whose cause is err. The
// cause is logged, never sent.
func Wrap(err error, code Code, message string) *Error {
	e := New(code, message)
	e.cause = err
	return e
}

// Sentinel returns a value for errors.Is that matches any *Error with the
// given code: errors.Is(err, apierror.Sentinel(apierror.NotFound)).
func Sentinel(code Code) *Error {
	return &Error{Code: code, Message: code.Message(), sentinel: true}
}

// With sets details[key] = value and returns e, for chaining.
func (e *Error) With(key string, value any) *Error {
	if e.Details == nil {
		e.Details = Details{}
	}
	e.Details[key] = value
	return e
}

// WithHeader sets a header to send with e and returns e, for chaining.
func (e *Error) WithHeader(key, value string) *Error {
	if e.Header == nil {
		e.Header = http.Header{}
	}
	e.Header.Set(key, value)
	return e
}

// WithRetryAfter sets details.retry_after and the Retry-After header to d
// rounded up to whole seconds, at least 1.
func (e *Error) WithRetryAfter(d time.Duration) *Error {
	s := RetrySeconds(d)
	return e.With("retry_after", s).WithHeader("Retry-After", strconv.Itoa(s))
}

// RetrySeconds rounds d up to whole seconds, with a minimum of 1: the value
// of Retry-After and details.retry_after.
func RetrySeconds(d time.Duration) int {
	s := int((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return s
}

// HTTPStatus returns the status to send for e.
func (e *Error) HTTPStatus() int {
	if e.Status != 0 {
		return e.Status
	}
	return e.Code.Status()
}

// RequestID returns details.request_id, if it is a string.
func (e *Error) RequestID() string {
	s, _ := e.Details["request_id"].(string)
	return s
}

// Error returns "CODE: message", followed by the cause when there is one.
// It is for logs; the wire carries Message only.
func (e *Error) Error() string {
	if e.cause != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.cause)
	}
	return string(e.Code) + ": " + e.Message
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.cause }

// Is reports whether target is a Sentinel with e's code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.sentinel && t.Code == e.Code
}

// From returns err as an *Error: the *Error in its chain if there is one,
// otherwise a mapping of well-known causes (context deadline, cancellation,
// http.MaxBytesError), otherwise INTERNAL_ERROR with err as the cause.
func From(err error) *Error {
	if e, ok := err.(*Error); ok {
		return e // the common case, without errors.As's reflection
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return Wrap(err, PayloadTooLarge, "").With("limit_bytes", mbe.Limit)
	case errors.Is(err, context.DeadlineExceeded):
		return Wrap(err, ServiceUnavailable, "The request took too long to process.").
			With("reason", "timeout").WithRetryAfter(time.Second)
	case errors.Is(err, context.Canceled):
		return Wrap(err, ServiceUnavailable, "The request was cancelled.").
			With("reason", "cancelled").WithRetryAfter(time.Second)
	}
	return Wrap(err, InternalError, "")
}

// CodeOf returns the code of err: the code of the *Error in its chain, the
// mapped code of a well-known cause (see From), "" for nil, and
// INTERNAL_ERROR otherwise.
func CodeOf(err error) Code {
	if err == nil {
		return ""
	}
	return From(err).Code
}
