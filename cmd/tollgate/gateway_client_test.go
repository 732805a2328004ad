package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/apierror"
	"github.com/tollgate-dev/tollgate/client"
	"github.com/tollgate-dev/tollgate/internal/api"
)

// The tests of this file run the two client faces (the client package and
// tollgate call) against an upstream on loopback through the gateway
// command, as a user would: real SQLite keys, the real chain, a real
// upstream whose answers each test scripts request by request. Only the
// client's clock is injected (client.WithClock): every wait is recorded,
// none is slept, so waits of seconds cost nothing.

// upstreamHit is one request the scripted upstream received.
type upstreamHit struct {
	method, path, idemKey, body string
}

// scriptedUpstream answers each path with its steps in order (the last
// one repeats) and records every request.
type scriptedUpstream struct {
	*httptest.Server
	mu      sync.Mutex
	steps   map[string][]http.HandlerFunc
	hits    map[string][]upstreamHit
	arrived chan struct{} // one send per request, for waitHits
	stop    chan struct{} // closed at the end: releases hanging handlers
}

func newScriptedUpstream(t *testing.T) *scriptedUpstream {
	t.Helper()
	s := &scriptedUpstream{
		steps:   map[string][]http.HandlerFunc{},
		hits:    map[string][]upstreamHit{},
		arrived: make(chan struct{}, 1024),
		stop:    make(chan struct{}),
	}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		n := len(s.hits[r.URL.Path])
		s.hits[r.URL.Path] = append(s.hits[r.URL.Path], upstreamHit{r.Method, r.URL.Path, r.Header.Get("Idempotency-Key"), string(b)})
		steps := s.steps[r.URL.Path]
		s.mu.Unlock()
		s.arrived <- struct{}{}
		if len(steps) == 0 {
			http.NotFound(w, r)
			return
		}
		steps[min(n, len(steps)-1)](w, r)
	}))
	t.Cleanup(func() {
		close(s.stop)
		s.Close()
	})
	return s
}

// script sets the answers to path, one per request.
func (s *scriptedUpstream) script(path string, steps ...http.HandlerFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.steps[path] = steps
}

func (s *scriptedUpstream) hitsOf(path string) []upstreamHit {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.hits[path])
}

// waitHits waits until path has n hits (a request the gateway gave up on,
// as with a 504, may still be on its way to the handler), then returns them.
func (s *scriptedUpstream) waitHits(t *testing.T, path string, n int) []upstreamHit {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for len(s.hitsOf(path)) < n {
		select {
		case <-s.arrived:
		case <-timeout:
			t.Fatalf("%s: %d upstream hits, want %d", path, len(s.hitsOf(path)), n)
		}
	}
	return s.hitsOf(path)
}

// page answers status with a non-contract body (an HTML page, or plain
// text for a text/ content type) and headers (name, value, ...).
func page(status int, contentType string, headers ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(status)
		fmt.Fprintf(w, "<html><body><h1>%d %s</h1></body></html>\n", status, http.StatusText(status))
	}
}

func html(status int, headers ...string) http.HandlerFunc {
	return page(status, "text/html; charset=utf-8", headers...)
}

func text(status int, headers ...string) http.HandlerFunc {
	return page(status, "text/plain", headers...)
}

func okJSON(body string) http.HandlerFunc { return reply(200, body) }

// hang answers nothing until the gateway gives up on the request.
func (s *scriptedUpstream) hang(w http.ResponseWriter, r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-s.stop:
	}
}

// gatewayFor runs the gateway command in front of upstream with a fresh
// database, and returns its base URL, the admin key it printed and the
// database.
func gatewayFor(t *testing.T, upstream string, args ...string) (base, key, db string) {
	t.Helper()
	db = filepath.Join(t.TempDir(), "gw.db")
	addr := freeAddr(t)
	out, _, _ := runGateway(t, addr, append([]string{"--database", db, "--upstream", upstream, "--rate-default", "1000/1m"}, args...)...)
	key = regexp.MustCompile(`tg_live_[0-9A-Za-z]+`).FindString(out.String())
	if key == "" {
		t.Fatalf("no admin key printed:\n%s", out.String())
	}
	return "http://" + addr, key, db
}

