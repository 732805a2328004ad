package client_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tollgate-dev/tollgate/apierror"
	"github.com/tollgate-dev/tollgate/client"
)

const ok200 = leadJSON

func rateLimitedBody(details string) string {
	return `{"error":{"code":"RATE_LIMITED","message":"Rate limit exceeded.","details":{"request_id":"req_1"` + details + `}}}`
}

func TestServerWaitHonoured(t *testing.T) {
	clk := newFakeClock()
	now := clk.Now()
	tests := []struct {
		name string
		step http.HandlerFunc
		want time.Duration
	}{
		{"retry-after seconds", status(429, rateLimitedBody(""), "Retry-After", "7"), 7 * time.Second},
		{"retry-after http date", status(503, "", "Retry-After", now.Add(10*time.Second).UTC().Format(http.TimeFormat)), 10 * time.Second},
		{"details.retry_after", status(429, rateLimitedBody(`,"retry_after":4`)), 4 * time.Second},
		{"x-ratelimit-reset", status(429, rateLimitedBody(""),
			"X-RateLimit-Limit", "10", "X-RateLimit-Remaining", "0",
			"X-RateLimit-Reset", strconv.FormatInt(now.Add(12*time.Second).Unix(), 10)), 12 * time.Second},
		{"retry-after before details", status(429, rateLimitedBody(`,"retry_after":9`), "Retry-After", "3"), 3 * time.Second},
		{"details before reset", status(429, rateLimitedBody(`,"retry_after":2`),
			"X-RateLimit-Limit", "10", "X-RateLimit-Remaining", "0",
			"X-RateLimit-Reset", strconv.FormatInt(now.Add(20*time.Second).Unix(), 10)), 2 * time.Second},
		{"409 idempotency key in use", status(409, `{"error":{"code":"IDEMPOTENCY_KEY_IN_USE","message":"In progress.","details":{"request_id":"r"}}}`, "Retry-After", "1"), time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := &fakeClock{t: now}
			srv := newScript(t, tt.step, status(200, ok200))
			c := newClient(t, srv.URL, clk)
			if _, err := c.Leads.Get(context.Background(), "lead_1"); err != nil {
				t.Fatalf("Get = %v, want success after a retry", err)
			}
			sleeps := clk.Sleeps()
			if len(sleeps) != 1 || !within(sleeps[0], tt.want, 0.05) {
				t.Errorf("sleeps = %v, want [%v ±5%%]", sleeps, tt.want)
			}
			if n := len(srv.Hits()); n != 2 {
				t.Errorf("server hits = %d, want 2", n)
			}
		})
	}
}

func TestBackoffWithJitterWithinBounds(t *testing.T) {
	base, maxDelay := 100*time.Millisecond, 150*time.Millisecond
	for i := range 50 {
		clk := newFakeClock()
		srv := newScript(t, status(503, ""), status(502, ""), status(200, ok200))
		c := newClient(t, srv.URL, clk, client.WithRetry(client.Policy{BaseDelay: base, MaxDelay: maxDelay}))
		if _, err := c.Leads.Get(context.Background(), "lead_1"); err != nil {
			t.Fatalf("run %d: Get = %v", i, err)
		}
		sleeps := clk.Sleeps()
		if len(sleeps) != 2 {
			t.Fatalf("run %d: sleeps = %v, want 2", i, sleeps)
		}
		if sleeps[0] < 0 || sleeps[0] > base {
			t.Errorf("run %d: first wait %v, want within [0, %v]", i, sleeps[0], base)
		}
		if sleeps[1] < 0 || sleeps[1] > maxDelay {
			t.Errorf("run %d: second wait %v, want within [0, %v] (2×base capped)", i, sleeps[1], maxDelay)
		}
	}
}

func TestFullJitter(t *testing.T) {
	const n = 20000
	base, maxDelay := 100*time.Millisecond, 10*time.Second
	for retry := 1; retry <= 4; retry++ {
		ceil := client.ExponentialCeiling(base, maxDelay, retry)
		if want := base << (retry - 1); ceil != want {
			t.Fatalf("ExponentialCeiling(%v, %v, %d) = %v, want %v", base, maxDelay, retry, ceil, want)
		}
		var sum time.Duration
		seen := map[time.Duration]bool{}
		for range n {
			d := client.FullJitter(base, maxDelay, retry)
			if d < 0 || d > ceil {
				t.Fatalf("FullJitter(retry %d) = %v, want within [0, %v]", retry, d, ceil)
			}
			sum += d
			seen[d] = true
		}
		mean := sum / n
		if !within(mean, ceil/2, 0.05) {
			t.Errorf("FullJitter(retry %d) mean = %v, want %v ±5%% (uniform on [0, %v])", retry, mean, ceil/2, ceil)
		}
		if len(seen) < n/2 {
			t.Errorf("FullJitter(retry %d) gave %d distinct values in %d draws: no jitter", retry, len(seen), n)
		}
	}
	if got := client.ExponentialCeiling(time.Second, 20*time.Second, 40); got != 20*time.Second {
		t.Errorf("ExponentialCeiling(1s, 20s, 40) = %v, want the cap 20s", got)
	}
}

