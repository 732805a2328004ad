package middleware_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/apierror"
	"github.com/tollgate-dev/tollgate/auth"
	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/ratelimit"
)

// failingStore is a ratelimit.Store that always fails, for the outage
// path a real store cannot be made to take on demand.
type failingStore struct{ err error }

func (f failingStore) Take(context.Context, string, []ratelimit.Policy, int) (ratelimit.Result, error) {
	return ratelimit.Result{}, f.err
}

func limited(t *testing.T, st ratelimit.Store, headers int, now func() time.Time, p *auth.Principal) http.Handler {
	t.Helper()
	rl := middleware.RateLimit(middleware.RateLimitConfig{Store: st, Default: ratelimit.Policy{Limit: 3, Window: time.Minute}, Headers: headers, Now: now})
	h := rl(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	return middleware.Chain(middleware.RequestID(now), func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if p != nil {
				r = r.WithContext(auth.WithPrincipal(r.Context(), *p))
			}
			next.ServeHTTP(w, r)
		})
	})(h)
}

func TestRateLimitHeaders(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	now := func() time.Time { return t0 }
	st := ratelimit.NewMemoryStore(ratelimit.MemoryOptions{Now: now})
	h := limited(t, st, middleware.HeadersLegacy|middleware.HeadersIETF, now, nil)
	wantRemaining := []string{"2", "1", "0", "0"}
	for i, want := range wantRemaining {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
		if got := w.Header().Get("X-RateLimit-Remaining"); got != want {
			t.Errorf("request %d: remaining %q, want %q", i+1, got, want)
		}
		if got := w.Header().Get("X-RateLimit-Limit"); got != "3" {
			t.Errorf("limit %q", got)
		}
		reset, _ := strconv.ParseInt(w.Header().Get("X-RateLimit-Reset"), 10, 64)
		if reset <= t0.Unix() || reset > t0.Add(time.Minute).Unix() {
			t.Errorf("reset %d not inside the window after %d", reset, t0.Unix())
		}
		// Remaining 0: Reset is when the next request is admitted (one
		// unit frees up every 20 s), not when the bucket is full.
		wantReset := t0.Add(time.Duration(i+1) * 20 * time.Second).Unix() // bucket full again
		if i >= 2 {
			wantReset = t0.Add(20 * time.Second).Unix()
		}
		if reset != wantReset {
			t.Errorf("request %d: X-RateLimit-Reset %d, want %d", i+1, reset, wantReset)
		}
		if got := w.Header().Get("RateLimit-Policy"); got != `"default";q=3;w=60` {
			t.Errorf("RateLimit-Policy = %q", got)
		}
		if i < 3 {
			if w.Code != 200 || w.Header().Get("Retry-After") != "" {
				t.Errorf("request %d: %d Retry-After %q", i+1, w.Code, w.Header().Get("Retry-After"))
			}
			continue
		}
		if w.Code != 429 {
			t.Fatalf("request 4: %d, want 429", w.Code)
		}
		e := apierror.Decode(w.Result())
		ra := w.Header().Get("Retry-After")
		if e.Code != apierror.RateLimited || ra != strconv.Itoa(int(e.Details["retry_after"].(float64))) || ra == "0" {
			t.Errorf("429: code %s Retry-After %q details %v", e.Code, ra, e.Details)
		}
		if e.Message != "Rate limit exceeded. Retry after "+ra+" seconds." || e.Details["window"] != "1m" || e.Details["policy"] != "default" || e.Details["limit"] != 3.0 {
			t.Errorf("429 body: %q %v", e.Message, e.Details)
		}
		if got := w.Header().Get("RateLimit"); got != `"default";r=0;t=20` {
			t.Errorf("RateLimit = %q", got)
		}
	}
}

