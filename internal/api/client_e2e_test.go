package api_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/apierror"
	"github.com/tollgate-dev/tollgate/auth"
	"github.com/tollgate-dev/tollgate/client"
	"github.com/tollgate-dev/tollgate/internal/api"
	"github.com/tollgate-dev/tollgate/internal/server"
	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/store"
)

// faultProxy forwards to backend, but answers about 30% of requests with
// 503 itself and, for about 10%, lets the backend handle the request and
// then resets the connection instead of answering. It injects at most two
// faults per Idempotency-Key, so every logical call can succeed within the
// client's three attempts. It counts attempts per key.
type faultProxy struct {
	backend string
	mu      sync.Mutex
	rng     *rand.Rand
	faults  map[string]int
	tries   map[string]int
	resets  atomic.Int64
	refused atomic.Int64
}

func (p *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("Idempotency-Key")
	p.mu.Lock()
	p.tries[key]++
	roll := p.rng.Float64()
	fault := ""
	if p.faults[key] < 2 {
		switch {
		case roll < 0.30:
			fault = "503"
		case roll < 0.40:
			fault = "reset"
		}
		if fault != "" {
			p.faults[key]++
		}
	}
	p.mu.Unlock()
	if fault == "503" {
		p.refused.Add(1)
		apierror.Write(w, r, apierror.New(apierror.ServiceUnavailable, "").With("reason", "overloaded").WithRetryAfter(time.Second))
		return
	}
	body, _ := io.ReadAll(r.Body)
	req, _ := http.NewRequestWithContext(r.Context(), r.Method, p.backend+r.URL.RequestURI(), bytes.NewReader(body))
	req.Header = r.Header.Clone()
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		apierror.Write(w, r, apierror.Wrap(err, apierror.BadGateway, ""))
		return
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if fault == "reset" {
		// The server did the work; the client never hears of it.
		p.resets.Add(1)
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			if tc, ok := conn.(*net.TCPConn); ok {
				tc.SetLinger(0) // RST, not FIN
			}
			conn.Close()
		}
		return
	}
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	w.WriteHeader(resp.StatusCode)
	w.Write(out)
}

// TestClientThroughFaults: 1,000 logical POST /v1/leads through a proxy
// that refuses 30% of requests with 503 and resets 10% of connections
// after the server handled the request. The client's retries, with one
// Idempotency-Key per call, give 0 duplicate leads, 0 lost, ≤ 3 attempts
// per call. (The retry budget is off here: it exists to shed load in an
// outage, and at a 40% fault rate it would rightly give up on some calls.)
func TestClientThroughFaults(t *testing.T) {
	const calls = 1000
	st := sqliteStore(t)
	ctx := context.Background()
	acc, _, _ := st.EnsureAccount(ctx, "acme")
	key, err := api.CreateKey(ctx, st, acc.ID, api.KeyRequest{Name: "k", Scopes: []string{auth.ScopeLeadsWrite}, Rate: "1000000/1m"})
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Config{})
	api.New(api.Config{Store: st, Verifier: auth.NewVerifier(store.AuthKeys(st)),
		Idempotency: middleware.Idempotency(st, middleware.IdempotencyOptions{})}).Routes(srv.Handle)
	backend := httptest.NewServer(srv.Handler())
	defer backend.Close()
	proxy := &faultProxy{backend: backend.URL, rng: rand.New(rand.NewPCG(1, 2)), faults: map[string]int{}, tries: map[string]int{}}
	front := httptest.NewServer(proxy)
	defer front.Close()

	var slept atomic.Int64
	c, err := client.New(front.URL, client.WithAPIKey(key.Secret),
		client.WithRetry(client.Policy{DisableBudget: true}),
		client.WithClock(nil, func(ctx context.Context, d time.Duration) error { slept.Add(int64(d)); return ctx.Err() }))
	if err != nil {
		t.Fatal(err)
	}
	var failed atomic.Int64
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= calls; i = next.Add(1) {
				if _, err := c.Leads.Create(ctx, client.LeadCreate{Name: "Lead", Phone: fmt.Sprintf("+1415%07d", i)}); err != nil {
					failed.Add(1)
					t.Errorf("call %d: %v", i, err)
				}
			}
		}()
	}
	wg.Wait()

	total := 0
	for cursor := ""; ; {
		page, nextCursor, err := st.ListLeads(ctx, acc.ID, store.LeadFilter{}, store.Page{After: cursor, Limit: store.MaxLimit})
		if err != nil {
			t.Fatal(err)
		}
		total += len(page)
		if nextCursor == "" {
			break
		}
		cursor = nextCursor
	}
	maxTries := 0
	for _, n := range proxy.tries {
		maxTries = max(maxTries, n)
	}
	t.Logf("%d calls: %d leads stored, %d failed calls, %d 503s and %d resets injected, max %d attempts per call, %v of waits (virtual)",
		calls, total, failed.Load(), proxy.refused.Load(), proxy.resets.Load(), maxTries, time.Duration(slept.Load()))
	if total != calls {
		t.Errorf("%d leads stored, want %d (duplicates or losses)", total, calls)
	}
	if maxTries > 3 {
		t.Errorf("a call made %d attempts, want ≤ 3", maxTries)
	}
	if proxy.resets.Load() == 0 || proxy.refused.Load() == 0 {
		t.Errorf("no faults injected")
	}
}

