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

// TestCallBadRequestLineIsUsage: a method or path that cannot make an HTTP
// request is the caller's mistake: exit 2 with the usage, the server never
// called, never exit 3 ("server error") after 0 attempts.
func TestCallBadRequestLineIsUsage(t *testing.T) {
	srv, recs := callServer(t, reply(200, `{}`))
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"non-ASCII method", []string{"-X", "GÉT", "/v1/leads"}},
		{"control character in method", []string{"-X", "G\x01T", "/v1/leads"}},
		{"control character in path", []string{"/v1/leads\x00"}},
		{"bad escape in path", []string{"/v1/leads/%zz"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			clk := &noSleep{t: time.Now()}
			var so, se bytes.Buffer
			code := runCall(context.Background(), append([]string{"--base", srv.URL}, tt.args...), envOf(nil), &so, &se, client.WithClock(clk.now, clk.sleep))
			if code != callUsageError || !strings.Contains(se.String(), "usage: tollgate call") {
				t.Errorf("exit %d, want %d with the usage; stderr:\n%s", code, callUsageError, se.String())
			}
		})
	}
	if n := len(recs()); n != 0 {
		t.Errorf("server called %d times, want 0", n)
	}
}

// TestCallErrorTextIsPrintable: what the server says (code, message,
// request id, a status line) reaches the terminal without its control
// characters: a hostile server or proxy cannot send escape sequences to
// the user's terminal through stderr.
func TestCallErrorTextIsPrintable(t *testing.T) {
	for _, tt := range []struct {
		name string
		h    http.HandlerFunc
	}{
		{"message and request id", reply(404, `{"error":{"code":"NOT_FOUND","message":"gone \u001b]0;pwned\u0007","details":{"request_id":"req_\u001b[31m"}}}`)},
		{"code", reply(404, `{"error":{"code":"NOT_\u001b[2JFOUND","message":"gone","details":{}}}`)},
		{"status line of a 3xx", func(w http.ResponseWriter, r *http.Request) {
			conn, buf, _ := w.(http.Hijacker).Hijack()
			buf.WriteString("HTTP/1.1 300 Multiple\x1b[2J Choices\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
			buf.Flush()
			conn.Close()
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := callServer(t, tt.h)
			clk := &noSleep{t: time.Now()}
			var so, se bytes.Buffer
			code := runCall(context.Background(), []string{"--base", srv.URL, "/v1/leads"}, envOf(nil), &so, &se, client.WithClock(clk.now, clk.sleep))
			if code == callOK || strings.ContainsAny(se.String(), "\x1b\x07") {
				t.Errorf("exit %d, stderr %q: want an error without control characters", code, se.String())
			}
		})
	}
}