func TestFullJitterExtremes(t *testing.T) {
	tests := []struct {
		name      string
		base, max time.Duration
		retry     int
		wantCeil  time.Duration
	}{
		{"cap at the largest duration", time.Second, math.MaxInt64, 40, math.MaxInt64},
		{"base and cap at the largest duration", math.MaxInt64, math.MaxInt64, 1, math.MaxInt64},
		{"huge retry number", time.Nanosecond, time.Hour, math.MaxInt, time.Hour},
		{"zero base, huge retry number", 0, time.Hour, math.MaxInt, 0},
		{"negative base", -time.Second, time.Hour, 3, 0},
		{"negative cap", time.Second, -time.Hour, 3, 0},
		{"zero cap", time.Second, 0, 1, 0},
		{"retry below 1", time.Second, time.Hour, -5, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("FullJitter(%v, %v, %d) panicked: %v", tt.base, tt.max, tt.retry, r)
				}
			}()
			if got := client.ExponentialCeiling(tt.base, tt.max, tt.retry); got != tt.wantCeil {
				t.Errorf("ExponentialCeiling(%v, %v, %d) = %v, want %v", tt.base, tt.max, tt.retry, got, tt.wantCeil)
			}
			for range 100 {
				if d := client.FullJitter(tt.base, tt.max, tt.retry); d < 0 || d > tt.wantCeil {
					t.Fatalf("FullJitter(%v, %v, %d) = %v, want within [0, %v]", tt.base, tt.max, tt.retry, d, tt.wantCeil)
				}
			}
		})
	}
}

// maxServerWait is what the client makes of a server wait too large to
// hold: 2^31 seconds.
const maxServerWait = time.Duration(1<<31) * time.Second

func TestServerWaitOutOfRange(t *testing.T) {
	tests := []struct {
		name    string
		step    http.HandlerFunc
		wantErr client.Error // Attempts, Stop and RetryAfter of the error
	}{
		// Too large to hold: clamped, so MaxWait applies.
		{"retry-after beyond int64", status(429, rateLimitedBody(""), "Retry-After", "99999999999999999999"),
			client.Error{Attempts: 1, Stop: client.StopMaxWait, RetryAfter: maxServerWait}},
		{"retry-after beyond 2^31 s", status(429, rateLimitedBody(""), "Retry-After", "4294967296"),
			client.Error{Attempts: 1, Stop: client.StopMaxWait, RetryAfter: maxServerWait}},
		{"details.retry_after beyond 2^31 s", status(429, rateLimitedBody(`,"retry_after":1e10`)),
			client.Error{Attempts: 1, Stop: client.StopMaxWait, RetryAfter: maxServerWait}},
		{"details.retry_after beyond float64", status(429, rateLimitedBody(`,"retry_after":"1e400"`)),
			client.Error{Attempts: 1, Stop: client.StopMaxWait, RetryAfter: maxServerWait}},
		{"details.retry_after beyond float64, a bare number", status(429, rateLimitedBody(`,"retry_after":1e400`)),
			client.Error{Attempts: 1, Stop: client.StopMaxWait, RetryAfter: maxServerWait}},
		{"x-ratelimit-reset beyond 2^31 s", status(429, rateLimitedBody(""), "X-RateLimit-Limit", "10",
			"X-RateLimit-Remaining", "0", "X-RateLimit-Reset", strconv.FormatInt(time.Now().Unix()+1<<40, 10)),
			client.Error{Attempts: 1, Stop: client.StopMaxWait}},
		// FuzzServerWait: within 62,135,596,800 s (time.Unix's offset to
		// year 1) of the int64 limit time.Unix overflowed into the past,
		// and beyond int64 the value was dropped; either way the client
		// backed off and retried.
		{"x-ratelimit-reset at the int64 limit", status(429, rateLimitedBody(""), "X-RateLimit-Limit", "10",
			"X-RateLimit-Remaining", "0", "X-RateLimit-Reset", "9223372036854775807"),
			client.Error{Attempts: 1, Stop: client.StopMaxWait}},
		{"x-ratelimit-reset beyond int64", status(429, rateLimitedBody(""), "X-RateLimit-Limit", "10",
			"X-RateLimit-Remaining", "0", "X-RateLimit-Reset", "9227000000000000000"),
			client.Error{Attempts: 1, Stop: client.StopMaxWait}},
		// Garbage: ignored, so the client backs off and names no wait.
		{"details.retry_after NaN", status(503, rateLimitedBody(`,"retry_after":"NaN"`)),
			client.Error{Attempts: 3, Stop: client.StopAttempts}},
		{"details.retry_after Inf", status(503, rateLimitedBody(`,"retry_after":"Inf"`)),
			client.Error{Attempts: 3, Stop: client.StopAttempts}},
		{"details.retry_after -Inf", status(503, rateLimitedBody(`,"retry_after":"-Inf"`)),
			client.Error{Attempts: 3, Stop: client.StopAttempts}},
		{"details.retry_after negative", status(503, rateLimitedBody(`,"retry_after":-5`)),
			client.Error{Attempts: 3, Stop: client.StopAttempts}},
		{"retry-after negative", status(503, rateLimitedBody(""), "Retry-After", "-99999999999999999999"),
			client.Error{Attempts: 3, Stop: client.StopAttempts}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newFakeClock()
			srv := newScript(t, tt.step)
			base := 100 * time.Millisecond
			c := newClient(t, srv.URL, clk, client.WithRetry(client.Policy{BaseDelay: base}))
			_, err := c.Leads.Get(context.Background(), "lead_1")
			var ce *client.Error
			if !errors.As(err, &ce) {
				t.Fatalf("Get = %v, want a *client.Error", err)
			}
			got := client.Error{Attempts: ce.Attempts, Stop: ce.Stop, RetryAfter: ce.RetryAfter}
			if got != tt.wantErr {
				t.Errorf("Get error: Attempts, Stop, RetryAfter = %d, %q, %v; want %d, %q, %v",
					got.Attempts, got.Stop, got.RetryAfter, tt.wantErr.Attempts, tt.wantErr.Stop, tt.wantErr.RetryAfter)
			}
			sleeps := clk.Sleeps()
			if len(sleeps) != tt.wantErr.Attempts-1 {
				t.Errorf("sleeps = %v, want %d", sleeps, tt.wantErr.Attempts-1)
			}
			for i, s := range sleeps {
				if ceil := client.ExponentialCeiling(base, client.DefaultMaxDelay, i+1); s < 0 || s > ceil {
					t.Errorf("wait %d = %v, want a backoff within [0, %v]", i+1, s, ceil)
				}
			}
		})
	}
}