// TestClientE2EPatchClears: SessionUpdate can say each of the three things
// docs/api.md says a PATCH member can say: absent (unchanged), a value,
// and null (endedAt cleared, metadata reset to {}), against the real API.
func TestClientE2EPatchClears(t *testing.T) {
	l := startLive(t, sqliteStore(t), liveOptions{})
	c, err := client.New(l.base, client.WithAPIKey(l.admin))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	end := time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
	later := end.Add(time.Hour)
	tests := []struct {
		name         string
		update       client.SessionUpdate
		wantEndedAt  *time.Time
		wantMetadata map[string]any
		wantTitle    string
	}{
		{"nothing set: unchanged", client.SessionUpdate{}, &end, map[string]any{"plan": "pro"}, "T"},
		{"ClearEndedAt: endedAt null", client.SessionUpdate{ClearEndedAt: true}, nil, map[string]any{"plan": "pro"}, "T"},
		{"EndedAt: set", client.SessionUpdate{EndedAt: &later}, &later, map[string]any{"plan": "pro"}, "T"},
		{"empty Metadata: reset to {}", client.SessionUpdate{Metadata: map[string]any{}}, &end, map[string]any{}, "T"},
		{"Metadata: replaced", client.SessionUpdate{Metadata: map[string]any{"x": "y"}}, &end, map[string]any{"x": "y"}, "T"},
		{"empty Title: cleared", client.SessionUpdate{Title: client.Ptr("")}, &end, map[string]any{"plan": "pro"}, ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := c.Sessions.Create(ctx, client.SessionCreate{SessionExternalID: fmt.Sprint("patch-", i), Title: "T",
				EndedAt: &end, Metadata: map[string]any{"plan": "pro"}})
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.Sessions.Update(ctx, s.ID, tt.update)
			if err != nil {
				t.Fatal(err)
			}
			for _, g := range []*client.Session{got, mustGet(t, c, s.ID)} {
				if (g.EndedAt == nil) != (tt.wantEndedAt == nil) || (g.EndedAt != nil && !g.EndedAt.Equal(*tt.wantEndedAt)) {
					t.Errorf("endedAt = %v, want %v", g.EndedAt, tt.wantEndedAt)
				}
				if fmt.Sprint(g.Metadata) != fmt.Sprint(tt.wantMetadata) {
					t.Errorf("metadata = %v, want %v", g.Metadata, tt.wantMetadata)
				}
				if g.Title != tt.wantTitle {
					t.Errorf("title = %q, want %q", g.Title, tt.wantTitle)
				}
			}
		})
	}
}