// sdk is a client of base with key and a recorded clock.
func sdk(t *testing.T, base, key string) (*client.Client, *noSleep) {
	t.Helper()
	clk := &noSleep{t: time.Now()}
	c, err := client.New(base, client.WithAPIKey(key), client.WithClock(clk.now, clk.sleep))
	if err != nil {
		t.Fatal(err)
	}
	return c, clk
}

// callThrough runs tollgate call against base with key and a recorded
// clock; it returns the exit status, stdout, stderr and the waits.
func callThrough(t *testing.T, base, key string, args ...string) (code int, stdout, stderr string, sleeps []time.Duration) {
	t.Helper()
	clk := &noSleep{t: time.Now()}
	var out, errb bytes.Buffer
	code = runCall(context.Background(), append([]string{"--base", base, "--key", key, "-v"}, args...), envOf(nil), &out, &errb,
		client.WithClock(clk.now, clk.sleep))
	return code, out.String(), errb.String(), clk.sleeps
}

// clientError returns err as a *client.Error with an API error.
func clientError(t *testing.T, err error) *client.Error {
	t.Helper()
	var ce *client.Error
	if !errors.As(err, &ce) {
		t.Fatalf("err = %T %v, want a *client.Error", err, err)
	}
	if ce.APIError() == nil {
		t.Fatalf("err = %v, want an API error in it", err)
	}
	return ce
}

func secs(n int) time.Duration { return time.Duration(n) * time.Second }