func TestMaxWaitFailsAtOnce(t *testing.T) {
	clk := newFakeClock()
	reset := clk.Now().Add(time.Hour).Unix()
	srv := newScript(t, status(429, rateLimitedBody(`,"retry_after":120`), "Retry-After", "120",
		"X-RateLimit-Limit", "600", "X-RateLimit-Remaining", "0", "X-RateLimit-Reset", strconv.FormatInt(reset, 10)),
		status(200, ok200))
	c := newClient(t, srv.URL, clk, client.WithRetry(client.Policy{MaxWait: 30 * time.Second}))
	_, err := c.Leads.Get(context.Background(), "lead_1")
	if !errors.Is(err, client.ErrRateLimited) {
		t.Fatalf("Get = %v, want ErrRateLimited", err)
	}
	var ce *client.Error
	if !errors.As(err, &ce) {
		t.Fatalf("Get error %T is not a *client.Error", err)
	}
	want := &client.Error{Op: "get lead", Method: "GET", Path: "/v1/leads/lead_1", Attempts: 1, Stop: client.StopMaxWait,
		RateLimit: &apierror.RateLimit{Limit: 600, Remaining: 0, Reset: time.Unix(reset, 0)}, RetryAfter: 120 * time.Second}
	if diff := cmp.Diff(want, ce, cmp.FilterPath(func(p cmp.Path) bool { return p.String() == "Err" }, cmp.Ignore())); diff != "" {
		t.Errorf("error mismatch (-want +got):\n%s", diff)
	}
	if got := clk.Sleeps(); len(got) != 0 {
		t.Errorf("sleeps = %v, want none", got)
	}
	if n := len(srv.Hits()); n != 1 {
		t.Errorf("server hits = %d, want 1", n)
	}
}

func TestClientErrorsNeverRetried(t *testing.T) {
	for _, st := range []int{400, 401, 403, 404, 405, 409, 413, 415, 422} {
		code := apierror.CodeForStatus(st)
		t.Run(strconv.Itoa(st), func(t *testing.T) {
			clk := newFakeClock()
			srv := newScript(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", "1") // must not tempt the client
				apierror.Write(w, r, apierror.New(code, ""))
			})
			c := newClient(t, srv.URL, clk)
			for _, call := range []struct {
				name string
				do   func() error
			}{
				{"get", func() error { _, err := c.Leads.Get(context.Background(), "lead_1"); return err }},
				{"post", func() error { _, err := c.Leads.Create(context.Background(), client.LeadCreate{Name: "A"}); return err }},
			} {
				before := len(srv.Hits())
				err := call.do()
				if !errors.Is(err, apierror.Sentinel(code)) {
					t.Errorf("%s: err = %v, want %s", call.name, err, code)
				}
				var ce *client.Error
				if errors.As(err, &ce) && ce.Stop != client.StopNotRetryable {
					t.Errorf("%s: Stop = %q, want %q", call.name, ce.Stop, client.StopNotRetryable)
				}
				if n := len(srv.Hits()) - before; n != 1 {
					t.Errorf("%s: server hits = %d, want 1", call.name, n)
				}
			}
			if s := clk.Sleeps(); len(s) != 0 {
				t.Errorf("sleeps = %v, want none", s)
			}
		})
	}
}

