package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/apierror"
	"github.com/tollgate-dev/tollgate/gateway"
	"github.com/tollgate-dev/tollgate/internal/api"
	"github.com/tollgate-dev/tollgate/internal/testenv"
)

// runGateway runs gateway with args on addr: see runCommand.
func runGateway(t *testing.T, addr string, args ...string) (out, logs *testenv.Buffer, stop func() error) {
	t.Helper()
	return runCommand(t, "gateway", addr, args...)
}

// TestGateway runs the gateway command end to end against an upstream on
// loopback: the first start prints a key, which works; the upstream sees
// the caller's identity instead of the key; its HTML error comes back as
// the envelope; the chain refuses without a key and past the rate plan;
// /healthz and /metrics are the gateway's own; cancelling stops it.
func TestGateway(t *testing.T) {
	var calls atomic.Int64
	seen := make(chan http.Header, 16)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		select {
		case seen <- r.Header.Clone():
		default:
		}
		switch r.URL.Path {
		case "/base/hello":
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, "hello from upstream")
		case "/base/broken":
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusBadGateway)
			io.WriteString(w, "<html><body>502 Bad Gateway</body></html>")
		default:
			http.NotFound(w, r)
		}
	}))
	defer up.Close()

	db := filepath.Join(t.TempDir(), "g.db")
	addr := freeAddr(t)
	out, logs, stop := runGateway(t, addr, "--database", db, "--upstream", up.URL+"/base", "--rate-default", "6/1h", "--upstream-timeout", "5s")
	key := regexp.MustCompile(`tg_live_[0-9A-Za-z]+`).FindString(out.String())
	if key == "" || !strings.Contains(out.String(), "http://"+addr+"/") {
		t.Fatalf("no admin key printed:\n%s", out.String())
	}
	do := func(method, path, key string, headers ...string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, "http://"+addr+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}

	// 1. A proxied 200, with the caller's identity and without the key.
	resp, body := do("GET", "/hello", key, "X-Tollgate-Account", "acc_forged", "X-Request-Id", "e2e-1")
	if resp.StatusCode != 200 || string(body) != "hello from upstream" || resp.Header.Get("X-RateLimit-Limit") != "6" {
		t.Fatalf("GET /hello = %d %q (X-RateLimit-Limit %q), want the upstream's 200 with the gateway's rate headers", resp.StatusCode, body, resp.Header.Get("X-RateLimit-Limit"))
	}
	h := <-seen
	if h.Get("Authorization") != "" || strings.Contains(fmt.Sprint(h), key) {
		t.Errorf("the upstream received the key: %v", h)
	}
	if acc := h.Get(gateway.HeaderAccount); acc == "" || acc == "acc_forged" || h.Get(gateway.HeaderScopes) != "*" || !strings.HasPrefix(h.Get(gateway.HeaderKeyID), "key_") {
		t.Errorf("identity headers the upstream received: %v", h)
	}
	if h.Get("X-Request-Id") != "e2e-1" || resp.Header.Get("X-Request-Id") != "e2e-1" {
		t.Errorf("X-Request-Id: upstream %q, response %q, want e2e-1 on both", h.Get("X-Request-Id"), resp.Header.Get("X-Request-Id"))
	}

	// 2. A key made with the keys command, of any scope, works too.
	var ck api.CreatedKey
	if err := json.Unmarshal([]byte(runOK(t, "keys", "create", "--database", db, "--name", "narrow", "--scopes", "leads:read", "--json")), &ck); err != nil {
		t.Fatal(err)
	}
	if resp, body := do("GET", "/hello", ck.Secret); resp.StatusCode != 200 {
		t.Errorf("a leads:read key: %d %s, want 200", resp.StatusCode, body)
	}
	<-seen

	// 3. The upstream's HTML error becomes the envelope.
	resp, body = do("GET", "/broken", key)
	e := apierror.Decode(&http.Response{StatusCode: resp.StatusCode, Header: resp.Header, Body: io.NopCloser(bytes.NewReader(body))})
	if resp.StatusCode != 502 || e.Foreign || e.Code != apierror.BadGateway || e.Details["upstream_status"] != 502.0 || e.RequestID() != resp.Header.Get("X-Request-Id") {
		t.Errorf("GET /broken = %d %s, want 502 BAD_GATEWAY with upstream_status 502", resp.StatusCode, body)
	}
	<-seen

	// 4. Refused by the chain, before the upstream.
	before := calls.Load()
	if resp, body := do("GET", "/hello", ""); resp.StatusCode != 401 || apierror.Decode(&http.Response{StatusCode: 401, Header: resp.Header, Body: io.NopCloser(bytes.NewReader(body))}).Code != apierror.Unauthorized {
		t.Errorf("no key: %d %s, want 401 UNAUTHORIZED", resp.StatusCode, body)
	}
	if resp, body := do("TRACE", "/hello", key); resp.StatusCode != 405 {
		t.Errorf("TRACE: %d %s, want 405", resp.StatusCode, body)
	}
	for i := 0; ; i++ { // the admin key's plan: 6 an hour, 2 used
		resp, body := do("GET", "/hello", key)
		if resp.StatusCode == 429 {
			if ra := resp.Header.Get("Retry-After"); ra == "" || !strings.Contains(string(body), "RATE_LIMITED") {
				t.Errorf("429 without Retry-After or RATE_LIMITED: %v %s", resp.Header, body)
			}
			break
		}
		if i > 6 {
			t.Fatal("never rate limited")
		}
		<-seen
	}
	if n := calls.Load() - before; n != 4 {
		t.Errorf("the upstream was called %d times for the 4 requests the plan admits", n)
	}

	// 5. The gateway's own routes.
	if resp, body := do("GET", "/healthz", ""); resp.StatusCode != 200 || !strings.Contains(string(body), `"ok"`) {
		t.Errorf("/healthz = %d %s", resp.StatusCode, body)
	}
	if _, body := do("GET", "/metrics", ""); !strings.Contains(string(body), `tollgate_http_requests_total{code="BAD_GATEWAY",route="GET /",status="502"} 1`) {
		t.Errorf("/metrics lacks the proxied 502:\n%s", body)
	}

	if err := stop(); err != nil {
		t.Fatalf("gateway: %v", err)
	}
	if l := logs.String(); !strings.Contains(l, `"msg":"listening"`) || !strings.Contains(l, `"request_id":"e2e-1"`) || strings.Contains(l, key) {
		t.Errorf("log lacks the start or the request, or shows the key:\n%s", l)
	}
}

