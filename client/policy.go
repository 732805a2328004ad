package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/tollgate-dev/tollgate/apierror"
)

// Defaults of a [Policy]; a zero field of a Policy means its default.
const (
	DefaultMaxAttempts = 3
	DefaultBaseDelay   = 500 * time.Millisecond
	DefaultMaxDelay    = 20 * time.Second
	DefaultMaxWait     = 30 * time.Second
	DefaultBudgetRatio = 0.1
	DefaultBudgetFloor = 10
)

// Policy says when and how a request is retried. The zero value is the
// default policy: 3 attempts, full-jitter backoff from 500ms capped at 20s,
// server-requested waits up to 30s, a retry budget of 10% of requests plus
// 10, and pacing on X-RateLimit-Remaining. A Policy is a plain value; the
// state it configures (budget, pacing) lives in the Client or Transport that
// uses it.
type Policy struct {
	// MaxAttempts is the number of attempts per call, the first included.
	// 1 disables retries. Zero means DefaultMaxAttempts.
	MaxAttempts int
	// BaseDelay and MaxDelay shape the backoff used when the server names
	// no wait: retry n waits Backoff(BaseDelay, MaxDelay, n). Zero means
	// DefaultBaseDelay and DefaultMaxDelay.
	BaseDelay time.Duration
	MaxDelay  time.Duration
	// MaxWait caps a wait the server asks for (Retry-After,
	// details.retry_after, X-RateLimit-Reset). A server asking for longer
	// makes the call fail at once with the server's error instead of
	// sleeping. Zero means DefaultMaxWait.
	MaxWait time.Duration
	// CheckRetry decides whether an attempt's outcome is worth another
	// attempt. Nil means DefaultCheckRetry. Whatever it says, a POST or
	// PATCH without an Idempotency-Key is never retried, nor is a request
	// whose body cannot be rewound.
	CheckRetry CheckRetry
	// Backoff computes the wait when the server named none. Nil means
	// FullJitter.
	Backoff Backoff
	// BudgetRatio and BudgetFloor size the retry budget shared by every
	// call of one Client or Transport: retries never exceed BudgetRatio ×
	// calls + BudgetFloor, so an outage is not amplified. Zero means
	// DefaultBudgetRatio and DefaultBudgetFloor.
	BudgetRatio float64
	BudgetFloor int
	// DisableBudget turns the retry budget off: every call may use all its
	// attempts.
	DisableBudget bool
	// DisablePacing turns pacing off. With pacing on, once a response to a
	// request said X-RateLimit-Remaining: 0, the next request to the same
	// host (scheme and host) with the same credential (Authorization or
	// X-Api-Key, or none) waits for X-RateLimit-Reset (when that is within
	// MaxWait and the context deadline) instead of earning a 429.
	DisablePacing bool
	// DisableIdempotencyKeys stops the SDK from adding an Idempotency-Key
	// to POST and PATCH requests that have none. Such requests are then
	// never retried. A key the caller set is always kept.
	DisableIdempotencyKeys bool
}

// withDefaults returns p with every zero field set to its default.
func (p Policy) withDefaults() Policy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = DefaultMaxAttempts
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = DefaultBaseDelay
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = DefaultMaxDelay
	}
	if p.MaxWait <= 0 {
		p.MaxWait = DefaultMaxWait
	}
	if p.CheckRetry == nil {
		p.CheckRetry = DefaultCheckRetry
	}
	if p.Backoff == nil {
		p.Backoff = FullJitter
	}
	if p.BudgetRatio <= 0 {
		p.BudgetRatio = DefaultBudgetRatio
	}
	if p.BudgetFloor <= 0 {
		p.BudgetFloor = DefaultBudgetFloor
	}
	return p
}

// Attempt is the outcome of one attempt of a request, as CheckRetry sees it.
type Attempt struct {
	// Request is the request as sent (with its Idempotency-Key, if any).
	Request *http.Request
	// Number is 1 for the first attempt.
	Number int
	// Response is the response, nil when Err is set, except when the
	// http.Client's CheckRedirect refused to follow a redirect: then
	// Response is that redirect (its body already closed) and Err the
	// refusal, as http.Client.Do returns them. Its body must not be read
	// by CheckRetry; use APIError.
	Response *http.Response
	// APIError is the decoded error of a non-2xx Response, nil otherwise.
	APIError *apierror.Error
	// Err is the transport error (connection refused, reset, timeout).
	Err error
}

// CheckRetry reports whether the outcome of an attempt may be retried. It
// must be safe for concurrent use.
type CheckRetry func(a *Attempt) bool

// Backoff returns how long to wait before retry number retry (1 for the
// second attempt) when the server named no wait. It must be safe for
// concurrent use.
type Backoff func(base, max time.Duration, retry int) time.Duration