func TestRetryableStatuses(t *testing.T) {
	for _, st := range []int{429, 500, 502, 503, 504} {
		t.Run(strconv.Itoa(st), func(t *testing.T) {
			clk := newFakeClock()
			srv := newScript(t, status(st, ""), status(200, ok200))
			c := newClient(t, srv.URL, clk)
			if _, err := c.Leads.Get(context.Background(), "lead_1"); err != nil {
				t.Fatalf("Get = %v, want success on the second attempt", err)
			}
			if n := len(srv.Hits()); n != 2 {
				t.Errorf("server hits = %d, want 2", n)
			}
		})
	}
}

func TestAttemptsExhausted(t *testing.T) {
	clk := newFakeClock()
	srv := newScript(t, status(503, `{"error":{"code":"SERVICE_UNAVAILABLE","message":"Down.","details":{"request_id":"req_9"}}}`))
	c := newClient(t, srv.URL, clk)
	_, err := c.Leads.Get(context.Background(), "lead_1")
	var ce *client.Error
	if !errors.As(err, &ce) || !errors.Is(err, client.ErrServiceUnavailable) {
		t.Fatalf("Get = %v, want a *client.Error matching ErrServiceUnavailable", err)
	}
	if ce.Attempts != 3 || ce.Stop != client.StopAttempts {
		t.Errorf("Attempts, Stop = %d, %q; want 3, %q", ce.Attempts, ce.Stop, client.StopAttempts)
	}
	if got, want := err.Error(), "client: get lead: SERVICE_UNAVAILABLE: Down."; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if got := ce.APIError().RequestID(); got != "req_9" {
		t.Errorf("RequestID() = %q, want req_9", got)
	}
	if n := len(srv.Hits()); n != 3 {
		t.Errorf("server hits = %d, want 3 (the default attempts)", n)
	}
}

func TestWritesRetriedOnlyWithIdempotencyKey(t *testing.T) {
	type call func(ctx context.Context, c *client.Client) error
	create := func(ctx context.Context, c *client.Client) error {
		_, err := c.Leads.Create(ctx, client.LeadCreate{Name: "Ada"})
		return err
	}
	update := func(ctx context.Context, c *client.Client) error {
		_, err := c.Leads.Update(ctx, "lead_1", client.LeadUpdate{Name: client.Ptr("Ada")})
		return err
	}
	tests := []struct {
		name     string
		do       call
		policy   client.Policy
		ctxKey   string
		wantHits int
		wantKey  string // "" = any non-empty key, "-" = no key
		wantErr  bool
		wantStop client.StopReason
		wantBody string
		wantVerb string
		steps    []http.HandlerFunc
	}{
		{name: "post gets a key, same on every attempt", do: create, wantHits: 3, wantVerb: "POST", wantBody: `{"name":"Ada"}`,
			steps: []http.HandlerFunc{status(503, ""), status(500, ""), status(201, ok200)}},
		{name: "patch gets a key, same on every attempt", do: update, wantHits: 3, wantVerb: "PATCH", wantBody: `{"name":"Ada"}`,
			steps: []http.HandlerFunc{status(503, ""), status(429, ""), status(200, ok200)}},
		{name: "post keeps the caller's key", do: create, ctxKey: "mine-123", wantHits: 2, wantKey: "mine-123", wantVerb: "POST", wantBody: `{"name":"Ada"}`,
			steps: []http.HandlerFunc{status(502, ""), status(201, ok200)}},
		{name: "post without a key is not retried", do: create, policy: client.Policy{DisableIdempotencyKeys: true},
			wantHits: 1, wantKey: "-", wantErr: true, wantStop: client.StopNotIdempotent, wantVerb: "POST", wantBody: `{"name":"Ada"}`,
			steps: []http.HandlerFunc{status(503, ""), status(201, ok200)}},
		{name: "patch without a key is not retried", do: update, policy: client.Policy{DisableIdempotencyKeys: true},
			wantHits: 1, wantKey: "-", wantErr: true, wantStop: client.StopNotIdempotent, wantVerb: "PATCH", wantBody: `{"name":"Ada"}`,
			steps: []http.HandlerFunc{status(503, ""), status(200, ok200)}},
		{name: "caller's key still retried with keys disabled", do: update, policy: client.Policy{DisableIdempotencyKeys: true}, ctxKey: "k-1",
			wantHits: 2, wantKey: "k-1", wantVerb: "PATCH", wantBody: `{"name":"Ada"}`,
			steps: []http.HandlerFunc{status(503, ""), status(200, ok200)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newFakeClock()
			srv := newScript(t, tt.steps...)
			c := newClient(t, srv.URL, clk, client.WithRetry(tt.policy))
			ctx := context.Background()
			if tt.ctxKey != "" {
				ctx = client.ContextWithIdempotencyKey(ctx, tt.ctxKey)
			}
			err := tt.do(ctx, c)
			if (err != nil) != tt.wantErr {
				t.Fatalf("call = %v, want error %v", err, tt.wantErr)
			}
			var ce *client.Error
			if errors.As(err, &ce) && ce.Stop != tt.wantStop {
				t.Errorf("Stop = %q, want %q", ce.Stop, tt.wantStop)
			}
			hits := srv.Hits()
			if len(hits) != tt.wantHits {
				t.Fatalf("server hits = %d, want %d", len(hits), tt.wantHits)
			}
			first := hits[0].IdempotencyKey
			switch tt.wantKey {
			case "":
				if first == "" {
					t.Errorf("attempt 1 carried no Idempotency-Key")
				}
			case "-":
				if first != "" {
					t.Errorf("attempt 1 carried Idempotency-Key %q, want none", first)
				}
			default:
				if first != tt.wantKey {
					t.Errorf("attempt 1 Idempotency-Key = %q, want %q", first, tt.wantKey)
				}
			}
			for i, h := range hits {
				if h.IdempotencyKey != first {
					t.Errorf("attempt %d Idempotency-Key = %q, want %q (same as attempt 1)", i+1, h.IdempotencyKey, first)
				}
				if h.Method != tt.wantVerb || h.Body != tt.wantBody {
					t.Errorf("attempt %d = %s %q, want %s %q (body rewound)", i+1, h.Method, h.Body, tt.wantVerb, tt.wantBody)
				}
			}
		})
	}
}