// TestRateLimitResetAdmits empties a bucket at one instant and waits as
// the headers say: a request at X-RateLimit-Reset (the IETF t= is the same
// time) is admitted, and one a second earlier is not, so Reset is neither
// early nor later than its rounding to whole seconds.
func TestRateLimitResetAdmits(t *testing.T) {
	base := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		policy string
		start  time.Duration // after base, when the bucket is emptied
	}{
		{"7/1m", "7/1m", 0}, // interval 8.571428572s, next admission at +8.57s
		{"10/1s", "10/1s", 0},
		{"3/7s", "3/7s", 0}, // interval 2.333333334s
		{"3/1m", "3/1m", 0},
		{"burst below limit", "5/1s;burst=2", 0},
		{"7/1m from mid-second", "7/1m", 400 * time.Millisecond},
		{"3/7s from mid-second", "3/7s", 700 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ratelimit.ParsePolicy(tt.policy)
			if err != nil {
				t.Fatal(err)
			}
			t0 := base.Add(tt.start)
			cur := t0
			now := func() time.Time { return cur }
			rl := middleware.RateLimit(middleware.RateLimitConfig{Store: ratelimit.NewMemoryStore(ratelimit.MemoryOptions{Now: now}),
				Default: p, Headers: middleware.HeadersLegacy | middleware.HeadersIETF, Now: now})
			h := middleware.Chain(middleware.RequestID(now))(rl(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})))
			serve := func() *httptest.ResponseRecorder {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
				return w
			}
			var w *httptest.ResponseRecorder
			for i := range p.Capacity() {
				if w = serve(); w.Code != http.StatusOK {
					t.Fatalf("request %d of the burst: %d, want 200", i+1, w.Code)
				}
			}
			if got := w.Header().Get("X-RateLimit-Remaining"); got != "0" {
				t.Fatalf("X-RateLimit-Remaining after the burst = %q, want 0", got)
			}
			reset, err := strconv.ParseInt(w.Header().Get("X-RateLimit-Reset"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			next := t0.Add(p.Interval()) // one unit refilled
			if want := next.Add(time.Second - 1).Truncate(time.Second).Unix(); reset != want {
				t.Errorf("X-RateLimit-Reset = base%+ds, want base%+ds (next admission at base+%v)", reset-base.Unix(), want-base.Unix(), next.Sub(base))
			}
			wantT := strconv.FormatInt(int64((next.Sub(t0)+time.Second-1)/time.Second), 10)
			if got, want := w.Header().Get("RateLimit"), `"default";r=0;t=`+wantT; got != want {
				t.Errorf("RateLimit = %q, want %q", got, want)
			}
			if w = serve(); w.Code != http.StatusTooManyRequests || w.Header().Get("X-RateLimit-Reset") != strconv.FormatInt(reset, 10) {
				t.Errorf("request after the burst: %d, X-RateLimit-Reset %s; want 429 with the same reset %d", w.Code, w.Header().Get("X-RateLimit-Reset"), reset)
			}
			if early := time.Unix(reset-1, 0); !early.Before(t0) {
				cur = early
				if w = serve(); w.Code != http.StatusTooManyRequests {
					t.Errorf("request a second before X-RateLimit-Reset: %d, want 429", w.Code)
				}
			}
			cur = time.Unix(reset, 0)
			if w = serve(); w.Code != http.StatusOK {
				t.Errorf("request at X-RateLimit-Reset (base%+ds): %d, Retry-After %s; want 200", reset-base.Unix(), w.Code, w.Header().Get("Retry-After"))
			}
		})
	}
}

// fixedStore is a ratelimit.Store that answers every call with one Result.
type fixedStore struct{ r ratelimit.Result }

func (f fixedStore) Take(context.Context, string, []ratelimit.Policy, int) (ratelimit.Result, error) {
	return f.r, nil
}

