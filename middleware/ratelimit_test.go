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
			if w.Code != 503 || e.Code != apierror.ServiceUnavailable || w.Header().Get("Retry-After") == "" {
				t.Errorf("store down: %d %s %v", w.Code, e.Code, e.Details)
			}
		})
	}
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