// TestClientThroughGateway: the client and tollgate call, through the
// gateway, retry the upstream's non-contract 5xx and 429 answers as the
// gateway rewrites them, waiting what the gateway's Retry-After says, and
// never retry its 404.
func TestClientThroughGateway(t *testing.T) {
	up := newScriptedUpstream(t)
	base, key, _ := gatewayFor(t, up.URL, "--upstream-timeout", "5s")
	ctx := context.Background()

	// An HTML or plain-text 503 twice, then 200: the first 503 names its
	// own Retry-After (3), the second none, so the gateway sets 1.
	flaky := []http.HandlerFunc{
		text(503, "Retry-After", "3"),
		html(503),
		okJSON(`{"ok":true}`),
	}
	t.Run("503 twice then 200", func(t *testing.T) {
		up.script("/sdk/flaky", flaky...)
		c, clk := sdk(t, base, key)
		resp, err := c.Do(ctx, "GET", "/sdk/flaky", nil)
		if err != nil {
			t.Fatalf("Do: %v", err)
		}
		if resp.StatusCode != 200 || string(resp.Body) != `{"ok":true}` || resp.Attempts != 3 {
			t.Errorf("resp = %d %s after %d attempts, want 200 {\"ok\":true} after 3", resp.StatusCode, resp.Body, resp.Attempts)
		}
		if want := []time.Duration{secs(3), secs(1)}; !slices.Equal(clk.sleeps, want) {
			t.Errorf("waits %v, want %v (the upstream's Retry-After, then the gateway's 1 s)", clk.sleeps, want)
		}
		if n := len(up.hitsOf("/sdk/flaky")); n != 3 {
			t.Errorf("upstream hits = %d, want 3", n)
		}

		up.script("/call/flaky", flaky...)
		code, out, errOut, sleeps := callThrough(t, base, key, "/call/flaky")
		if code != callOK || out != "{\"ok\":true}\n" || !strings.Contains(errOut, "200 after 3 attempt(s)") ||
			!strings.Contains(errOut, "source=retry-after") {
			t.Errorf("call: exit %d, stdout %q, stderr:\n%s", code, out, errOut)
		}
		if want := []time.Duration{secs(3), secs(1)}; !slices.Equal(sleeps, want) {
			t.Errorf("call waits %v, want %v", sleeps, want)
		}
		if n := len(up.hitsOf("/call/flaky")); n != 3 {
			t.Errorf("call: upstream hits = %d, want 3", n)
		}
	})

	// An HTML 429 with Retry-After: 2 and the upstream's rate-limit state.
	limited := func() http.HandlerFunc {
		reset := strconv.FormatInt(time.Now().Add(2*time.Second).Unix(), 10)
		return html(429, "Retry-After", "2", "X-RateLimit-Limit", "10", "X-RateLimit-Remaining", "0",
			"X-RateLimit-Reset", reset, "RateLimit-Policy", `"up";q=10;w=60`)
	}
	t.Run("429 then 200", func(t *testing.T) {
		up.script("/sdk/limited-once", limited(), okJSON(`{"ok":1}`))
		c, clk := sdk(t, base, key)
		resp, err := c.Do(ctx, "GET", "/sdk/limited-once", nil)
		if err != nil {
			t.Fatalf("Do: %v", err)
		}
		if resp.Attempts != 2 || !slices.Equal(clk.sleeps, []time.Duration{secs(2)}) {
			t.Errorf("%d attempts, waits %v; want 2 attempts after one wait of 2s", resp.Attempts, clk.sleeps)
		}
		if n := len(up.hitsOf("/sdk/limited-once")); n != 2 {
			t.Errorf("upstream hits = %d, want 2", n)
		}
	})
	t.Run("429 until the client gives up", func(t *testing.T) {
		up.script("/sdk/limited", limited())
		c, clk := sdk(t, base, key)
		_, err := c.Do(ctx, "GET", "/sdk/limited", nil)
		ce := clientError(t, err)
		a := ce.APIError()
		if !errors.Is(err, client.ErrRateLimited) || a.HTTPStatus() != 429 || ce.Attempts != 3 || ce.Stop != client.StopAttempts || ce.RetryAfter != secs(2) {
			t.Errorf("err = %v (status %d, %d attempts, stop %q, retry after %v), want RATE_LIMITED after 3 attempts, 2s", err, a.HTTPStatus(), ce.Attempts, ce.Stop, ce.RetryAfter)
		}
		if ce.RateLimit == nil || ce.RateLimit.Limit != 10 || ce.RateLimit.Remaining != 0 {
			t.Errorf("RateLimit = %+v, want the upstream's (limit 10, remaining 0)", ce.RateLimit)
		}
		for k, want := range map[string]any{"policy": "upstream", "limit": 10.0, "window": "1m", "retry_after": 2.0, "upstream_status": 429.0} {
			if got := a.Details[k]; got != want {
				t.Errorf("details.%s = %v, want %v (details %v)", k, got, want, a.Details)
			}
		}
		if a.RequestID() == "" {
			t.Errorf("no details.request_id: %v", a.Details)
		}
		if want := []time.Duration{secs(2), secs(2)}; !slices.Equal(clk.sleeps, want) {
			t.Errorf("waits %v, want %v", clk.sleeps, want)
		}
		if n := len(up.hitsOf("/sdk/limited")); n != 3 {
			t.Errorf("upstream hits = %d, want 3", n)
		}

		up.script("/call/limited", limited())
		code, _, errOut, sleeps := callThrough(t, base, key, "/call/limited")
		if code != callRefused || !strings.Contains(errOut, "429 RATE_LIMITED") || !strings.Contains(errOut, `"policy":"upstream"`) ||
			!strings.Contains(errOut, "attempts: 3 (attempts exhausted)") || len(sleeps) != 2 {
			t.Errorf("call: exit %d, waits %v, stderr:\n%s", code, sleeps, errOut)
		}
	})

	// An upstream 429 that names its wait only with X-RateLimit-Reset: the
	// contract's order puts that reset before backoff, so the client must
	// wait for it, not for a Retry-After of 1 s the gateway made up.
	t.Run("429 with only X-RateLimit-Reset", func(t *testing.T) {
		// 20 s ahead (within the client's MaxWait of 30 s): far from the
		// made-up 1 s however slow the machine is.
		resetAt := time.Unix(time.Now().Add(20*time.Second).Unix(), 0)
		reset := strconv.FormatInt(resetAt.Unix(), 10)
		up.script("/sdk/reset", html(429, "X-RateLimit-Limit", "10", "X-RateLimit-Remaining", "0", "X-RateLimit-Reset", reset), okJSON(`{}`))
		c, clk := sdk(t, base, key)
		before := time.Now()
		resp, err := c.Do(ctx, "GET", "/sdk/reset", nil)
		after := time.Now()
		if err != nil {
			t.Fatalf("Do: %v", err)
		}
		// The gateway read its clock between before and after, and
		// Retry-After is the time left to the reset rounded up to whole
		// seconds: bounds from the clock readings, not from a guess at
		// how long the call took.
		lo, hi := secs(apierror.RetrySeconds(resetAt.Sub(after))), secs(apierror.RetrySeconds(resetAt.Sub(before)))
		if resp.Attempts != 2 || len(clk.sleeps) != 1 || clk.sleeps[0] < lo || clk.sleeps[0] > hi {
			t.Errorf("%d attempts, waits %v; want 2 attempts after one wait until the upstream's reset (%v to %v)", resp.Attempts, clk.sleeps, lo, hi)
		}
		if n := len(up.hitsOf("/sdk/reset")); n != 2 {
			t.Errorf("upstream hits = %d, want 2", n)
		}
	})

	t.Run("404 HTML is never retried", func(t *testing.T) {
		up.script("/sdk/missing", html(404))
		c, clk := sdk(t, base, key)
		_, err := c.Do(ctx, "GET", "/sdk/missing", nil)
		ce := clientError(t, err)
		a := ce.APIError()
		if !errors.Is(err, client.ErrNotFound) || a.HTTPStatus() != 404 || a.Details["upstream_status"] != 404.0 || ce.Attempts != 1 || ce.Stop != client.StopNotRetryable {
			t.Errorf("err = %v (details %v, %d attempts, stop %q), want NOT_FOUND with upstream_status 404, 1 attempt", err, a.Details, ce.Attempts, ce.Stop)
		}
		if len(clk.sleeps) != 0 {
			t.Errorf("waited %v", clk.sleeps)
		}
		if n := len(up.hitsOf("/sdk/missing")); n != 1 {
			t.Errorf("upstream hits = %d, want exactly 1", n)
		}

		up.script("/call/missing", html(404))
		code, _, errOut, _ := callThrough(t, base, key, "/call/missing")
		if code != callRefused || !strings.Contains(errOut, "404 NOT_FOUND") || !strings.Contains(errOut, `"upstream_status":404`) {
			t.Errorf("call: exit %d, stderr:\n%s", code, errOut)
		}
		if n := len(up.hitsOf("/call/missing")); n != 1 {
			t.Errorf("call: upstream hits = %d, want exactly 1", n)
		}
	})

	// A POST whose first two answers fail after the upstream did the work
	// (the answer was lost on the way back): the SDK's Idempotency-Key
	// reaches the upstream unchanged on every attempt, so an upstream that
	// dedupes on it creates once.
	idempotent := func(path string) {
		var mu sync.Mutex
		created := map[string]string{} // Idempotency-Key → id
		n := 0
		do := func(w http.ResponseWriter, r *http.Request) string {
			mu.Lock()
			defer mu.Unlock()
			k := r.Header.Get("Idempotency-Key")
			if k == "" {
				return ""
			}
			if _, ok := created[k]; !ok {
				n++
				created[k] = "ord_" + strconv.Itoa(n)
			}
			return created[k]
		}
		up.script(path,
			func(w http.ResponseWriter, r *http.Request) { do(w, r); html(503)(w, r) },
			func(w http.ResponseWriter, r *http.Request) { do(w, r); text(502)(w, r) },
			func(w http.ResponseWriter, r *http.Request) {
				id := do(w, r)
				reply(201, `{"id":"`+id+`"}`)(w, r)
			})
	}
	checkPOST := func(t *testing.T, path, wantKey string) {
		t.Helper()
		hits := up.hitsOf(path)
		if len(hits) != 3 {
			t.Fatalf("upstream hits = %d, want 3", len(hits))
		}
		k := hits[0].idemKey
		if k == "" || (wantKey != "" && k != wantKey) || (wantKey == "" && !strings.HasPrefix(k, "idk_")) {
			t.Errorf("Idempotency-Key the upstream received = %q, want %q", k, cmpOr(wantKey, "idk_…"))
		}
		for i, h := range hits {
			if h.method != "POST" || h.idemKey != k || h.body != `{"item":"book"}` {
				t.Errorf("hit %d = %+v, want POST with key %q and the same body", i+1, h, k)
			}
		}
	}
	t.Run("POST keeps its Idempotency-Key on every retry", func(t *testing.T) {
		idempotent("/sdk/orders")
		c, clk := sdk(t, base, key)
		resp, err := c.Do(ctx, "POST", "/sdk/orders", []byte(`{"item":"book"}`))
		if err != nil {
			t.Fatalf("Do: %v", err)
		}
		if resp.StatusCode != 201 || string(resp.Body) != `{"id":"ord_1"}` || resp.Attempts != 3 || len(clk.sleeps) != 2 {
			t.Errorf("resp = %d %s after %d attempts (waits %v), want 201 ord_1 after 3", resp.StatusCode, resp.Body, resp.Attempts, clk.sleeps)
		}
		checkPOST(t, "/sdk/orders", "")

		idempotent("/sdk/orders-own-key")
		resp, err = c.Do(client.ContextWithIdempotencyKey(ctx, "order-42"), "POST", "/sdk/orders-own-key", []byte(`{"item":"book"}`))
		if err != nil || string(resp.Body) != `{"id":"ord_1"}` {
			t.Fatalf("Do with the caller's key: %v", err)
		}
		checkPOST(t, "/sdk/orders-own-key", "order-42")

		idempotent("/call/orders")
		code, out, errOut, _ := callThrough(t, base, key, "-X", "POST", "/call/orders", "-d", `{"item":"book"}`)
		if code != callOK || out != "{\"id\":\"ord_1\"}\n" {
			t.Errorf("call: exit %d, stdout %q, stderr:\n%s", code, out, errOut)
		}
		checkPOST(t, "/call/orders", "")
	})
}