// DefaultCheckRetry is the contract's rule: retry connection errors and
// 429, 500, 502, 503 and 504; never another 4xx, except 409
// IDEMPOTENCY_KEY_IN_USE. The caller's context ending, a redirect the
// http.Client refused or could not follow, a TLS verification failure and
// a malformed URL are not connection errors and are not retried; a timeout
// of the connection or of the attempt (a Dialer or http.Client Timeout) is.
func DefaultCheckRetry(a *Attempt) bool {
	if a.Err != nil {
		if a.Response != nil {
			// Only a CheckRedirect refusal makes http.Client.Do return a
			// response with an error (see http.Client.Do): a decision of
			// the caller's, whatever its message, not a connection error.
			return false
		}
		return retryableTransportError(a.Request, a.Err)
	}
	if a.Response == nil {
		return false
	}
	switch a.Response.StatusCode {
	case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	case http.StatusConflict:
		return a.APIError != nil && a.APIError.Code == apierror.IdempotencyKeyInUse
	}
	return false
}

// retryableTransportError reports whether err, the transport error of req,
// may be retried.
func retryableTransportError(req *http.Request, err error) bool {
	// Only the caller's context ending stops retries. errors.Is(err,
	// context.DeadlineExceeded) would not do: net's "i/o timeout" and
	// http.Client's Timeout errors match it too, and they are connection
	// errors of one attempt.
	if req != nil {
		if req.Context().Err() != nil {
			return false
		}
	} else if holdsContextError(err) {
		return false
	}
	var (
		certErr  *tls.CertificateVerificationError
		authErr  x509.UnknownAuthorityError
		hostErr  x509.HostnameError
		invalErr x509.CertificateInvalidError
	)
	if errors.As(err, &certErr) || errors.As(err, &authErr) || errors.As(err, &hostErr) || errors.As(err, &invalErr) {
		return false
	}
	msg := err.Error()
	for _, s := range []string{"unsupported protocol scheme", "invalid header", "no Host in request URL",
		"failed to parse Location header"} {
		if strings.Contains(msg, s) {
			return false
		}
	}
	return true
}

// holdsContextError reports whether err's chain holds context.Canceled or
// context.DeadlineExceeded themselves, not merely an error that matches
// them with errors.Is.
func holdsContextError(err error) bool {
	for err != nil {
		if err == context.Canceled || err == context.DeadlineExceeded {
			return true
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		case interface{ Unwrap() []error }:
			return slices.ContainsFunc(u.Unwrap(), holdsContextError)
		default:
			return false
		}
	}
	return false
}

// FullJitter is exponential backoff with full jitter: a uniformly random
// wait in [0, ExponentialCeiling(base, max, retry)]. It never panics, for
// any arguments, and is safe for concurrent use.
func FullJitter(base, max time.Duration, retry int) time.Duration {
	ceil := ExponentialCeiling(base, max, retry)
	if ceil <= 0 {
		return 0
	}
	// In uint64, ceil+1 cannot overflow even when ceil is math.MaxInt64.
	return time.Duration(rand.Uint64N(uint64(ceil) + 1))
}

// ExponentialCeiling returns min(max, base·2^(retry-1)), the upper bound
// of FullJitter's wait for retry; a retry below 1 counts as 1. It is 0
// when base or max is not positive.
func ExponentialCeiling(base, max time.Duration, retry int) time.Duration {
	if base <= 0 || max <= 0 {
		return 0
	}
	if retry < 1 {
		retry = 1
	}
	d := base
	for i := 1; i < retry; i++ {
		if d >= max/2 {
			return max
		}
		d *= 2
	}
	return min(d, max)
}

// StopReason says why a call made no further attempt.
type StopReason string

// The reasons a call stops retrying.
const (
	// StopNotRetryable: the outcome is not retryable (a 4xx, or CheckRetry said no).
	StopNotRetryable StopReason = "not retryable"
	// StopAttempts: every attempt of Policy.MaxAttempts was used.
	StopAttempts StopReason = "attempts exhausted"
	// StopMaxWait: the server asked to wait longer than Policy.MaxWait.
	StopMaxWait StopReason = "server wait exceeds max wait"
	// StopDeadline: the wait would pass the context deadline.
	StopDeadline StopReason = "wait passes context deadline"
	// StopBudget: the client's retry budget is spent.
	StopBudget StopReason = "retry budget exhausted"
	// StopNotIdempotent: a POST or PATCH without an Idempotency-Key.
	StopNotIdempotent StopReason = "not idempotent"
	// StopNoRewind: the request body cannot be sent again (no GetBody).
	StopNoRewind StopReason = "body not rewindable"
	// StopContext: the context was cancelled or expired.
	StopContext StopReason = "context done"
)
