package gateway_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/apierror"
	"github.com/tollgate-dev/tollgate/gateway"
	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/ratelimit"
)

// TestInformationalKeepsGatewayHeaders: an upstream that sends 103 Early
// Hints before its answer must not take the gateway's X-Request-Id and
// rate-limit headers off the final response (ReverseProxy clears the
// response's header map after forwarding a 1xx), nor change the request
// id of a replaced error. The 103 itself carries the gateway's id, once.
func TestInformationalKeepsGatewayHeaders(t *testing.T) {
	for _, final := range []int{http.StatusOK, http.StatusNotFound} {
		t.Run(fmt.Sprint(final), func(t *testing.T) {
			up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Link", "</a.css>; rel=preload")
				w.Header().Set("X-Request-Id", "upstream-id")
				w.WriteHeader(http.StatusEarlyHints)
				w.Header().Del("Link")
				w.Header().Set("Content-Type", "text/html")
				w.WriteHeader(final)
				io.WriteString(w, "<html>hi</html>")
			})
			limiter := ratelimit.NewMemoryStore(ratelimit.MemoryOptions{})
			h := newHarness(t, up, gateway.Options{}, middleware.RateLimit(middleware.RateLimitConfig{
				Store: limiter, Default: ratelimit.Policy{Name: "default", Limit: 100, Window: time.Minute},
			}))
			var hints []textproto.MIMEHeader
			ctx := httptrace.WithClientTrace(t.Context(), &httptrace.ClientTrace{
				Got1xxResponse: func(code int, hdr textproto.MIMEHeader) error {
					hints = append(hints, hdr)
					return nil
				},
			})
			req, err := http.NewRequestWithContext(ctx, "GET", h.url+"/page", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+h.key)
			req.Header.Set("X-Request-Id", "trace-103")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if v := resp.Header.Values("X-Request-Id"); len(v) != 1 || v[0] != "trace-103" {
				t.Errorf("final X-Request-Id = %q, want the gateway's trace-103 once", v)
			}
			if resp.Header.Get("X-Ratelimit-Limit") != "100" {
				t.Errorf("final response lost the gateway's rate-limit headers: %v", resp.Header)
			}
			if final >= 400 {
				if d := envelope(t, resp, body, final, apierror.CodeForStatus(final)); d["request_id"] != "trace-103" {
					t.Errorf("details.request_id = %v, want trace-103", d["request_id"])
				}
			}
			if len(hints) != 1 {
				t.Fatalf("got %d informational responses, want the upstream's 103", len(hints))
			}
			if v := hints[0]["X-Request-Id"]; len(v) != 1 || v[0] != "trace-103" {
				t.Errorf("103 X-Request-Id = %q, want the gateway's trace-103 once", v)
			}
			if hints[0].Get("Link") == "" {
				t.Errorf("103 lost the upstream's Link: %v", hints[0])
			}
		})
	}
}

// TestUnderscoreHeadersRemoved: CGI, WSGI (gunicorn before 22, Werkzeug),
// Rack and PHP read X_Tollgate_Account and X-Tollgate-Account as the same
// HTTP_X_TOLLGATE_ACCOUNT, and Go sends the underscore spelling last, so
// that it wins where the last one does. The client's underscore spellings
// of the identity, credential, request-id and forwarding headers must not
// reach the upstream.
func TestUnderscoreHeadersRemoved(t *testing.T) {
	seen := make(chan http.Header, 1)
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Clone()
		io.WriteString(w, "ok")
	})
	h := newHarness(t, up, gateway.Options{})
	c, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /x HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer %s\r\n"+
		"X_Tollgate_Account: acc_evil\r\nx-tollgate_scopes: admin:write\r\nX_API_KEY: %s\r\n"+
		"X_Request_Id: forged\r\nX_Forwarded_For: 203.0.113.9\r\nx_forwarded-host: evil.example\r\n"+
		"X-Forwarded-Port: 2\r\nX-Forwarded-Prefix: /evil\r\nx-forwarded-ssl: on\r\n"+
		"X_Custom: kept\r\nConnection: close\r\n\r\n", h.key, h.key)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d, want the upstream's 200", resp.StatusCode)
	}
	got := <-seen
	for k, v := range got {
		n := strings.ToLower(strings.ReplaceAll(k, "_", "-"))
		if n != strings.ToLower(k) && n != "x-custom" {
			t.Errorf("upstream received %s: %q", k, v)
		}
	}
	for _, k := range []string{"X-Forwarded-Port", "X-Forwarded-Prefix", "X-Forwarded-Ssl"} {
		if v := got.Values(k); len(v) > 0 {
			t.Errorf("upstream received the client's %s: %q", k, v)
		}
	}
	if got.Get("X_custom") != "kept" {
		t.Errorf("X_Custom = %q, want other underscore headers kept", got.Get("X_custom"))
	}
	if v := got.Get(gateway.HeaderAccount); v != h.accountID {
		t.Errorf("%s = %q, want %q", gateway.HeaderAccount, v, h.accountID)
	}
}