// TestGatewayUpstreamQueryNotLogged: the upstream's query is added to
// every request and often is a token: the start's log line names the
// upstream without its values.
func TestGatewayUpstreamQueryNotLogged(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer up.Close()
	_, logs, stop := runGateway(t, freeAddr(t), "--database", filepath.Join(t.TempDir(), "g.db"), "--upstream", up.URL+"/base?token=Sup3rSecret")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if l := logs.String(); strings.Contains(l, "Sup3rSecret") || !strings.Contains(l, up.URL+"/base?token=xxxxx") {
		t.Errorf("the log shows the upstream's token, or not the upstream:\n%s", l)
	}
}

// TestGatewayUsage: a missing or bad upstream, or a bad number, stops the
// gateway with exit status 2 and a message naming the flag, before
// anything is opened.
func TestGatewayUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		msg  string
	}{
		{"no upstream", nil, nil, "-upstream"},
		{"ftp upstream", []string{"--upstream", "ftp://files.example"}, nil, "scheme"},
		{"upstream without a scheme", []string{"--upstream", "127.0.0.1:9000"}, nil, "-upstream"},
		{"upstream without a host", []string{"--upstream", "http://"}, nil, "host"},
		{"bad upstream from env", nil, map[string]string{"TOLLGATE_UPSTREAM": "gopher://x"}, "scheme"},
		{"upstream with a password", []string{"--upstream", "http://u:Sup3rSecret@h"}, nil, "user information"},
		{"upstream that does not parse, with a password", []string{"--upstream", "http://u:Sup3rSecret@h:port"}, nil, "-upstream"},
		{"upstream port out of range", []string{"--upstream", "http://h:70000"}, nil, "port"},
		{"upstream port out of range, with a token", []string{"--upstream", "http://h:70000/?token=Sup3rSecret"}, nil, "port"},
		{"upstream port zero", []string{"--upstream", "http://127.0.0.1:0"}, nil, "port"},
		{"zero upstream timeout", []string{"--upstream", "http://h", "--upstream-timeout", "0s"}, nil, "-upstream-timeout"},
		{"negative upgrade idle timeout", []string{"--upstream", "http://h", "--upgrade-idle-timeout", "-1s"}, nil, "-upgrade-idle-timeout"},
		{"zero max upgraded from env", []string{"--upstream", "http://h"}, map[string]string{"TOLLGATE_MAX_UPGRADED": "0"}, "TOLLGATE_MAX_UPGRADED"},
		{"zero request timeout from env", []string{"--upstream", "http://h"}, map[string]string{"TOLLGATE_REQUEST_TIMEOUT": "0"}, "TOLLGATE_REQUEST_TIMEOUT"},
		{"bad rate", []string{"--upstream", "http://h", "--rate-default", "lots"}, nil, "-rate-default"},
		{"extra words", []string{"--upstream", "http://h", "more"}, nil, "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := filepath.Join(t.TempDir(), "never.db")
			var out, stderr bytes.Buffer
			// Cancelled: a start that wrongly passes the checks stops at
			// once and fails the test, instead of serving until it times out.
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			err := run(ctx, append([]string{"gateway", "--addr", "127.0.0.1:0", "--database", db}, tt.args...), envOf(tt.env), &out, &stderr)
			if exitCode(err) != 2 || !strings.Contains(stderr.String(), tt.msg) {
				t.Errorf("exit %d, stderr %q; want 2 naming %q", exitCode(err), stderr.String(), tt.msg)
			}
			if strings.Contains(stderr.String()+out.String(), "Sup3rSecret") {
				t.Errorf("printed the password: %s", stderr.String())
			}
		})
	}
}