func cmpOr(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// TestClientThroughGatewayUpstreamDown: with nothing listening at the
// upstream's address, the gateway answers 502 BAD_GATEWAY; the client
// retries it per policy and returns it as a *client.Error, and tollgate
// call exits 3.
func TestClientThroughGatewayUpstreamDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()
	base, key, _ := gatewayFor(t, dead)

	for _, method := range []string{"GET", "POST"} {
		c, clk := sdk(t, base, key)
		var body []byte
		if method == "POST" {
			body = []byte(`{}`)
		}
		_, err := c.Do(context.Background(), method, "/anything", body)
		ce := clientError(t, err)
		a := ce.APIError()
		if !errors.Is(err, client.ErrBadGateway) || a.HTTPStatus() != 502 || ce.Attempts != 3 || ce.Stop != client.StopAttempts {
			t.Errorf("%s: err = %v (%d attempts, stop %q), want BAD_GATEWAY after 3 attempts", method, err, ce.Attempts, ce.Stop)
		}
		if _, ok := a.Details["upstream_status"]; ok {
			t.Errorf("%s: details %v: an unreachable upstream has no status", method, a.Details)
		}
		if len(clk.sleeps) != 2 { // backoff: the gateway names no wait for a 502
			t.Errorf("%s: waits %v, want 2", method, clk.sleeps)
		}
		for _, d := range clk.sleeps {
			if d < 0 || d > client.DefaultMaxDelay {
				t.Errorf("%s: wait %v outside the backoff's range", method, d)
			}
		}
	}

	code, _, errOut, sleeps := callThrough(t, base, key, "/anything")
	if code != callServerError || !strings.Contains(errOut, "502 BAD_GATEWAY") || !strings.Contains(errOut, "attempts: 3 (attempts exhausted)") || len(sleeps) != 2 {
		t.Errorf("call: exit %d (want %d), waits %v, stderr:\n%s", code, callServerError, sleeps, errOut)
	}
}

