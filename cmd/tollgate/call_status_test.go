package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/client"
)

// TestCall3xxNotFollowed: a 3xx the http.Client does not follow is neither
// a refusal nor an internal error of the API: exit 3 like other failures
// without an API error, never "300 INTERNAL_ERROR" with exit 1.
func TestCall3xxNotFollowed(t *testing.T) {
	srv, _ := callServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(300)
		io.WriteString(w, "<html>choices</html>")
	})
	clk := &noSleep{t: time.Now()}
	var so, se bytes.Buffer
	code := runCall(context.Background(), []string{"--base", srv.URL, "/v1/leads"}, envOf(nil), &so, &se, client.WithClock(clk.now, clk.sleep))
	if code != callServerError || strings.Contains(se.String(), "INTERNAL_ERROR") || !strings.Contains(se.String(), "300") {
		t.Errorf("exit %d, stderr:\n%s", code, se.String())
	}
}

// TestCallInterrupted: a call cancelled while it waits to retry (SIGINT)
// exits 130, not 3: the cancellation says nothing of the server.
func TestCallInterrupted(t *testing.T) {
	srv, _ := callServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "20")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(503)
		io.WriteString(w, `{"error":{"code":"SERVICE_UNAVAILABLE","message":"busy","details":{}}}`)
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	interrupt := func(context.Context, time.Duration) error { cancel(); return context.Canceled } // ^C during the wait
	var so, se bytes.Buffer
	code := runCall(ctx, []string{"--base", srv.URL, "/v1/leads"}, envOf(nil), &so, &se, client.WithClock(time.Now, interrupt))
	if code != callInterrupted {
		t.Errorf("exit %d, want %d; stderr:\n%s", code, callInterrupted, se.String())
	}
}

// TestPrintable: key names reach a terminal quoted when they could break
// the table or the terminal, and as they are otherwise.
func TestPrintable(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"ci", "ci"},
		{"café 日本", "café 日本"},
		{"evil\tname\nX", `"evil\tname\nX"`},
		{"\x1b[31mred", `"\x1b[31mred"`},
		{"line\u2028sep", `"line\u2028sep"`},
		{"rtl\u202eoverride", `"rtl\u202eoverride"`},
		{"zero\u200bwidth", `"zero\u200bwidth"`},
		{"bad\xffbyte", `"bad\xffbyte"`},
	} {
		if got := printable(tt.in); got != tt.want {
			t.Errorf("printable(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}