// TestGatewayConfigPrecedence: the upstream and its timeout come from the
// flag, else the environment, else the default.
func TestGatewayConfigPrecedence(t *testing.T) {
	tests := []struct {
		name         string
		args         []string
		env          map[string]string
		wantUpstream string
		wantTimeout  time.Duration
		wantRequest  time.Duration
		wantIdle     time.Duration
		wantMaxUp    int
	}{
		{"env", nil, map[string]string{"TOLLGATE_UPSTREAM": "http://env:1", "TOLLGATE_UPSTREAM_TIMEOUT": "3s", "TOLLGATE_UPGRADE_IDLE_TIMEOUT": "90s"}, "http://env:1", 3 * time.Second, time.Minute, 90 * time.Second, gateway.DefaultMaxUpgraded},
		{"flag over env", []string{"--upstream", "https://flag/base", "--request-timeout", "5s", "--upgrade-idle-timeout", "1h", "--max-upgraded", "7"}, map[string]string{"TOLLGATE_UPSTREAM": "http://env:1", "TOLLGATE_UPGRADE_IDLE_TIMEOUT": "90s", "TOLLGATE_MAX_UPGRADED": "9"}, "https://flag/base", gateway.DefaultTimeout, 5 * time.Second, time.Hour, 7},
		{"defaults", []string{"--upstream", "http://h"}, nil, "http://h", gateway.DefaultTimeout, time.Minute, gateway.DefaultUpgradeIdleTimeout, gateway.DefaultMaxUpgraded},
		{"max upgraded from env", []string{"--upstream", "http://h"}, map[string]string{"TOLLGATE_MAX_UPGRADED": "9"}, "http://h", gateway.DefaultTimeout, time.Minute, gateway.DefaultUpgradeIdleTimeout, 9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseGateway(env{getenv: envOf(tt.env), stderr: io.Discard}, tt.args)
			if err != nil {
				t.Fatal(err)
			}
			if c.upstream.String() != tt.wantUpstream || c.upstreamTimeout != tt.wantTimeout || c.requestTimeout != tt.wantRequest || c.upgradeIdle != tt.wantIdle || c.maxUpgraded != tt.wantMaxUp || c.addr != "localhost:8080" {
				t.Errorf("upstream %q timeout %v request %v upgrade idle %v max upgraded %d addr %q, want %q %v %v %v %d localhost:8080", c.upstream, c.upstreamTimeout, c.requestTimeout, c.upgradeIdle, c.maxUpgraded, c.addr, tt.wantUpstream, tt.wantTimeout, tt.wantRequest, tt.wantIdle, tt.wantMaxUp)
			}
		})
	}
}