// TestRateLimitResetCoarseStore: a store whose clock counts in
// microseconds (the Redis store) rounds the interval up further; the reset
// it implies is still never before its next admission.
func TestRateLimitResetCoarseStore(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	const us = time.Microsecond
	tests := []struct {
		name     string
		policy   ratelimit.Policy
		interval time.Duration // the store's
		spent    int           // units taken at t0
	}{
		{"7/1m", ratelimit.Policy{Limit: 7, Window: time.Minute}, 8571429 * us, 7},
		{"3/7s", ratelimit.Policy{Limit: 3, Window: 7 * time.Second}, 2333334 * us, 3},
		{"burst below limit", ratelimit.Policy{Limit: 7, Window: time.Minute, Burst: 2}, 8571429 * us, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := func() time.Time { return t0 }
			res := ratelimit.Result{Allowed: true, Limit: tt.policy.Limit, Remaining: 0, ResetAfter: time.Duration(tt.spent) * tt.interval,
				Policy: "default", Window: tt.policy.Window}
			rl := middleware.RateLimit(middleware.RateLimitConfig{Store: fixedStore{res}, Default: tt.policy, Now: now})
			h := middleware.Chain(middleware.RequestID(now))(rl(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})))
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
			reset, err := strconv.ParseInt(w.Header().Get("X-RateLimit-Reset"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			next := t0.Add(tt.interval) // the store admits one unit after its own interval
			if want := next.Add(time.Second - 1).Truncate(time.Second).Unix(); reset != want {
				t.Errorf("X-RateLimit-Reset = t0%+ds, want t0%+ds (next admission at t0+%v)", reset-t0.Unix(), want-t0.Unix(), tt.interval)
			}
		})
	}
}

func TestRateLimitKeying(t *testing.T) {
	now := func() time.Time { return time.Unix(1e9, 0) }
	st := ratelimit.NewMemoryStore(ratelimit.MemoryOptions{Now: now})
	plan := &auth.Principal{KeyID: "key_a", RatePlan: "5/1m"}
	h := limited(t, st, 0, now, plan)
	for range 5 {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
		if w.Code != 200 || w.Header().Get("X-RateLimit-Limit") != "5" {
			t.Fatalf("key plan 5/1m: %d limit %q", w.Code, w.Header().Get("X-RateLimit-Limit"))
		}
		if w.Header().Get("RateLimit-Policy") != "" {
			t.Errorf("IETF headers without the option")
		}
	}
	// Another key, and an anonymous client, have budgets of their own.
	for _, h := range []http.Handler{limited(t, st, 0, now, &auth.Principal{KeyID: "key_b"}), limited(t, st, 0, now, nil)} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
		if w.Code != 200 || w.Header().Get("X-RateLimit-Remaining") != "2" {
			t.Errorf("separate budget: %d remaining %q", w.Code, w.Header().Get("X-RateLimit-Remaining"))
		}
	}
}

func TestRateLimitStoreDown(t *testing.T) {
	for _, cause := range []error{ratelimit.ErrUnavailable, errors.New("weird")} {
		t.Run(cause.Error(), func(t *testing.T) {
			h := limited(t, failingStore{cause}, 0, nil, nil)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
			e := apierror.Decode(w.Result())
			if w.Code != 503 || e.Code != apierror.ServiceUnavailable || e.Details["reason"] != "ratelimit_unavailable" || w.Header().Get("Retry-After") == "" {
				t.Errorf("store down: %d %s %v", w.Code, e.Code, e.Details)
			}
		})
	}
	// A store call that failed because the request's own deadline passed
	// is a timeout, not an outage.
	t.Run("request past its deadline", func(t *testing.T) {
		h := limited(t, failingStore{context.DeadlineExceeded}, 0, nil, nil)
		ctx, cancel := context.WithDeadline(context.Background(), time.Unix(1, 0))
		defer cancel()
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequestWithContext(ctx, "GET", "/", nil))
		if e := apierror.Decode(w.Result()); w.Code != 503 || e.Details["reason"] != "timeout" {
			t.Errorf("%d %v, want 503 timeout", w.Code, e.Details)
		}
	})
}