// TestClientThroughGatewaySlowUpstream: an upstream that sends no headers
// within --upstream-timeout is 504 GATEWAY_TIMEOUT, which the client
// retries as design.md says; one that answers in time on the last attempt
// succeeds.
func TestClientThroughGatewaySlowUpstream(t *testing.T) {
	up := newScriptedUpstream(t)
	base, key, _ := gatewayFor(t, up.URL, "--upstream-timeout", "100ms")
	ctx := context.Background()

	up.script("/sdk/slow", up.hang)
	c, clk := sdk(t, base, key)
	_, err := c.Do(ctx, "GET", "/sdk/slow", nil)
	ce := clientError(t, err)
	a := ce.APIError()
	if !errors.Is(err, client.ErrGatewayTimeout) || a.HTTPStatus() != 504 || a.Details["timeout_ms"] != 100.0 || ce.Attempts != 3 || ce.Stop != client.StopAttempts {
		t.Errorf("err = %v (details %v, %d attempts, stop %q), want GATEWAY_TIMEOUT timeout_ms 100 after 3 attempts", err, a.Details, ce.Attempts, ce.Stop)
	}
	if len(clk.sleeps) != 2 {
		t.Errorf("waits %v, want 2 (backoff)", clk.sleeps)
	}
	if hits := up.waitHits(t, "/sdk/slow", 3); len(hits) != 3 {
		t.Errorf("upstream hits = %d, want 3", len(hits))
	}

	up.script("/sdk/slow-then-ok", up.hang, up.hang, okJSON(`{"ok":true}`))
	c, _ = sdk(t, base, key)
	if resp, err := c.Do(ctx, "GET", "/sdk/slow-then-ok", nil); err != nil || resp.Attempts != 3 {
		t.Errorf("slow twice then ok: %v, want success on attempt 3", err)
	}

	up.script("/call/slow", up.hang)
	code, _, errOut, _ := callThrough(t, base, key, "/call/slow")
	if code != callServerError || !strings.Contains(errOut, "504 GATEWAY_TIMEOUT") || !strings.Contains(errOut, "attempts: 3 (attempts exhausted)") {
		t.Errorf("call: exit %d (want %d), stderr:\n%s", code, callServerError, errOut)
	}
	up.waitHits(t, "/call/slow", 3)
}

