package apierror

import "net/http"

// Code is a machine-readable error code from the tollgate catalogue. Clients
// switch on it; it is UPPER_SNAKE and stable.
type Code string

// The catalogue. Each code has exactly one HTTP status; see docs/errors.md.
const (
	InvalidRequest       Code = "INVALID_REQUEST"
	MissingField         Code = "MISSING_FIELD"
	ValidationError      Code = "VALIDATION_ERROR"
	Unauthorized         Code = "UNAUTHORIZED"
	Forbidden            Code = "FORBIDDEN"
	NotFound             Code = "NOT_FOUND"
	RouteNotFound        Code = "ROUTE_NOT_FOUND"
	MethodNotAllowed     Code = "METHOD_NOT_ALLOWED"
	AlreadyExists        Code = "ALREADY_EXISTS"
	Conflict             Code = "CONFLICT"
	IdempotencyKeyInUse  Code = "IDEMPOTENCY_KEY_IN_USE"
	PayloadTooLarge      Code = "PAYLOAD_TOO_LARGE"
	UnsupportedMediaType Code = "UNSUPPORTED_MEDIA_TYPE"
	Unprocessable        Code = "UNPROCESSABLE"
	IdempotencyKeyReused Code = "IDEMPOTENCY_KEY_REUSED"
	RateLimited          Code = "RATE_LIMITED"
	QuotaExceeded        Code = "QUOTA_EXCEEDED"
	InternalError        Code = "INTERNAL_ERROR"
	BadGateway           Code = "BAD_GATEWAY"
	ServiceUnavailable   Code = "SERVICE_UNAVAILABLE"
	GatewayTimeout       Code = "GATEWAY_TIMEOUT"
)

type codeInfo struct {
	status    int
	message   string
	retryable bool
}

// catalogue is the one table from code to status, default message and
// retry advice. Everything else in the project reads it through Code's
// methods.
var catalogue = map[Code]codeInfo{
	InvalidRequest:       {http.StatusBadRequest, "The request is invalid.", false},
	MissingField:         {http.StatusBadRequest, "A required field is missing.", false},
	ValidationError:      {http.StatusBadRequest, "A field has an invalid value.", false},
	Unauthorized:         {http.StatusUnauthorized, "A valid API key is required.", false},
	Forbidden:            {http.StatusForbidden, "The API key lacks a required scope.", false},
	NotFound:             {http.StatusNotFound, "The resource was not found.", false},
	RouteNotFound:        {http.StatusNotFound, "No route matches this path.", false},
	MethodNotAllowed:     {http.StatusMethodNotAllowed, "The method is not allowed on this path.", false},
	AlreadyExists:        {http.StatusConflict, "The resource already exists.", false},
	Conflict:             {http.StatusConflict, "The request conflicts with the resource's state.", false},
	IdempotencyKeyInUse:  {http.StatusConflict, "A request with this Idempotency-Key is still in progress.", true},
	PayloadTooLarge:      {http.StatusRequestEntityTooLarge, "The request body is too large.", false},
	UnsupportedMediaType: {http.StatusUnsupportedMediaType, "The request body must be JSON.", false},
	Unprocessable:        {http.StatusUnprocessableEntity, "The request cannot be processed.", false},
	IdempotencyKeyReused: {http.StatusUnprocessableEntity, "This Idempotency-Key was used with a different request.", false},
	RateLimited:          {http.StatusTooManyRequests, "Rate limit exceeded.", true},
	QuotaExceeded:        {http.StatusTooManyRequests, "Usage quota exceeded.", true},
	InternalError:        {http.StatusInternalServerError, "An internal error occurred.", true},
	BadGateway:           {http.StatusBadGateway, "The upstream service failed.", true},
	ServiceUnavailable:   {http.StatusServiceUnavailable, "The service is temporarily unavailable.", true},
	GatewayTimeout:       {http.StatusGatewayTimeout, "The upstream service timed out.", true},
}

// order lists the catalogue in documentation order.
var order = []Code{
	InvalidRequest, MissingField, ValidationError, Unauthorized, Forbidden,
	NotFound, RouteNotFound, MethodNotAllowed, AlreadyExists, Conflict,
	IdempotencyKeyInUse, PayloadTooLarge, UnsupportedMediaType, Unprocessable,
	IdempotencyKeyReused, RateLimited, QuotaExceeded, InternalError,
	BadGateway, ServiceUnavailable, GatewayTimeout,
}

// Codes returns every code of the catalogue, in documentation order. The
// slice is a fresh copy.
func Codes() []Code { return append([]Code(nil), order...) }

// Known reports whether c is in the catalogue.
func (c Code) Known() bool { _, ok := catalogue[c]; return ok }

// Status returns the HTTP status of c; 500 for a code outside the catalogue.
func (c Code) Status() int {
	if i, ok := catalogue[c]; ok {
		return i.status
	}
	return http.StatusInternalServerError
}

// Message returns the default human message of c.
func (c Code) Message() string {
	if i, ok := catalogue[c]; ok {
		return i.message
	}
	return catalogue[InternalError].message
}

// Retryable reports whether a client may retry a request that failed with c
// (after the wait the response names, or with backoff).
func (c Code) Retryable() bool { return catalogue[c].retryable }

// String returns the code itself.
func (c Code) String() string { return string(c) }

// CodeForStatus returns the catalogue code a client should assume for a
// response with the given status that carries no tollgate body.
func CodeForStatus(status int) Code {
	switch status {
	case http.StatusBadRequest:
		return InvalidRequest
	case http.StatusUnauthorized:
		return Unauthorized
	case http.StatusForbidden:
		return Forbidden
	case http.StatusNotFound:
		return NotFound
	case http.StatusMethodNotAllowed:
		return MethodNotAllowed
	case http.StatusConflict:
		return Conflict
	case http.StatusRequestEntityTooLarge:
		return PayloadTooLarge
	case http.StatusUnsupportedMediaType:
		return UnsupportedMediaType
	case http.StatusUnprocessableEntity:
		return Unprocessable
	case http.StatusTooManyRequests:
		return RateLimited
	case http.StatusBadGateway:
		return BadGateway
	case http.StatusServiceUnavailable:
		return ServiceUnavailable
	case http.StatusGatewayTimeout:
		return GatewayTimeout
	}
	if status >= 400 && status < 500 {
		return InvalidRequest
	}
	return InternalError
}
