package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate-dev/tollgate/apierror"
)

// HeaderIdempotencyKey is the request header that makes a POST or PATCH
// safe to retry.
const HeaderIdempotencyKey = "Idempotency-Key"

const (
	// maxErrorBody bounds how much of an error body is read to decode it.
	maxErrorBody = 1 << 20
	// maxDrain bounds how much of a body is read before closing it, so that
	// the connection can be reused.
	maxDrain = 64 << 10
)

// engine runs one request with the retry policy, the retry budget and
// pacing. Client and Transport each own one; it is safe for concurrent use.
type engine struct {
	policy Policy // with defaults
	now    func() time.Time
	sleep  func(ctx context.Context, d time.Duration) error
	log    *slog.Logger
	budget *budget // nil when disabled
	pacer  *pacer  // nil when disabled
}

func newEngine(p Policy, now func() time.Time, sleep func(context.Context, time.Duration) error, log *slog.Logger) *engine {
	p = p.withDefaults()
	e := &engine{policy: p, now: now, sleep: sleep, log: log}
	if e.now == nil {
		e.now = time.Now
	}
	if e.sleep == nil {
		e.sleep = Sleep
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if !p.DisableBudget {
		e.budget = newBudget(p.BudgetRatio, p.BudgetFloor)
	}
	if !p.DisablePacing {
		e.pacer = newPacer()
	}
	return e
}

// Sleep waits for d or until ctx is done, whichever comes first; it returns
// ctx.Err() in the second case. It is the default sleeper of WithClock.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func newIdempotencyKey() string { return "idk_" + strings.ToLower(rand.Text()) }

// outcome is what a caller of engine.do learns besides the response.
type outcome struct {
	attempts int
	stop     StopReason
	apiErr   *apierror.Error // decoded error of the last non-2xx response
}

// do sends req with send until it succeeds or the policy says stop. It
// returns the last response (whose body the caller must close; a non-2xx
// body was buffered and can still be read) or the last transport error.
// req itself is never modified.
func (e *engine) do(req *http.Request, send func(*http.Request) (*http.Response, error)) (*http.Response, outcome, error) {
	ctx := req.Context()
	var out outcome

	idempotent := true
	switch req.Method {
	case http.MethodPost, http.MethodPatch:
		if req.Header.Get(HeaderIdempotencyKey) == "" && !e.policy.DisableIdempotencyKeys {
			req = req.Clone(ctx) // shares Body and GetBody
			// Each hop of a redirect (http.Client follows a 307/308 with a
			// new request) gets its own key: a server with tollgate's
			// Idempotency middleware stored the 307 under the first one,
			// with the first path in its fingerprint, and would refuse the
			// same key on the new path (422 IDEMPOTENCY_KEY_REUSED).
			req.Header.Set(HeaderIdempotencyKey, newIdempotencyKey())
		}
		idempotent = req.Header.Get(HeaderIdempotencyKey) != ""
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace,
		http.MethodPut, http.MethodDelete:
	default:
		idempotent = false
	}
	hasBody := req.Body != nil && req.Body != http.NoBody
	rewindable := !hasBody || req.GetBody != nil
	key := keyOf(req)
	if e.budget != nil {
		e.budget.call()
	}

	serverWaited := false // the last wait was one the server named
	for n := 1; ; n++ {
		r := req
		if n > 1 {
			r = req.Clone(ctx)
			if hasBody {
				body, err := req.GetBody()
				if err != nil {
					out.stop = StopNoRewind
					return nil, out, fmt.Errorf("rewind request body: %w", err)
				}
				r.Body = body
			}
		}
		var ticket uint64
		if e.pacer != nil {
			var err error
			if ticket, err = e.pacer.acquire(ctx, key, e, serverWaited); err != nil {
				if hasBody {
					r.Body.Close()
				}
				out.stop = StopContext
				return nil, out, err
			}
		}
		start := e.now()
		resp, err := send(r)
		out.attempts = n
		a := &Attempt{Request: r, Number: n, Response: resp, Err: err}
		if err == nil && resp.StatusCode >= 400 {
			a.APIError = bufferError(resp)
		}
		out.apiErr = a.APIError
		if e.pacer != nil {
			e.pacer.release(key, ticket, resp, a.APIError, e.now())
		}
		if err != nil {
			e.log.DebugContext(ctx, "tollgate: attempt", "method", r.Method, "url", r.URL.Redacted(),
				"attempt", n, "error", err.Error(), "took", e.now().Sub(start))
		} else {
			attrs := []any{"method", r.Method, "url", r.URL.Redacted(), "attempt", n,
				"status", resp.StatusCode, "took", e.now().Sub(start)}
			if a.APIError != nil {
				attrs = append(attrs, "code", string(a.APIError.Code))
			}
			if rem := resp.Header.Get("X-RateLimit-Remaining"); rem != "" {
				attrs = append(attrs, "ratelimit_remaining", rem)
			}
			e.log.DebugContext(ctx, "tollgate: attempt", attrs...)
			if resp.StatusCode < 400 {
				return resp, out, nil
			}
		}

		wait, source, stop := e.decide(ctx, a, idempotent, rewindable)
		if stop != "" {
			out.stop = stop
			e.log.DebugContext(ctx, "tollgate: giving up", "attempt", n, "reason", string(stop))
			return resp, out, err
		}
		if resp != nil {
			drain(resp.Body)
		}
		e.log.DebugContext(ctx, "tollgate: waiting", "wait", wait, "source", source, "next_attempt", n+1)
		serverWaited = source != "backoff"
		if err := e.sleep(ctx, wait); err != nil {
			out.stop = StopContext
			return nil, out, err
		}
	}
}

// decide returns the wait before the next attempt, or why there is none.
func (e *engine) decide(ctx context.Context, a *Attempt, idempotent, rewindable bool) (time.Duration, string, StopReason) {
	switch {
	case ctx.Err() != nil:
		return 0, "", StopContext
	case !e.policy.CheckRetry(a):
		return 0, "", StopNotRetryable
	case !idempotent:
		return 0, "", StopNotIdempotent
	case !rewindable:
		return 0, "", StopNoRewind
	case a.Number >= e.policy.MaxAttempts:
		return 0, "", StopAttempts
	}
	now := e.now()
	wait, source, ok := ServerWait(a.Response, a.APIError, now)
	if ok {
		if wait > e.policy.MaxWait {
			return 0, "", StopMaxWait
		}
	} else {
		wait, source = e.policy.Backoff(e.policy.BaseDelay, e.policy.MaxDelay, a.Number), "backoff"
	}
	if pastDeadline(ctx, now, wait) {
		return 0, "", StopDeadline
	}
	if e.budget != nil && !e.budget.retry() {
		return 0, "", StopBudget
	}
	return wait, source, ""
}

// ServerWait returns the wait a response asks for, in the contract's order:
// the Retry-After header (seconds or HTTP date), then details.retry_after,
// then X-RateLimit-Reset when X-RateLimit-Remaining is 0 or absent. source
// names the one used; ok is false when the response names no wait, or
// only garbage (a negative, NaN or infinite value). A wait above 2^31
// seconds (even a Retry-After, details.retry_after or X-RateLimit-Reset
// too large for an int64 or a float64) is clamped to 2^31 seconds rather
// than dropped, so that Policy.MaxWait still refuses it. apiErr may be nil.
func ServerWait(resp *http.Response, apiErr *apierror.Error, now time.Time) (wait time.Duration, source string, ok bool) {
	var h http.Header
	switch {
	case resp != nil:
		h = resp.Header
	case apiErr != nil:
		h = apiErr.Header
	}
	if d, ok := apierror.ParseRetryAfter(h, now); ok {
		return d, "retry-after", true
	}
	if apiErr != nil {
		if d, ok := seconds(apiErr.Details["retry_after"]); ok {
			return d, "details.retry_after", true
		}
	}
	if d, ok := apierror.ParseRateLimitReset(h, now); ok {
		return d, "x-ratelimit-reset", true
	}
	return 0, "", false
}

// maxServerWait is the longest wait a server can name (about 68 years); a
// longer one is clamped to it, as apierror.ParseRetryAfter does, so that
// it exceeds Policy.MaxWait instead of being dropped.
const maxServerWait = 1 << 31 * time.Second

// seconds reads a JSON number of seconds (a float64 after decoding, or a
// numeric string) as a duration. ok is false for a negative number, NaN,
// an infinity or anything that is not a number; a number above 2^31 is
// clamped to maxServerWait.
func seconds(v any) (d time.Duration, ok bool) {
	var f float64
	switch x := v.(type) {
	case float64:
		f = x
	case int:
		f = float64(x)
	case int64:
		f = float64(x)
	case json.Number:
		return parseSeconds(x.String())
	case string:
		return parseSeconds(x)
	default:
		return 0, false
	}
	return floatSeconds(f)
}

// parseSeconds reads a decimal number of seconds. A number too large for a
// float64 is clamped like any large one; "NaN" and "Inf" are rejected.
func parseSeconds(s string) (time.Duration, bool) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) && f > 0 { // beyond float64: +Inf
			return maxServerWait, true
		}
		return 0, false
	}
	return floatSeconds(f)
}

func floatSeconds(f float64) (time.Duration, bool) {
	switch {
	case math.IsNaN(f) || math.IsInf(f, 0) || f < 0:
		return 0, false
	case f > float64(maxServerWait/time.Second):
		return maxServerWait, true
	}
	return time.Duration(f * float64(time.Second)), true
}

// bufferError reads up to maxErrorBody of resp's body, decodes it, and puts
// it back so that the caller can still read the whole body.
func bufferError(resp *http.Response) *apierror.Error {
	orig := resp.Body
	if orig == nil {
		orig = http.NoBody
	}
	data, _ := io.ReadAll(io.LimitReader(orig, maxErrorBody))
	peek := *resp
	peek.Body = io.NopCloser(bytes.NewReader(data))
	apiErr := apierror.Decode(&peek)
	resp.Body = replayBody{io.MultiReader(bytes.NewReader(data), orig), orig}
	return apiErr
}

type replayBody struct {
	io.Reader
	io.Closer
}

// drain reads a bounded amount of body and closes it.
func drain(body io.ReadCloser) {
	if body == nil {
		return
	}
	_, _ = io.CopyN(io.Discard, body, maxErrorBody+maxDrain)
	body.Close()
}