func TestNewKeyPerLogicalCall(t *testing.T) {
	clk := newFakeClock()
	srv := newScript(t, status(201, ok200))
	c := newClient(t, srv.URL, clk)
	for range 2 {
		if _, err := c.Leads.Create(context.Background(), client.LeadCreate{Name: "A"}); err != nil {
			t.Fatal(err)
		}
	}
	h := srv.Hits()
	if h[0].IdempotencyKey == "" || h[0].IdempotencyKey == h[1].IdempotencyKey {
		t.Errorf("keys of two calls = %q, %q; want two different keys", h[0].IdempotencyKey, h[1].IdempotencyKey)
	}
}

func TestContextDeadlineRespected(t *testing.T) {
	tests := []struct {
		name string
		step http.HandlerFunc
	}{
		{"retry-after past deadline", status(429, rateLimitedBody(""), "Retry-After", "10")},
		{"backoff past deadline", status(503, "")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newFakeClock()
			srv := newScript(t, tt.step, status(200, ok200))
			// Backoff of exactly 5s (a constant backoff keeps the test exact).
			c := newClient(t, srv.URL, clk, client.WithRetry(client.Policy{
				Backoff: func(base, max time.Duration, retry int) time.Duration { return 5 * time.Second },
			}))
			ctx, cancel := context.WithDeadline(context.Background(), clk.Now().Add(2*time.Second))
			defer cancel()
			_, err := c.Leads.Get(ctx, "lead_1")
			var ce *client.Error
			if !errors.As(err, &ce) || ce.Stop != client.StopDeadline {
				t.Fatalf("Get = %v, want a *client.Error with Stop %q", err, client.StopDeadline)
			}
			if ce.APIError() == nil {
				t.Errorf("Err = %v, want the last response's *apierror.Error", ce.Err)
			}
			if s := clk.Sleeps(); len(s) != 0 {
				t.Errorf("sleeps = %v, want none", s)
			}
			if n := len(srv.Hits()); n != 1 {
				t.Errorf("server hits = %d, want 1", n)
			}
		})
	}
}

func TestRetryBudgetStopsAmplification(t *testing.T) {
	const warm, calls = 50, 500
	tests := []struct {
		name    string
		policy  client.Policy
		maxRate float64
		minRate float64
	}{
		{"budget on", client.Policy{}, 1.10, 1.0},
		{"budget off", client.Policy{DisableBudget: true}, 3.0, 3.0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newFakeClock()
			srv := newScript(t, status(503, ""))
			c := newClient(t, srv.URL, clk, client.WithRetry(tt.policy))
			for range warm {
				_, _ = c.Leads.Get(context.Background(), "lead_1")
			}
			if tt.name == "budget on" {
				// The floor of 10 retries is spent during the warm-up.
				if n := len(srv.Hits()); n > warm+10+warm/10 {
					t.Errorf("warm-up hits = %d, want ≤ %d (calls + floor + 10%%)", n, warm+10+warm/10)
				}
			}
			before := len(srv.Hits())
			for range calls {
				_, err := c.Leads.Get(context.Background(), "lead_1")
				if !errors.Is(err, client.ErrServiceUnavailable) {
					t.Fatalf("Get = %v, want ErrServiceUnavailable", err)
				}
			}
			rate := float64(len(srv.Hits())-before) / calls
			if rate > tt.maxRate || rate < tt.minRate {
				t.Errorf("attempts per call = %.3f, want within [%.2f, %.2f]", rate, tt.minRate, tt.maxRate)
			}
		})
	}
}