// TestClientThroughGatewayRateLimits: the gateway's own 429 (the key's
// plan) and the upstream's 429 (rewritten by the gateway) get the same
// treatment: RATE_LIMITED with the catalogue's details, waits of the
// Retry-After when it is within MaxWait, and a failure at once (no wait)
// when it is not. The gateway's own 429 never reaches the upstream.
func TestClientThroughGatewayRateLimits(t *testing.T) {
	up := newScriptedUpstream(t)
	base, adminKey, db := gatewayFor(t, up.URL)
	ctx := context.Background()

	for _, tt := range []struct {
		rate      string // the tight key's plan
		window    string
		retry     int // the upstream's Retry-After
		attempts  int
		stop      client.StopReason
		maxWaited time.Duration
	}{
		{"1/10s", "10s", 10, 3, client.StopAttempts, secs(10)},
		{"1/1m", "1m", 60, 1, client.StopMaxWait, 0},
	} {
		t.Run(tt.rate, func(t *testing.T) {
			var ck api.CreatedKey
			if err := json.Unmarshal([]byte(runOK(t, "keys", "create", "--database", db, "--name", "tight", "--scopes", "*", "--rate", tt.rate, "--json")), &ck); err != nil {
				t.Fatal(err)
			}
			spend := "/spend/" + tt.window
			up.script(spend, okJSON(`{}`))
			c, _ := sdk(t, base, ck.Secret)
			if _, err := c.Do(ctx, "GET", spend, nil); err != nil {
				t.Fatalf("first request on the tight key: %v", err)
			}

			// The gateway's own 429: a fresh client, without pacing state.
			c, ownClk := sdk(t, base, ck.Secret)
			_, ownErr := c.Do(ctx, "GET", spend, nil)
			if n := len(up.hitsOf(spend)); n != 1 {
				t.Errorf("the gateway's 429 reached the upstream: %d hits, want 1", n)
			}

			// The upstream's 429.
			upPath := "/limited/" + tt.window
			reset := strconv.FormatInt(time.Now().Add(secs(tt.retry)).Unix(), 10)
			up.script(upPath, html(429, "Retry-After", strconv.Itoa(tt.retry), "X-RateLimit-Limit", "1",
				"X-RateLimit-Remaining", "0", "X-RateLimit-Reset", reset, "RateLimit-Policy", `"up";q=1;w=`+strconv.Itoa(tt.retry)))
			c, upClk := sdk(t, base, adminKey)
			_, upErr := c.Do(ctx, "GET", upPath, nil)
			if n := len(up.hitsOf(upPath)); n != tt.attempts {
				t.Errorf("upstream 429: %d hits, want %d", n, tt.attempts)
			}

			for _, side := range []struct {
				name   string
				err    error
				sleeps []time.Duration
				policy func(string) bool
			}{
				{"gateway", ownErr, ownClk.sleeps, func(p string) bool { return p != "" && p != "upstream" }},
				{"upstream", upErr, upClk.sleeps, func(p string) bool { return p == "upstream" }},
			} {
				ce := clientError(t, side.err)
				a := ce.APIError()
				if !errors.Is(side.err, client.ErrRateLimited) || a.HTTPStatus() != 429 || ce.Attempts != tt.attempts || ce.Stop != tt.stop {
					t.Errorf("%s 429: err = %v (%d attempts, stop %q), want RATE_LIMITED, %d attempts, stop %q", side.name, side.err, ce.Attempts, ce.Stop, tt.attempts, tt.stop)
				}
				if ce.RetryAfter <= 0 || ce.RetryAfter > secs(tt.retry) || a.Details["retry_after"] != ce.RetryAfter.Seconds() {
					t.Errorf("%s 429: RetryAfter %v, details.retry_after %v, want equal, within %ds", side.name, ce.RetryAfter, a.Details["retry_after"], tt.retry)
				}
				if ce.RateLimit == nil || ce.RateLimit.Limit != 1 || ce.RateLimit.Remaining != 0 {
					t.Errorf("%s 429: RateLimit %+v, want limit 1, remaining 0", side.name, ce.RateLimit)
				}
				p, _ := a.Details["policy"].(string)
				if a.Details["limit"] != 1.0 || a.Details["window"] != tt.window || !side.policy(p) {
					t.Errorf("%s 429: details %v, want limit 1, window %s and its policy", side.name, a.Details, tt.window)
				}
				if len(side.sleeps) != tt.attempts-1 {
					t.Errorf("%s 429: waits %v, want %d", side.name, side.sleeps, tt.attempts-1)
				}
				for _, d := range side.sleeps {
					if d <= 0 || d > tt.maxWaited {
						t.Errorf("%s 429: waited %v, want the Retry-After (≤ %v)", side.name, d, tt.maxWaited)
					}
				}
			}

			// tollgate call: both are a refusal, exit 1.
			for _, k := range []struct{ key, path string }{{ck.Secret, spend}, {adminKey, upPath}} {
				code, _, errOut, _ := callThrough(t, base, k.key, k.path)
				if code != callRefused || !strings.Contains(errOut, "429 RATE_LIMITED") {
					t.Errorf("call %s: exit %d, stderr:\n%s", k.path, code, errOut)
				}
			}
		})
	}
}
