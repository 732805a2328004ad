package client_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/client"
)

// TestTruncated2xxBodyRetried: a GET whose 200 body is cut off by a
// connection reset is a connection error of that attempt, retried like a
// reset before the headers.
func TestTruncated2xxBodyRetried(t *testing.T) {
	clk := newFakeClock()
	truncated := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", "1000")
		w.WriteHeader(200)
		io.WriteString(w, `{"id":"lead_1",`)
		w.(http.Flusher).Flush()
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}
	srv := newScript(t, truncated, status(200, leadJSON))
	c := newClient(t, srv.URL, clk)
	lead, err := c.Leads.Get(context.Background(), "lead_1")
	if err != nil {
		var ce *client.Error
		errors.As(err, &ce)
		t.Fatalf("Get = %v (attempts %d, stop %q); want lead_1 after a retry (hits %d)", err, ce.Attempts, ce.Stop, len(srv.Hits()))
	}
	if lead.ID != "lead_1" {
		t.Fatalf("lead = %+v", lead)
	}
}

// TestRetryAfterDateOnServerClock: Retry-After as an HTTP date is the
// server's clock: a client whose clock runs 10 s ahead still waits the 5 s
// the server asked for (Date + 5 s), not retry at once.
func TestRetryAfterDateOnServerClock(t *testing.T) {
	clk := newFakeClock()
	serverNow := clk.Now().Add(-10 * time.Second)
	srv := newScript(t,
		status(503, "", "Date", serverNow.UTC().Format(http.TimeFormat),
			"Retry-After", serverNow.Add(5*time.Second).UTC().Format(http.TimeFormat)),
		status(200, leadJSON))
	c := newClient(t, srv.URL, clk)
	if _, err := c.Leads.Get(context.Background(), "lead_1"); err != nil {
		t.Fatal(err)
	}
	if s := clk.Sleeps(); len(s) != 1 || s[0] != 5*time.Second {
		t.Fatalf("sleeps = %v, want [5s] (Retry-After minus the response's Date)", s)
	}
}