func TestBudgetExhaustedStopReason(t *testing.T) {
	clk := newFakeClock()
	srv := newScript(t, status(503, ""))
	c := newClient(t, srv.URL, clk, client.WithRetry(client.Policy{BudgetFloor: 1, BudgetRatio: 0.001}))
	_, err := c.Leads.Get(context.Background(), "lead_1")
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Stop != client.StopBudget || ce.Attempts != 2 {
		t.Fatalf("Get = %v (%+v), want Stop %q after 2 attempts", err, ce, client.StopBudget)
	}
}

// resetListener accepts connections and closes each at once, before any
// response; it returns its URL and the number of connections so far.
func resetListener(t *testing.T) (string, func() int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var accepted atomic.Int32
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			conn.Close() // a reset before any response
		}
	}()
	return "http://" + ln.Addr().String(), func() int { return int(accepted.Load()) }
}

var errNoRedirects = errors.New("redirects are not allowed")

func TestConnectionErrorsRetried(t *testing.T) {
	tests := []struct {
		name string
		// setup returns the base URL, the http.Client that sends each
		// attempt, and how many requests reached the far end.
		setup        func(t *testing.T) (string, *http.Client, func() int)
		wantAttempts int
		wantStop     client.StopReason
		wantIs       error // an error the chain must hold, if set
	}{
		{
			name: "reset before any response",
			setup: func(t *testing.T) (string, *http.Client, func() int) {
				url, conns := resetListener(t)
				return url, &http.Client{}, conns
			},
			wantAttempts: 3, wantStop: client.StopAttempts,
		},
		{
			name: "connect timeout",
			setup: func(t *testing.T) (string, *http.Client, func() int) {
				url, conns := resetListener(t)
				// A dial timeout already passed: every connect fails with
				// "i/o timeout", as a slow connect under Dialer.Timeout does.
				tr := &http.Transport{DialContext: (&net.Dialer{Timeout: time.Nanosecond}).DialContext}
				t.Cleanup(tr.CloseIdleConnections)
				return url, &http.Client{Transport: tr}, conns
			},
			wantAttempts: 3, wantStop: client.StopAttempts,
		},
		{
			name: "per-attempt http.Client timeout",
			setup: func(t *testing.T) (string, *http.Client, func() int) {
				var sent atomic.Int32
				hang := roundTripFunc(func(req *http.Request) (*http.Response, error) {
					sent.Add(1)
					<-req.Context().Done() // the server never answers
					return nil, req.Context().Err()
				})
				return "http://tollgate.test", &http.Client{Transport: hang, Timeout: 10 * time.Millisecond},
					func() int { return int(sent.Load()) }
			},
			wantAttempts: 3, wantStop: client.StopAttempts,
		},
		{
			name: "redirect refused by CheckRedirect",
			setup: func(t *testing.T) (string, *http.Client, func() int) {
				srv := newScript(t, func(w http.ResponseWriter, r *http.Request) {
					http.Redirect(w, r, "/elsewhere", http.StatusFound)
				})
				hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return errNoRedirects }}
				return srv.URL, hc, func() int { return len(srv.Hits()) }
			},
			wantAttempts: 1, wantStop: client.StopNotRetryable, wantIs: errNoRedirects,
		},
		{
			name: "redirect limit reached",
			setup: func(t *testing.T) (string, *http.Client, func() int) {
				srv := newScript(t, func(w http.ResponseWriter, r *http.Request) {
					http.Redirect(w, r, r.URL.Path, http.StatusFound) // forever
				})
				return srv.URL, &http.Client{}, func() int { return len(srv.Hits()) / 10 } // 10 hops an attempt
			},
			wantAttempts: 1, wantStop: client.StopNotRetryable,
		},
		{
			name: "unparsable redirect location",
			setup: func(t *testing.T) (string, *http.Client, func() int) {
				srv := newScript(t, func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Location", "%zz")
					w.WriteHeader(http.StatusFound)
				})
				return srv.URL, &http.Client{}, func() int { return len(srv.Hits()) }
			},
			wantAttempts: 1, wantStop: client.StopNotRetryable,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url, hc, reached := tt.setup(t)
			clk := newFakeClock()
			c := newClient(t, url, clk, client.WithHTTPClient(hc))
			_, err := c.Leads.Get(context.Background(), "lead_1")
			var ce *client.Error
			if !errors.As(err, &ce) || ce.APIError() != nil {
				t.Fatalf("Get = %v, want a *client.Error without an API error", err)
			}
			if ce.Attempts != tt.wantAttempts || ce.Stop != tt.wantStop {
				t.Errorf("Get = %v: Attempts, Stop = %d, %q; want %d, %q", err, ce.Attempts, ce.Stop, tt.wantAttempts, tt.wantStop)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("Get = %v, want an error matching %v", err, tt.wantIs)
			}
			if n := reached(); n > tt.wantAttempts {
				t.Errorf("far end reached %d times, want at most %d", n, tt.wantAttempts)
			}
			if s := clk.Sleeps(); len(s) != tt.wantAttempts-1 {
				t.Errorf("sleeps = %v, want %d backoff waits", s, tt.wantAttempts-1)
			}
		})
	}
}

