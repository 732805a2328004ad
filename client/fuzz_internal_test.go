package client

import (
	"context"
	"encoding/json"
	"io"
	"math"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/apierror"
)

// FuzzServerWait checks how the client reads the wait a response names
// (Retry-After as seconds or an HTTP date, details.retry_after as any JSON
// value, X-RateLimit-Remaining and -Reset) and what the retry engine
// makes of it, on random header values, bodies, clocks and policies.
// Properties:
//
//   - nothing panics;
//   - ServerWait's wait is never negative nor above 2^31 seconds, is 0
//     with no source when ok is false, and follows the contract's order:
//     Retry-After when it parses (as apierror.ParseRetryAfter reads it),
//     else details.retry_after, else X-RateLimit-Reset when Remaining is
//     0 or absent;
//   - the seconds forms round-trip: Retry-After of n digits and
//     details.retry_after of n are n seconds (clamped to 2^31);
//   - an X-RateLimit-Reset in the future (any decimal integer, however
//     large) is a positive wait, exactly its distance from now when that
//     is at most 2^31 seconds, never dropped;
//   - the engine's decision waits a server-named wait only when it is at
//     most Policy.MaxWait (else StopMaxWait), a backoff at most
//     Policy.MaxDelay, never past the context's deadline;
//   - the *Error of a failed call carries the same Retry-After or
//     details.retry_after wait.
//
// Seeds live in testdata/fuzz/FuzzServerWait.
func FuzzServerWait(f *testing.F) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC).Unix()
	f.Add("3", "", "5", "", "", now, uint16(30), uint16(0))
	f.Add("", "", "1.5", "", "", now, uint16(0), uint16(0))
	f.Add("", "", `"1e400"`, "", "", now, uint16(0), uint16(0))
	f.Add("", "", `"NaN"`, "0", strconv.FormatInt(now+17, 10), now, uint16(0), uint16(0))
	f.Add("", "", "null", "", strconv.FormatInt(now+1<<40, 10), now, uint16(0), uint16(0))
	f.Add("", "", "", "0", "9223372036854775807", now, uint16(30), uint16(0))
	f.Add("", "", "", "", "99999999999999999999", now, uint16(30), uint16(0))
	f.Add("", "", "", "5", strconv.FormatInt(now+60, 10), now, uint16(0), uint16(0))
	f.Add("Sun, 22 Nov 2026 10:01:00 GMT", "Sun, 22 Nov 2026 10:00:30 GMT", "", "", "", now, uint16(60), uint16(10000))
	f.Add("-1", "", "-5", "", "-9223372036854775808", now, uint16(0), uint16(1))
	f.Add("99999999999999999999", "", "", "", "", now, uint16(65535), uint16(0))
	f.Fuzz(func(t *testing.T, retryAfter, date, detail, remaining, reset string, nowUnix int64, maxWaitSec, deadlineMs uint16) {
		nowUnix %= 200_000_000_000 // whole seconds within the years HTTP dates can write
		if nowUnix < 0 {
			nowUnix = -nowUnix
		}
		now := time.Unix(nowUnix, 0)
		h := http.Header{"Content-Type": {"application/json"}}
		for k, v := range map[string]string{"Retry-After": retryAfter, "Date": date, "X-RateLimit-Remaining": remaining, "X-RateLimit-Reset": reset} {
			if v != "" {
				h.Set(k, v)
			}
		}
		body := `{"error":{"code":"RATE_LIMITED","message":"m","details":{"retry_after":` + detail + `}}}`
		resp := &http.Response{StatusCode: http.StatusTooManyRequests, Header: h, Body: io.NopCloser(strings.NewReader(body))}
		apiErr := bufferError(resp)

		wait, source, ok := ServerWait(resp, apiErr, now)
		if wait < 0 || wait > maxServerWait || ok != (source != "") || !ok && wait != 0 {
			t.Fatalf("ServerWait = %v, %q, %v", wait, source, ok)
		}
		raWait, raOK := apierror.ParseRetryAfter(h, now)
		detWait, detOK := seconds(apiErr.Details["retry_after"])
		switch {
		case raOK:
			if source != "retry-after" || wait != raWait {
				t.Fatalf("Retry-After %q (%v): ServerWait = %v from %q", retryAfter, raWait, wait, source)
			}
		case detOK:
			if source != "details.retry_after" || wait != detWait {
				t.Fatalf("details.retry_after %s (%v): ServerWait = %v from %q", detail, detWait, wait, source)
			}
		default:
			if ok && source != "x-ratelimit-reset" {
				t.Fatalf("ServerWait = %v from %q with neither Retry-After %q nor details.retry_after %s", wait, source, retryAfter, detail)
			}
		}

		// The seconds forms, and a reset in the future.
		ra := strings.TrimSpace(retryAfter)
		if n, isNum := decimal(ra); isNum && n.Sign() >= 0 && (source != "retry-after" || wait != clampSeconds(n)) {
			t.Fatalf("Retry-After %q: ServerWait = %v from %q, want %v", retryAfter, wait, source, clampSeconds(n))
		}
		if n, isNum := decimal(detail); isNum && n.Sign() >= 0 && json.Valid([]byte(detail)) && !raOK && (source != "details.retry_after" || wait != clampSeconds(n)) {
			t.Fatalf("details.retry_after %s: ServerWait = %v from %q, want %v", detail, wait, source, clampSeconds(n))
		}
		rem := strings.TrimSpace(remaining)
		if n, isNum := decimal(strings.TrimSpace(reset)); isNum && !raOK && !detOK && (rem == "" || rem == "0") {
			left := new(big.Int).Sub(n, big.NewInt(nowUnix))
			switch {
			case left.Sign() <= 0:
				if ok {
					t.Fatalf("X-RateLimit-Reset %q, %s ago: ServerWait = %v from %q", reset, left, wait, source)
				}
			case source != "x-ratelimit-reset" || wait != clampSeconds(left):
				t.Fatalf("X-RateLimit-Reset %q, in %s s: ServerWait = %v from %q, %v; want %v", reset, left, wait, source, ok, clampSeconds(left))
			}
		}

		// What the engine makes of it.
		p := Policy{MaxWait: time.Duration(maxWaitSec) * time.Second, MaxAttempts: 5, DisableBudget: true, DisablePacing: true}
		e := newEngine(p, func() time.Time { return now }, nil, nil)
		var ctx context.Context = context.Background()
		dl := now.Add(time.Duration(deadlineMs) * time.Millisecond)
		if deadlineMs > 0 {
			ctx = deadlineContext{ctx, dl} // on the fake clock
		}
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://example.test/v1/leads", nil)
		a := &Attempt{Request: req, Number: 1, Response: resp, APIError: apiErr}
		d, how, stop := e.decide(ctx, a, true, true)
		limits := e.policy
		switch {
		case stop == StopMaxWait:
			if !ok || wait <= limits.MaxWait {
				t.Fatalf("StopMaxWait for a server wait of %v (%v), max %v", wait, ok, limits.MaxWait)
			}
		case stop == StopDeadline:
			if deadlineMs == 0 || ok && now.Add(wait).Before(dl) {
				t.Fatalf("StopDeadline for a server wait of %v (%v), deadline in %d ms", wait, ok, deadlineMs)
			}
		case stop != "":
			t.Fatalf("decide stopped: %q", stop)
		case d < 0:
			t.Fatalf("decide waits %v", d)
		case how == "backoff" && (ok || d > limits.MaxDelay):
			t.Fatalf("backoff of %v (server wait %v, %v), max %v", d, wait, ok, limits.MaxDelay)
		case how != "backoff" && (how != source || d != wait || d > limits.MaxWait):
			t.Fatalf("decide waits %v from %q; server asked %v from %q, max %v", d, how, wait, source, limits.MaxWait)
		case deadlineMs > 0 && !now.Add(d).Before(dl):
			t.Fatalf("decide waits %v past a deadline %d ms away", d, deadlineMs)
		}

		ce := newError("get lead", "GET", "/v1/leads", outcome{attempts: 1, stop: StopAttempts, apiErr: apiErr}, nil, now)
		want := time.Duration(0)
		if raOK {
			want = raWait
		} else if detOK {
			want = detWait
		}
		if ce.RetryAfter != want {
			t.Fatalf("Error.RetryAfter = %v, want %v", ce.RetryAfter, want)
		}
	})
}

