package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/apierror"
	"github.com/tollgate-dev/tollgate/client"
)

// callRecord is one request the test server saw.
type callRecord struct {
	method, path, query, auth, idemKey, body string
}

// callServer answers with steps in order (the last one repeats).
func callServer(t *testing.T, steps ...http.HandlerFunc) (*httptest.Server, func() []callRecord) {
	t.Helper()
	var mu sync.Mutex
	var recs []callRecord
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		n := len(recs)
		recs = append(recs, callRecord{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Authorization"), r.Header.Get("Idempotency-Key"), string(b)})
		mu.Unlock()
		steps[min(n, len(steps)-1)](w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []callRecord {
		mu.Lock()
		defer mu.Unlock()
		return append([]callRecord(nil), recs...)
	}
}

func reply(code int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		io.WriteString(w, body)
	}
}

func apiErr(e *apierror.Error, headers ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		apierror.Write(w, r, e)
	}
}

// noSleep is the injected clock: waits are recorded, not slept.
type noSleep struct {
	mu     sync.Mutex
	t      time.Time
	sleeps []time.Duration
}

func (c *noSleep) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *noSleep) sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sleeps = append(c.sleeps, d)
	c.t = c.t.Add(d)
	return ctx.Err()
}

func TestCall(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "body.json")
	if err := os.WriteFile(file, []byte(`{"name":"From file"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		args       []string
		env        map[string]string
		steps      []http.HandlerFunc
		wantCode   int
		wantOut    string
		wantErr    []string // substrings of stderr
		wantRecs   []callRecord
		wantSleeps int
	}{
		{
			name: "get with env key", args: []string{"/v1/leads"}, env: map[string]string{"TOLLGATE_KEY": "tg_env"},
			steps:    []http.HandlerFunc{reply(200, `{"data":[],"next_cursor":null}`)},
			wantOut:  "{\"data\":[],\"next_cursor\":null}\n",
			wantRecs: []callRecord{{method: "GET", path: "/v1/leads", auth: "Bearer tg_env"}},
		},
		{
			name: "flags after path, key flag beats env", args: []string{"/v1/leads", "-X", "post", "-d", `{"name":"Ada"}`, "--key", "tg_flag"},
			env:      map[string]string{"TOLLGATE_KEY": "tg_env"},
			steps:    []http.HandlerFunc{reply(201, `{"id":"lead_1"}`+"\n")},
			wantOut:  "{\"id\":\"lead_1\"}\n",
			wantRecs: []callRecord{{method: "POST", path: "/v1/leads", auth: "Bearer tg_flag", body: `{"name":"Ada"}`}},
		},
		{
			name: "-d implies POST, body from file, query kept", args: []string{"-d", "@" + file, "v1/leads?x=1"},
			steps:    []http.HandlerFunc{reply(201, `{}`)},
			wantOut:  "{}\n",
			wantRecs: []callRecord{{method: "POST", path: "/v1/leads", query: "x=1", body: `{"name":"From file"}`}},
		},
		{
			name: "delete 204 prints nothing", args: []string{"-X", "DELETE", "/v1/leads/lead_1"},
			steps:    []http.HandlerFunc{func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }},
			wantRecs: []callRecord{{method: "DELETE", path: "/v1/leads/lead_1"}},
		},
		{
			name: "4xx exits 1 with code, message, details, request id", args: []string{"/v1/leads/nope"},
			steps: []http.HandlerFunc{func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Request-Id", "req_abc")
				apierror.Write(w, r, apierror.New(apierror.NotFound, "Lead not found").With("resource", "lead"))
			}},
			wantCode: 1,
			wantErr:  []string{"404 NOT_FOUND: Lead not found", `details: {"resource":"lead"}`, "request_id: req_abc", "attempts: 1 (not retryable)"},
			wantRecs: []callRecord{{method: "GET", path: "/v1/leads/nope"}},
		},
		{
			name: "429 retried then success", args: []string{"-v", "/v1/leads"},
			steps: []http.HandlerFunc{
				apiErr(apierror.New(apierror.RateLimited, "").WithRetryAfter(2 * time.Second)),
				reply(200, `{"ok":true}`),
			},
			wantOut:    "{\"ok\":true}\n",
			wantErr:    []string{"attempt=1", "status=429", "code=RATE_LIMITED", "wait=2s", "source=retry-after", "attempt=2", "status=200", "200 after 2 attempt(s)"},
			wantRecs:   []callRecord{{method: "GET", path: "/v1/leads"}, {method: "GET", path: "/v1/leads"}},
			wantSleeps: 1,
		},
		{
			name: "5xx after retries exits 3, same idempotency key", args: []string{"-X", "PATCH", "/v1/leads/l1", "-d", `{"notes":"x"}`, "-v"},
			steps:      []http.HandlerFunc{apiErr(apierror.New(apierror.ServiceUnavailable, "").With("reason", "maintenance"))},
			wantCode:   3,
			wantErr:    []string{"503 SERVICE_UNAVAILABLE", `"reason":"maintenance"`, "attempts: 3 (attempts exhausted)", "reason=\"attempts exhausted\""},
			wantSleeps: 2,
			wantRecs: []callRecord{
				{method: "PATCH", path: "/v1/leads/l1", body: `{"notes":"x"}`},
				{method: "PATCH", path: "/v1/leads/l1", body: `{"notes":"x"}`},
				{method: "PATCH", path: "/v1/leads/l1", body: `{"notes":"x"}`},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, recs := callServer(t, tt.steps...)
			e := map[string]string{"TOLLGATE_URL": srv.URL}
			for k, v := range tt.env {
				e[k] = v
			}
			clk := &noSleep{t: time.Now()}
			var stdout, stderr bytes.Buffer
			code := runCall(context.Background(), tt.args, envOf(e), &stdout, &stderr, client.WithClock(clk.now, clk.sleep))
			if code != tt.wantCode {
				t.Errorf("exit = %d, want %d; stderr:\n%s", code, tt.wantCode, stderr.String())
			}
			if stdout.String() != tt.wantOut {
				t.Errorf("stdout = %q, want %q", stdout.String(), tt.wantOut)
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(stderr.String(), s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr.String())
				}
			}
			got := recs()
			if len(got) != len(tt.wantRecs) {
				t.Fatalf("server got %d requests, want %d: %+v", len(got), len(tt.wantRecs), got)
			}
			for i, w := range tt.wantRecs {
				g := got[i]
				if g.method != w.method || g.path != w.path || g.query != w.query || g.body != w.body || (w.auth != "" && g.auth != w.auth) {
					t.Errorf("request %d = %+v, want %+v", i+1, g, w)
				}
				if (g.method == "POST" || g.method == "PATCH") && (g.idemKey == "" || g.idemKey != got[0].idemKey) {
					t.Errorf("request %d Idempotency-Key = %q, want the same non-empty key as request 1 (%q)", i+1, g.idemKey, got[0].idemKey)
				}
			}
			if len(clk.sleeps) != tt.wantSleeps {
				t.Errorf("waits = %v, want %d", clk.sleeps, tt.wantSleeps)
			}
		})
	}
}

func TestCallNetworkFailureExits3(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	clk := &noSleep{t: time.Now()}
	var stdout, stderr bytes.Buffer
	code := runCall(context.Background(), []string{"--base", "http://" + addr, "/v1/leads"}, envOf(nil), &stdout, &stderr, client.WithClock(clk.now, clk.sleep))
	if code != 3 {
		t.Errorf("exit = %d, want 3; stderr:\n%s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "attempts: 3 (attempts exhausted)") {
		t.Errorf("stderr = %q, want the attempts and why it stopped", stderr.String())
	}
	if len(clk.sleeps) != 2 {
		t.Errorf("waits = %v, want 2 backoff waits", clk.sleeps)
	}
}

func TestCallUsage(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
		wantErr  string
	}{
		{"help", []string{"-h"}, 0, "usage: tollgate call", ""},
		{"help after path", []string{"/v1/x", "--help"}, 0, "usage: tollgate call", ""},
		{"no path", []string{"-v"}, 2, "", "missing PATH"},
		{"two paths", []string{"/a", "/b"}, 2, "", "want one PATH"},
		{"url as path", []string{"http://x/v1"}, 2, "", "is a URL"},
		{"unknown flag", []string{"/a", "--nope"}, 2, "", "flag provided but not defined"},
		{"bad json", []string{"/a", "-d", "{nope"}, 2, "", "not valid JSON"},
		{"missing file", []string{"/a", "-d", "@/does/not/exist.json"}, 2, "", "-d:"},
		{"bad method", []string{"/a", "-X", "GE T"}, 2, "", "not an HTTP method"},
		{"bad base", []string{"/a", "--base", "localhost:8080"}, 2, "", "--base"},
		// After "--" everything is an argument: a flag there is a second PATH.
		{"flag after --", []string{"--", "/a", "--base", "http://x"}, 2, "", "want one PATH, got 3 arguments: /a --base http://x"},
		{"flag-like path after --", []string{"/a", "--", "-b"}, 2, "", "want one PATH, got 2 arguments: /a -b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := callCmd(context.Background(), tt.args, envOf(nil), &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("callCmd(%q) = %d, want %d; stderr:\n%s", tt.args, code, tt.wantCode, stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.wantOut) {
				t.Errorf("stdout = %q, want it to contain %q", stdout.String(), tt.wantOut)
			}
			if !strings.Contains(stderr.String(), tt.wantErr) {
				t.Errorf("stderr = %q, want it to contain %q", stderr.String(), tt.wantErr)
			}
		})
	}
}

func TestCallDefaultBase(t *testing.T) {
	// With neither --base nor TOLLGATE_URL the client goes to localhost:8080;
	// a cancelled context keeps the test from touching it.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var stdout, stderr bytes.Buffer
	code := callCmd(ctx, []string{"/v1/leads"}, envOf(nil), &stdout, &stderr)
	if code != callInterrupted || !strings.Contains(stderr.String(), defaultBaseURL+"/v1/leads") {
		t.Errorf("exit = %d, stderr %q; want %d (cancelled) and the failed call", code, stderr.String(), callInterrupted)
	}
}