// dialTimeout returns the error of a connect that timed out.
func dialTimeout(t *testing.T) error {
	t.Helper()
	conn, err := (&net.Dialer{Timeout: time.Nanosecond}).Dial("tcp", "127.0.0.1:1")
	if err == nil {
		conn.Close()
		t.Fatal("dial with a 1ns timeout succeeded")
	}
	return &url.Error{Op: "Get", URL: "http://tollgate.test/", Err: err}
}

func TestDefaultCheckRetryTransportErrors(t *testing.T) {
	live := context.Background()
	cancelled, cancel := context.WithCancel(live)
	cancel()
	expired, cancel2 := context.WithDeadline(live, time.Now().Add(-time.Second))
	defer cancel2()
	urlErr := func(err error) error { return &url.Error{Op: "Get", URL: "http://tollgate.test/", Err: err} }
	refused := urlErr(&net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}})
	tests := []struct {
		name     string
		ctx      context.Context // nil: the Attempt has no Request
		response *http.Response
		err      error
		want     bool
	}{
		{name: "connection refused", ctx: live, err: refused, want: true},
		{name: "connection reset", ctx: live, err: urlErr(io.ErrUnexpectedEOF), want: true},
		{name: "connect timeout", ctx: live, err: dialTimeout(t), want: true},
		{name: "connect timeout without request", err: dialTimeout(t), want: true},
		{name: "caller cancelled", ctx: cancelled, err: urlErr(context.Canceled), want: false},
		{name: "caller deadline passed", ctx: expired, err: urlErr(context.DeadlineExceeded), want: false},
		{name: "caller deadline passed during a connect", ctx: expired, err: dialTimeout(t), want: false},
		{name: "cancelled without request", err: urlErr(context.Canceled), want: false},
		{name: "deadline without request", err: urlErr(context.DeadlineExceeded), want: false},
		{name: "redirect refused", ctx: live, response: &http.Response{StatusCode: http.StatusFound},
			err: urlErr(errNoRedirects), want: false},
		{name: "unknown certificate authority", ctx: live, err: urlErr(x509.UnknownAuthorityError{}), want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &client.Attempt{Number: 1, Response: tt.response, Err: tt.err}
			if tt.ctx != nil {
				a.Request = httptest.NewRequestWithContext(tt.ctx, http.MethodGet, "http://tollgate.test/", nil)
			}
			if got := client.DefaultCheckRetry(a); got != tt.want {
				t.Errorf("DefaultCheckRetry(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestCancelDuringWait(t *testing.T) {
	srv := newScript(t, status(503, "", "Retry-After", "1"))
	ctx, cancel := context.WithCancel(context.Background())
	sleep := func(ctx context.Context, d time.Duration) error {
		cancel()
		<-ctx.Done()
		return ctx.Err()
	}
	c, err := client.New(srv.URL, client.WithClock(nil, sleep))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Leads.Get(ctx, "lead_1")
	var ce *client.Error
	if !errors.Is(err, context.Canceled) || !errors.As(err, &ce) || ce.Stop != client.StopContext {
		t.Fatalf("Get = %v, want context.Canceled with Stop %q", err, client.StopContext)
	}
	if ce.RetryAfter != time.Second {
		t.Errorf("RetryAfter = %v, want 1s from the last response", ce.RetryAfter)
	}
}

func TestPacingWaitsForReset(t *testing.T) {
	for _, disable := range []bool{false, true} {
		t.Run(fmt.Sprintf("disabled=%v", disable), func(t *testing.T) {
			clk := newFakeClock()
			reset := clk.Now().Add(5 * time.Second)
			var arrivals []time.Time
			limited := func(w http.ResponseWriter, r *http.Request) {
				arrivals = append(arrivals, clk.Now())
				w.Header().Set("X-RateLimit-Limit", "10")
				if clk.Now().Before(reset) && len(arrivals) > 1 {
					w.Header().Set("X-RateLimit-Remaining", "0")
					w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(reset.Unix(), 10))
					apierror.Write(w, r, apierror.New(apierror.RateLimited, "").WithRetryAfter(reset.Sub(clk.Now())))
					return
				}
				if len(arrivals) == 1 {
					w.Header().Set("X-RateLimit-Remaining", "0")
					w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(reset.Unix(), 10))
				} else {
					w.Header().Set("X-RateLimit-Remaining", "9")
					w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(reset.Add(time.Second).Unix(), 10))
				}
				status(200, ok200)(w, r)
			}
			srv := newScript(t, limited)
			c := newClient(t, srv.URL, clk, client.WithRetry(client.Policy{DisablePacing: disable}))
			for i := range 2 {
				if _, err := c.Leads.Get(context.Background(), "lead_1"); err != nil {
					t.Fatalf("Get %d = %v", i+1, err)
				}
			}
			hits := len(srv.Hits())
			if !disable {
				if hits != 2 {
					t.Errorf("server hits = %d, want 2 (no 429 earned)", hits)
				}
				if s := clk.Sleeps(); len(s) != 1 || s[0] != 5*time.Second {
					t.Errorf("sleeps = %v, want [5s] (the wait for the reset)", s)
				}
				if !arrivals[1].Equal(reset) {
					t.Errorf("second request arrived at %v, want the reset %v", arrivals[1], reset)
				}
			} else if hits != 3 {
				t.Errorf("server hits = %d, want 3 (a 429, then the retry)", hits)
			}
		})
	}
}

