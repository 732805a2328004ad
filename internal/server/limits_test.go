package server_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/apierror"
	"github.com/tollgate-dev/tollgate/internal/server"
)

// TestOptionsStarThroughChain: "OPTIONS *" goes through the chain like any
// request (net/http's own handler would answer 200 with no X-Request-Id):
// the router answers it with the envelope.
func TestOptionsStarThroughChain(t *testing.T) {
	c, err := net.Dial("tcp", startServer(t, newServer(t, io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	e := apierror.Decode(resp)
	if e.Foreign || resp.StatusCode/100 != 4 || e.RequestID() == "" || e.RequestID() != resp.Header.Get("X-Request-Id") {
		t.Errorf("OPTIONS *: %d %+v, X-Request-Id %q; want a 4xx envelope with the request id", resp.StatusCode, e, resp.Header.Get("X-Request-Id"))
	}
}

// TestHeaderLimit: a header block up to 64 KiB is served, a larger one
// gets 431 (net/http's answer, before any handler).
func TestHeaderLimit(t *testing.T) {
	addr := startServer(t, newServer(t, io.Discard, nil))
	for _, tt := range []struct {
		name string
		size int // of one header's value
		want int
	}{
		{"60 KiB", 60 << 10, 200},
		{"just under 64 KiB in all", 64<<10 - 200, 200},
		{"65 KiB", 65 << 10, http.StatusRequestHeaderFieldsTooLarge},
		{"68,000 bytes", 68000, http.StatusRequestHeaderFieldsTooLarge},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest("GET", "http://"+addr+"/healthz", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("X-Big", strings.Repeat("a", tt.size))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
}

// TestSuccessFieldOnHealth: with SuccessField, /healthz and /readyz carry
// "success": true like every other 2xx body.
func TestSuccessFieldOnHealth(t *testing.T) {
	for _, on := range []bool{false, true} {
		h := server.New(server.Config{SuccessField: on}).Handler()
		for _, p := range []string{"/healthz", "/readyz"} {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", p, nil))
			want := `{"status":"ok"}` + "\n"
			if on {
				want = `{"success":true,"status":"ok"}` + "\n"
			}
			if rec.Code != 200 || rec.Body.String() != want {
				t.Errorf("SuccessField %v: GET %s = %d %q, want 200 %q", on, p, rec.Code, rec.Body, want)
			}
		}
	}
}
