package api_test

import (
	"bytes"
	"context"
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