func mustGet(t *testing.T, c *client.Client, id string) *client.Session {
	t.Helper()
	s, err := c.Sessions.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestClientE2EPathIDs: an id is sent as one path segment whatever it
// holds: one with '/', '?', '#', '%' or a space names no record, so every
// id call answers 404 NOT_FOUND for its resource, never another route.
// (Not "." or "..": the server's router refuses a path whose decoded form
// has a dot segment, escaped or not, with 404 ROUTE_NOT_FOUND.)
func TestClientE2EPathIDs(t *testing.T) {
	l := startLive(t, sqliteStore(t), liveOptions{})
	c, err := client.New(l.base, client.WithAPIKey(l.admin))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	calls := []struct {
		name string
		call func(id string) error
	}{
		{"get session", func(id string) error { _, err := c.Sessions.Get(ctx, id); return err }},
		{"update session", func(id string) error { _, err := c.Sessions.Update(ctx, id, client.SessionUpdate{}); return err }},
		{"delete session", func(id string) error { return c.Sessions.Delete(ctx, id) }},
		{"get lead", func(id string) error { _, err := c.Leads.Get(ctx, id); return err }},
		{"update lead", func(id string) error { _, err := c.Leads.Update(ctx, id, client.LeadUpdate{}); return err }},
		{"delete lead", func(id string) error { return c.Leads.Delete(ctx, id) }},
		{"get key", func(id string) error { _, err := c.Keys.Get(ctx, id); return err }},
		{"revoke key", func(id string) error { return c.Keys.Revoke(ctx, id) }},
		{"rotate key", func(id string) error { _, err := c.Keys.Rotate(ctx, id, 0); return err }},
	}
	for _, cl := range calls {
		for _, id := range []string{"a/b", "a?b", "a#b", "...", "%2e%2e", "%2F", "ses_ x"} {
			t.Run(cl.name+" "+id, func(t *testing.T) {
				err := cl.call(id)
				var ae *apierror.Error
				if !errors.As(err, &ae) || ae.Code != apierror.NotFound {
					t.Errorf("error = %v, want NOT_FOUND", err)
				}
			})
		}
	}
}

// TestClientE2ERotateNow: Keys.Rotate with client.NoOverlap ends the old
// secret at once (a leaked key), and the new one works; overlap 0 keeps
// the server's default overlap, during which the old secret still works.
func TestClientE2ERotateNow(t *testing.T) {
	l := startLive(t, sqliteStore(t), liveOptions{})
	admin, err := client.New(l.base, client.WithAPIKey(l.admin))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tt := range []struct {
		name       string
		overlap    time.Duration
		oldWorks   bool
		wantExpiry bool
	}{
		{"NoOverlap", client.NoOverlap, false, true},
		{"server default", 0, true, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			k, err := admin.Keys.Create(ctx, client.KeyCreate{Name: "rot " + tt.name, Scopes: []string{"leads:read"}})
			if err != nil {
				t.Fatal(err)
			}
			r, err := admin.Keys.Rotate(ctx, k.ID, tt.overlap)
			if err != nil {
				t.Fatal(err)
			}
			if (r.PreviousKeyExpiresAt != nil) != tt.wantExpiry {
				t.Errorf("previous_key_expires_at = %v", r.PreviousKeyExpiresAt)
			}
			use := func(secret string) error {
				c, err := client.New(l.base, client.WithAPIKey(secret))
				if err != nil {
					t.Fatal(err)
				}
				for _, err := range c.Leads.List(ctx, client.LeadListOptions{Limit: 1}) {
					return err
				}
				return nil
			}
			if err := use(r.Key); err != nil {
				t.Errorf("new secret: %v", err)
			}
			err = use(k.Key)
			if tt.oldWorks && err != nil || !tt.oldWorks && !errors.Is(err, client.ErrUnauthorized) {
				t.Errorf("old secret: %v; want working %v", err, tt.oldWorks)
			}
		})
	}
}
