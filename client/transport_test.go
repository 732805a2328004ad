package client_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tollgate-dev/tollgate/client"
)

func TestTransportIdempotencyKeys(t *testing.T) {
	tests := []struct {
		name     string
		method   string
		key      string
		wantHits int
		wantKey  string // "*" = any non-empty key, "" = none
	}{
		{"post without key gets one", "POST", "", 3, "*"},
		{"post keeps its key", "POST", "caller-key", 3, "caller-key"},
		{"patch without key gets one", "PATCH", "", 3, "*"},
		{"patch keeps its key", "PATCH", "k2", 3, "k2"},
		{"put gets none", "PUT", "", 3, ""},
		{"delete gets none", "DELETE", "", 3, ""},
		{"get gets none", "GET", "", 3, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newFakeClock()
			srv := newScript(t, status(503, ""), status(503, ""), status(200, "{}"))
			hc := &http.Client{Transport: &client.Transport{Now: clk.Now, Sleep: clk.Sleep}}
			var body io.Reader
			if tt.method != "GET" && tt.method != "DELETE" {
				body = strings.NewReader(`{"a":1}`)
			}
			req, err := http.NewRequest(tt.method, srv.URL+"/v1/x", body)
			if err != nil {
				t.Fatal(err)
			}
			if tt.key != "" {
				req.Header.Set("Idempotency-Key", tt.key)
			}
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatalf("Do = %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("status = %d, want 200", resp.StatusCode)
			}
			if got := req.Header.Get("Idempotency-Key"); got != tt.key {
				t.Errorf("caller's request modified: Idempotency-Key = %q, want %q", got, tt.key)
			}
			hits := srv.Hits()
			if len(hits) != tt.wantHits {
				t.Fatalf("hits = %d, want %d", len(hits), tt.wantHits)
			}
			for i, h := range hits {
				switch {
				case tt.wantKey == "*" && h.IdempotencyKey == "":
					t.Errorf("attempt %d: no Idempotency-Key", i+1)
				case tt.wantKey != "*" && h.IdempotencyKey != tt.wantKey:
					t.Errorf("attempt %d: Idempotency-Key = %q, want %q", i+1, h.IdempotencyKey, tt.wantKey)
				case h.IdempotencyKey != hits[0].IdempotencyKey:
					t.Errorf("attempt %d: Idempotency-Key %q differs from attempt 1's %q", i+1, h.IdempotencyKey, hits[0].IdempotencyKey)
				}
				if body != nil && h.Body != `{"a":1}` {
					t.Errorf("attempt %d: body = %q, want it rewound to %q", i+1, h.Body, `{"a":1}`)
				}
			}
		})
	}
}

func TestTransportBodyWithoutGetBodyIsSentOnce(t *testing.T) {
	clk := newFakeClock()
	srv := newScript(t, status(503, `{"error":{"code":"SERVICE_UNAVAILABLE","message":"Down.","details":{}}}`), status(200, "{}"))
	hc := &http.Client{Transport: &client.Transport{Now: clk.Now, Sleep: clk.Sleep}}
	req, _ := http.NewRequest("PUT", srv.URL+"/v1/x", io.NopCloser(strings.NewReader("once")))
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 503 || !strings.Contains(string(b), "SERVICE_UNAVAILABLE") {
		t.Errorf("response = %d %q, want the 503 with its body still readable", resp.StatusCode, b)
	}
	if n := len(srv.Hits()); n != 1 {
		t.Errorf("hits = %d, want 1: a body without GetBody cannot be rewound", n)
	}
}

// trackingRT answers from a script and records whether each body was
// closed and how much of it was read.
type trackingRT struct {
	mu     sync.Mutex
	codes  []int
	bodies []*trackedBody
	sent   []string // request bodies, as read
}

type trackedBody struct {
	r      *bytes.Reader
	closed bool
}

func (b *trackedBody) Read(p []byte) (int, error) { return b.r.Read(p) }
func (b *trackedBody) Close() error               { b.closed = true; return nil }

func (rt *trackingRT) RoundTrip(req *http.Request) (*http.Response, error) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if req.Body != nil {
		b, _ := io.ReadAll(req.Body)
		rt.sent = append(rt.sent, string(b))
		req.Body.Close()
	}
	code := rt.codes[min(len(rt.bodies), len(rt.codes)-1)]
	b := &trackedBody{r: bytes.NewReader(bytes.Repeat([]byte("x"), 10000))}
	rt.bodies = append(rt.bodies, b)
	return &http.Response{StatusCode: code, Header: http.Header{}, Body: b, Request: req}, nil
}

func TestTransportDrainsAndClosesBeforeRetry(t *testing.T) {
	clk := newFakeClock()
	rt := &trackingRT{codes: []int{502, 503, 200}}
	tr := &client.Transport{Base: rt, Now: clk.Now, Sleep: clk.Sleep}
	req, _ := http.NewRequest("POST", "http://example.invalid/v1/x", strings.NewReader(`{"n":1}`))
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || len(rt.bodies) != 3 {
		t.Fatalf("status %d after %d attempts, want 200 after 3", resp.StatusCode, len(rt.bodies))
	}
	for i, b := range rt.bodies[:2] {
		if !b.closed || b.r.Len() != 0 {
			t.Errorf("attempt %d body: closed %v, %d bytes unread; want drained and closed", i+1, b.closed, b.r.Len())
		}
	}
	if diff := cmp.Diff([]string{`{"n":1}`, `{"n":1}`, `{"n":1}`}, rt.sent); diff != "" {
		t.Errorf("request bodies not rewound (-want +got):\n%s", diff)
	}
	if rt.bodies[2].closed {
		t.Errorf("the returned response's body was closed")
	}
}

func TestTransportCancelledContext(t *testing.T) {
	srv := newScript(t, status(200, "{}"))
	hc := &http.Client{Transport: &client.Transport{}}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
	if _, err := hc.Do(req); !errors.Is(err, context.Canceled) {
		t.Errorf("Do = %v, want context.Canceled", err)
	}
}

func TestTransportConcurrentUse(t *testing.T) {
	srv := newScript(t, status(200, "{}", "X-RateLimit-Limit", "100", "X-RateLimit-Remaining", "50", "X-RateLimit-Reset", "4102444800"))
	hc := &http.Client{Transport: &client.Transport{}}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 20 {
				resp, err := hc.Post(srv.URL, "application/json", strings.NewReader("{}"))
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	if n := len(srv.Hits()); n != 160 {
		t.Errorf("hits = %d, want 160", n)
	}
}

// TestNewRedactsBaseURL: a base URL that New refuses is quoted in its
// error without its password, whether or not it parses.
func TestNewRedactsBaseURL(t *testing.T) {
	for _, base := range []string{
		"http://u:S3c%zzret@127.0.0.1:1",       // does not parse
		"ftp://u:S3cret@127.0.0.1/x",           // not http(s)
		"http://u:S3cret@127.0.0.1:1/?q=1",     // a query
		"http://u:S3c%zzret@127.0.0.1:1/p?q#f", // does not parse, with a path
		"http://admin:pa/S3c%zz@127.0.0.1:1",   // a "/" in the password
		"admin:S3cret@127.0.0.1:8080",          // no scheme
		"//admin:S3c%zz@127.0.0.1:8080",        // scheme-relative
	} {
		_, err := client.New(base)
		if err == nil || strings.Contains(err.Error(), "S3c") || !strings.Contains(err.Error(), "127.0.0.1") {
			t.Errorf("New(%q) error = %v; want one without the password, naming the host", base, err)
		}
	}
}