func TestParseHeaderFamilies(t *testing.T) {
	tests := []struct {
		in      string
		want    int
		wantErr bool
	}{
		{"legacy", middleware.HeadersLegacy, false},
		{"ietf", middleware.HeadersIETF, false},
		{"legacy,ietf", middleware.HeadersLegacy | middleware.HeadersIETF, false},
		{" ietf , legacy ", middleware.HeadersLegacy | middleware.HeadersIETF, false},
		{"", 0, true},
		{"draft", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := middleware.ParseHeaderFamilies(tt.in)
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Errorf("ParseHeaderFamilies(%q) = %d, %v", tt.in, got, err)
			}
		})
	}
}

// TestRateLimitTwice stacks two RateLimit layers on one authenticated
// request: the header values the first one handed out stay what they were
// when the second writes its own (the first's bytes live in the request's
// state and are not reused).
func TestRateLimitTwice(t *testing.T) {
	inner := middleware.RateLimit(middleware.RateLimitConfig{Store: ratelimit.NewMemoryStore(ratelimit.MemoryOptions{}), Default: ratelimit.Policy{Limit: 5, Window: time.Minute}})
	outer := middleware.RateLimit(middleware.RateLimitConfig{Store: ratelimit.NewMemoryStore(ratelimit.MemoryOptions{}), Default: ratelimit.Policy{Limit: 3, Window: time.Minute}})
	var first []string
	capture := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			first = []string{h["X-Ratelimit-Limit"][0], h["X-Ratelimit-Remaining"][0], h["X-Ratelimit-Reset"][0]}
			next.ServeHTTP(w, r)
		})
	}
	h := middleware.Chain(middleware.RequestID(nil), middleware.Auth(stubVerifier{"acct"}, nil), outer, capture, inner)(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "Bearer good")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	if want := []string{"3", "2"}; !slices.Equal(first[:2], want) {
		t.Errorf("outer layer's limit and remaining became %q, want %q", first[:2], want)
	}
	// Remaining 2 of 3 per minute: the bucket is full again within 20 s.
	if reset, err := strconv.ParseInt(first[2], 10, 64); err != nil || reset < time.Now().Unix() || reset > time.Now().Add(time.Minute).Unix() {
		t.Errorf("outer layer's reset became %q, want unix seconds within the minute", first[2])
	}
	if got, want := []string{w.Header().Get("X-RateLimit-Limit"), w.Header().Get("X-RateLimit-Remaining")}, []string{"5", "4"}; !slices.Equal(got, want) {
		t.Errorf("inner layer's values %q, want %q", got, want)
	}
}

// TestRateLimitPolicyWindowSeconds: the IETF w= is whole seconds; a
// window that is not (a plan such as 10/250ms or 100/90500ms) is rounded
// up, so the header never promises a window shorter than the plan's (never
// 0, which would claim the whole quota is renewed continuously).
func TestRateLimitPolicyWindowSeconds(t *testing.T) {
	tests := []struct {
		window time.Duration
		want   string
	}{
		{time.Minute, `"default";q=10;w=60`},
		{250 * time.Millisecond, `"default";q=10;w=1`},
		{90500 * time.Millisecond, `"default";q=10;w=91`},
	}
	for _, tt := range tests {
		t.Run(tt.window.String(), func(t *testing.T) {
			now := func() time.Time { return time.Unix(1e9, 0) }
			rl := middleware.RateLimit(middleware.RateLimitConfig{Store: ratelimit.NewMemoryStore(ratelimit.MemoryOptions{Now: now}),
				Default: ratelimit.Policy{Limit: 10, Window: tt.window}, Headers: middleware.HeadersIETF, Now: now})
			h := middleware.Chain(middleware.RequestID(now))(rl(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})))
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
			if got := w.Header().Get("RateLimit-Policy"); got != tt.want {
				t.Errorf("RateLimit-Policy = %q, want %q", got, tt.want)
			}
		})
	}
}