func TestPacingIsPerHostAndKey(t *testing.T) {
	// The first request learns that its limit is spent until the reset;
	// the second waits only if it goes to the same host with the same
	// credential.
	type target struct{ host, key string }
	tests := []struct {
		name          string
		first, second target
		want          []time.Duration
	}{
		{"same host, same key", target{"a", "k"}, target{"a", "k"}, []time.Duration{5 * time.Second}},
		{"same host, no key", target{"a", ""}, target{"a", ""}, []time.Duration{5 * time.Second}},
		{"same host, other key", target{"a", "k"}, target{"a", "j"}, nil},
		{"same host, key then none", target{"a", "k"}, target{"a", ""}, nil},
		{"other host, same key", target{"a", "k"}, target{"b", "k"}, nil},
		{"other host, no key", target{"a", ""}, target{"b", ""}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newFakeClock()
			reset := clk.Now().Add(5 * time.Second)
			spent := status(200, ok200, "X-RateLimit-Limit", "10", "X-RateLimit-Remaining", "0",
				"X-RateLimit-Reset", strconv.FormatInt(reset.Unix(), 10))
			hosts := map[string]*script{"a": newScript(t, spent), "b": newScript(t, spent)}
			hc := &http.Client{Transport: &client.Transport{Now: clk.Now, Sleep: clk.Sleep}}
			for _, to := range []target{tt.first, tt.second} {
				req, _ := http.NewRequest(http.MethodGet, hosts[to.host].URL+"/v1/leads/lead_1", nil)
				if to.key != "" {
					req.Header.Set("Authorization", "Bearer "+to.key)
				}
				resp, err := hc.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
			}
			if s := clk.Sleeps(); !slices.Equal(s, tt.want) {
				t.Errorf("sleeps = %v, want %v", s, tt.want)
			}
		})
	}
}

// fixedWindow is a rate limiter of limit requests per second, aligned on
// whole seconds, with X-RateLimit-* headers. Each request takes latency
// before it is decided, so that concurrent requests overlap.
type fixedWindow struct {
	limit   int
	latency time.Duration
	mu      sync.Mutex
	window  int64
	used    int
	limited int
}

func (f *fixedWindow) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	time.Sleep(f.latency)
	now := time.Now()
	f.mu.Lock()
	if win := now.Unix(); win != f.window {
		f.window, f.used = win, 0
	}
	allowed := f.used < f.limit
	if allowed {
		f.used++
	} else {
		f.limited++
	}
	remaining := f.limit - f.used
	f.mu.Unlock()
	reset := now.Truncate(time.Second).Add(time.Second)
	w.Header().Set("X-RateLimit-Limit", strconv.Itoa(f.limit))
	w.Header().Set("X-RateLimit-Remaining", strconv.Itoa(remaining))
	w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(reset.Unix(), 10))
	if !allowed {
		apierror.Write(w, r, apierror.New(apierror.RateLimited, "").WithRetryAfter(reset.Sub(now)))
		return
	}
	status(200, ok200)(w, r)
}

// handlerTransport serves requests with a handler in memory, so that a
// synctest bubble (whose clock is virtual) holds the whole exchange.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, req)
	return rec.Result(), nil
}

func TestPacingConcurrentCallsEarnNo429(t *testing.T) {
	for _, disable := range []bool{false, true} {
		t.Run(fmt.Sprintf("disabled=%v", disable), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				fw := &fixedWindow{limit: 5, latency: 10 * time.Millisecond}
				c, err := client.New("http://tollgate.test", client.WithAPIKey("k"),
					client.WithHTTPClient(&http.Client{Transport: handlerTransport{fw}}),
					client.WithRetry(client.Policy{DisablePacing: disable, DisableBudget: true, MaxAttempts: 10}))
				if err != nil {
					t.Fatal(err)
				}
				start := time.Now()
				var wg sync.WaitGroup
				var failed atomic.Int32
				for range 8 {
					wg.Go(func() {
						for range 10 {
							if _, err := c.Leads.Get(context.Background(), "lead_1"); err != nil {
								failed.Add(1)
							}
						}
					})
				}
				wg.Wait()
				if !disable {
					if failed.Load() != 0 {
						t.Errorf("%d calls failed, want none", failed.Load())
					}
					if fw.limited != 0 {
						t.Errorf("server answered %d 429s to 80 paced calls, want 0", fw.limited)
					}
					// 80 calls at 5 per second: 16 windows, the first one partial.
					if el := time.Since(start); el > 17*time.Second {
						t.Errorf("80 paced calls took %v of (virtual) time, want ≤ 17s at 5/s", el)
					}
				}
				if disable && fw.limited == 0 {
					t.Errorf("server answered no 429 without pacing: the test does not exercise the limit")
				}
			})
		})
	}
}