// deadlineContext is a context whose deadline is on a fake clock: it
// never expires by itself.
type deadlineContext struct {
	context.Context
	dl time.Time
}

func (c deadlineContext) Deadline() (time.Time, bool) { return c.dl, true }

// decimal reads s, an optional sign and decimal digits of any length.
func decimal(s string) (*big.Int, bool) {
	digits := strings.TrimLeft(s, "+-")
	if len(s)-len(digits) > 1 || digits == "" || strings.Trim(digits, "0123456789") != "" {
		return nil, false
	}
	n, ok := new(big.Int).SetString(s, 10)
	return n, ok
}

// clampSeconds is n seconds, n ≥ 0, clamped to maxServerWait.
func clampSeconds(n *big.Int) time.Duration {
	if n.Cmp(big.NewInt(int64(maxServerWait/time.Second))) > 0 {
		return maxServerWait
	}
	return time.Duration(n.Int64()) * time.Second
}

// FuzzBackoff checks FullJitter and ExponentialCeiling, the client's
// backoff when the server names no wait, for any arguments: they never
// panic; the ceiling is 0 when base or max is not positive, else in
// [min(base, max), max] and never decreasing from one retry to the next;
// the jittered wait lies in [0, ceiling]. Seeds live in
// testdata/fuzz/FuzzBackoff.
func FuzzBackoff(f *testing.F) {
	f.Add(int64(DefaultBaseDelay), int64(DefaultMaxDelay), 1)
	f.Add(int64(DefaultBaseDelay), int64(DefaultMaxDelay), 100)
	f.Add(int64(1), int64(1<<62), 64)
	f.Add(int64(1<<62), int64(1<<63-1), 3)
	f.Add(int64(-1), int64(10), 1)
	f.Add(int64(10), int64(0), -5)
	f.Fuzz(func(t *testing.T, base, maxd int64, retry int) {
		b, m := time.Duration(base), time.Duration(maxd)
		c := ExponentialCeiling(b, m, retry)
		next := ExponentialCeiling(b, m, retry+min(1, math.MaxInt-retry))
		j := FullJitter(b, m, retry)
		switch {
		case b <= 0 || m <= 0:
			if c != 0 || j != 0 {
				t.Fatalf("base %v max %v: ceiling %v, jitter %v; want 0", b, m, c, j)
			}
		case c < min(b, m) || c > m || next < c:
			t.Fatalf("base %v max %v retry %d: ceiling %v (next %v)", b, m, retry, c, next)
		case j < 0 || j > c:
			t.Fatalf("base %v max %v retry %d: jitter %v outside [0, %v]", b, m, retry, j, c)
		}
	})
}
