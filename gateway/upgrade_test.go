package gateway_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/apierror"
	"github.com/tollgate-dev/tollgate/gateway"
	"github.com/tollgate-dev/tollgate/internal/testenv"
	"github.com/tollgate-dev/tollgate/logjson"
	"github.com/tollgate-dev/tollgate/middleware"
)

// echoUpstream answers an upgrade to the "echo" protocol with 101, then
// echoes every line until the connection ends, which it reports on ended.
// Other requests wait for release (closed at the end of the test).
func echoUpstream(t *testing.T) (url string, ended <-chan struct{}) {
	t.Helper()
	done := make(chan struct{}, 8)
	release := make(chan struct{})
	echo := testenv.EchoUpgrade(done)
	url = upstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "echo" {
			<-release
			return
		}
		echo(w, r)
	})
	t.Cleanup(func() { close(release) }) // before the upstream closes
	return url, done
}

// frontServer serves h's chain on loopback with the server's read and
// write timeouts set to timeout (none if 0), and reports on served each
// time a request is done.
func frontServer(t *testing.T, h *harness, timeout time.Duration) (addr string, served <-chan struct{}) {
	t.Helper()
	s := make(chan struct{}, 8)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() { s <- struct{}{} }()
		h.handler.ServeHTTP(w, r)
	}))
	srv.Config.ReadTimeout, srv.Config.WriteTimeout = timeout, timeout
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String(), s
}

// dialUpgrade opens a connection to addr, asks to switch to "echo" with
// key, and returns the connection and the answer's head.
func dialUpgrade(t *testing.T, addr, key string) (net.Conn, *bufio.Reader, *http.Response) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	// A guard against a hang, never reached when the test passes.
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	_, err = io.WriteString(conn, "GET /ws HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer "+key+
		"\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	return conn, br, resp
}

// echo sends line and checks that it comes back.
func echo(t *testing.T, conn net.Conn, br *bufio.Reader, line string) {
	t.Helper()
	if _, err := io.WriteString(conn, line+"\n"); err != nil {
		t.Fatalf("write %q: %v", line, err)
	}
	got, err := br.ReadString('\n')
	if err != nil || got != line+"\n" {
		t.Fatalf("echo of %q = %q, %v", line, got, err)
	}
}

// accessLine returns the access line of the request with id, decoded.
func accessLine(t *testing.T, logs *testenv.Buffer, id string) map[string]any {
	t.Helper()
	for line := range strings.Lines(logs.String()) {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == logjson.AccessMessage && m["request_id"] == id {
			return m
		}
	}
	t.Fatalf("no access line for %s in:\n%s", id, logs.String())
	return nil
}

// TestUpgradeOutlivesDeadline: once the upstream switched protocols, the
// connection is no longer bound by the request's deadline
// (middleware.Timeout) nor by the server's read and write timeouts, and
// the request is logged as 101 when it ends.
func TestUpgradeOutlivesDeadline(t *testing.T) {
	up, ended := echoUpstream(t)
	// Long enough for the switch to happen first on a loaded machine.
	const deadline = 300 * time.Millisecond
	ctxs := make(chan context.Context, 1) // the request's, as the gateway gets it
	h := newHarness(t, up, gateway.Options{}, middleware.Timeout(deadline), func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctxs <- r.Context()
			next.ServeHTTP(w, r)
		})
	})
	addr, served := frontServer(t, h, deadline)
	conn, br, resp := dialUpgrade(t, addr, h.key)
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Upgrade") != "echo" {
		t.Fatalf("answer %d, Upgrade %q; want 101 to echo", resp.StatusCode, resp.Header.Get("Upgrade"))
	}
	id := resp.Header.Get(apierror.HeaderRequestID)
	if id == "" {
		t.Error("101 without X-Request-Id")
	}
	echo(t, conn, br, "before")
	// The request's deadline has passed, and with it the server's read
	// and write timeouts, which started earlier.
	<-(<-ctxs).Done()
	echo(t, conn, br, "after the deadline")
	conn.Close()
	<-ended
	<-served
	if got := accessLine(t, h.logs, id)["status"]; got != 101.0 {
		t.Errorf("access line status %v, want 101", got)
	}
}

// TestUpgradeIdle: an upgraded connection that carries nothing for
// UpgradeIdleTimeout is closed, both ways, and that is logged with the
// request id.
func TestUpgradeIdle(t *testing.T) {
	up, ended := echoUpstream(t)
	logs := &testenv.Buffer{}
	h := newHarness(t, up, gateway.Options{UpgradeIdleTimeout: 20 * time.Millisecond, Logger: slog.New(logjson.New(logs, nil))})
	addr, served := frontServer(t, h, 0)
	_, br, resp := dialUpgrade(t, addr, h.key)
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("answer %d, want 101", resp.StatusCode)
	}
	// No exchange first: on a loaded machine it could take longer than
	// the timeout. TestIdleConnCheck covers traffic putting it off.
	if n, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("read on an idle connection = %q, %v; want EOF", n, err)
	}
	<-ended // the upstream's side is closed too
	<-served
	id := resp.Header.Get(apierror.HeaderRequestID)
	if !strings.Contains(logs.String(), `"msg":"upgraded connection closed: idle","request_id":"`+id+`"`) {
		t.Errorf("idle close not logged with request id %s:\n%s", id, logs.String())
	}
}

// TestCloseUpgraded: CloseUpgraded closes the upgraded connections and
// returns once their requests ended; a switch after it is refused with 503
// SERVICE_UNAVAILABLE, reason shutting_down.
func TestCloseUpgraded(t *testing.T) {
	up, ended := echoUpstream(t)
	h := newHarness(t, up, gateway.Options{})
	addr, served := frontServer(t, h, 0)
	conn, br, resp := dialUpgrade(t, addr, h.key)
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("answer %d, want 101", resp.StatusCode)
	}
	echo(t, conn, br, "open")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := h.gw.CloseUpgraded(ctx); err != nil {
		t.Fatalf("CloseUpgraded: %v", err)
	}
	if n, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("read after CloseUpgraded = %q, %v; want EOF", n, err)
	}
	<-ended
	<-served

	_, _, resp2 := dialUpgrade(t, addr, h.key)
	defer resp2.Body.Close()
	body, err := io.ReadAll(resp2.Body)
	if err != nil {
		t.Fatal(err)
	}
	d := envelope(t, resp2, body, http.StatusServiceUnavailable, apierror.ServiceUnavailable)
	if d["reason"] != "shutting_down" || resp2.Header.Get("Retry-After") != "1" {
		t.Errorf("refused switch: reason %v, Retry-After %q; want shutting_down, 1", d["reason"], resp2.Header.Get("Retry-After"))
	}
}

// TestUpgradeDeadlineBeforeSwitch: until the upstream switches, an upgrade
// request is a request like any other: its deadline passing is 504.
func TestUpgradeDeadlineBeforeSwitch(t *testing.T) {
	release := make(chan struct{})
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) { <-release })
	t.Cleanup(func() { close(release) })
	h := newHarness(t, up, gateway.Options{}, middleware.Timeout(50*time.Millisecond))
	resp, body := h.do(t, "GET", "/ws", nil, "Connection", "Upgrade", "Upgrade", "echo")
	envelope(t, resp, body, http.StatusGatewayTimeout, apierror.GatewayTimeout)
}

// switchingUpstream answers every request with 101 Switching Protocols to
// protocol, asked for or not, then reads until its connection ends, which
// it reports on ended.
func switchingUpstream(t *testing.T, protocol string) (url string, ended <-chan struct{}) {
	t.Helper()
	done := make(chan struct{}, 8)
	url = upstream(t, func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + protocol + "\r\n\r\n")
		brw.Flush()
		io.Copy(io.Discard, brw)
		done <- struct{}{}
	})
	return url, done
}

// waitEnded waits for the upstream to see its connection end; the limit
// is a guard against a hang, never reached when the test passes.
func waitEnded(t *testing.T, ended <-chan struct{}) {
	t.Helper()
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream's connection is still open")
	}
}

// TestUpgradeRefusedSwitchClosesUpstream: a 101 the gateway does not pass
// on (to a request that asked for no upgrade, or to another protocol than
// the one asked for) is 502 BAD_GATEWAY, and the upstream's connection,
// switched to a protocol no one speaks, is closed.
func TestUpgradeRefusedSwitchClosesUpstream(t *testing.T) {
	for _, tt := range []struct {
		name    string
		headers []string
	}{
		{"not asked", nil},
		{"another protocol", []string{"Connection", "Upgrade", "Upgrade", "echo"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			up, ended := switchingUpstream(t, "other")
			h := newHarness(t, up, gateway.Options{})
			resp, body := h.do(t, "GET", "/ws", nil, tt.headers...)
			envelope(t, resp, body, http.StatusBadGateway, apierror.BadGateway)
			waitEnded(t, ended)
		})
	}
}

// hideHijack is a middleware whose ResponseWriter cannot be hijacked, as
// some third-party middleware's is.
func hideHijack(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(struct{ http.ResponseWriter }{w}, r)
	})
}

// TestUpgradeNotHijackable: behind a ResponseWriter that cannot be
// hijacked, a switch is 502 BAD_GATEWAY, and the upstream's connection is
// closed.
func TestUpgradeNotHijackable(t *testing.T) {
	up, ended := switchingUpstream(t, "echo")
	u, err := gateway.ParseUpstream(up)
	if err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(u, gateway.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(hideHijack(g))
	t.Cleanup(srv.Close)
	req, err := http.NewRequestWithContext(t.Context(), "GET", srv.URL+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "echo")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	envelope(t, resp, body, http.StatusBadGateway, apierror.BadGateway)
	waitEnded(t, ended)
}

// TestUpgradeEndsBeforeSwitch: a request whose deadline passes, or whose
// client leaves, before the upstream's 101 arrives is 504 or 499, and the
// upstream's connection is closed.
func TestUpgradeEndsBeforeSwitch(t *testing.T) {
	for _, tt := range []struct {
		name   string
		status float64
	}{{"deadline", 504}, {"client gone", 499}} {
		t.Run(tt.name, func(t *testing.T) {
			ctxs := make(chan context.Context, 1)
			arrived := make(chan struct{}, 1)
			done := make(chan struct{}, 1)
			up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
				arrived <- struct{}{}
				conn, brw, err := http.NewResponseController(w).Hijack()
				if err != nil {
					t.Error(err)
					return
				}
				defer conn.Close()
				<-(<-ctxs).Done() // the request has ended: answer now
				brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
				brw.Flush()
				io.Copy(io.Discard, brw)
				done <- struct{}{}
			})
			var extra []middleware.Middleware
			if tt.status == 504 {
				extra = append(extra, middleware.Timeout(50*time.Millisecond))
			}
			h := newHarness(t, up, gateway.Options{}, append(extra, func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					ctxs <- r.Context()
					next.ServeHTTP(w, r)
				})
			})...)
			addr, served := frontServer(t, h, 0)
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(30 * time.Second)) // a guard
			io.WriteString(conn, "GET /ws HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer "+h.key+
				"\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
			<-arrived
			if tt.status == 499 {
				conn.Close()
			} else {
				resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != 504 {
					t.Errorf("status %d, want 504", resp.StatusCode)
				}
			}
			<-served
			waitEnded(t, done)
			var got any
			for line := range strings.Lines(h.logs.String()) {
				var m map[string]any
				if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == logjson.AccessMessage {
					got = m["status"]
				}
			}
			if got != tt.status {
				t.Errorf("access line status %v, want %v:\n%s", got, tt.status, h.logs.String())
			}
		})
	}
}

// TestCloseUpgradedConcurrent: CloseUpgraded while switches are under
// way: every switch it let through is closed, every later one is refused
// with 503, and no connection outlives it.
func TestCloseUpgradedConcurrent(t *testing.T) {
	up, _ := echoUpstream(t)
	h := newHarness(t, up, gateway.Options{UpgradeIdleTimeout: time.Hour})
	addr, _ := frontServer(t, h, 0)
	const n = 6
	type result struct {
		status int
		err    error // the read after the switch
	}
	results := make(chan result, n)
	start := make(chan struct{})
	closed := make(chan struct{})
	for range n {
		go func() {
			<-start
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				results <- result{err: err}
				return
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(30 * time.Second)) // a guard
			io.WriteString(conn, "GET /ws HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer "+h.key+
				"\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				results <- result{err: err}
				return
			}
			if resp.StatusCode != http.StatusSwitchingProtocols {
				results <- result{status: resp.StatusCode}
				return
			}
			<-closed
			_, err = br.ReadByte()
			results <- result{status: resp.StatusCode, err: err}
		}()
	}
	close(start)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := h.gw.CloseUpgraded(ctx); err != nil {
		t.Fatal(err)
	}
	close(closed)
	for range n {
		r := <-results
		switch {
		case r.status == http.StatusSwitchingProtocols && !errors.Is(r.err, io.EOF):
			// A switch after CloseUpgraded returned would stay open.
			t.Errorf("switched connection after CloseUpgraded: read %v, want EOF", r.err)
		case r.status != http.StatusSwitchingProtocols && r.status != http.StatusServiceUnavailable:
			t.Errorf("answer %d, %v; want 101 then EOF, or 503", r.status, r.err)
		}
	}
}

// TestMaxUpgraded: past Options.MaxUpgraded upgrade requests in flight,
// one more is refused with 503 overloaded before it reaches the upstream;
// once a switched connection ends, its place is free again.
func TestMaxUpgraded(t *testing.T) {
	var reached atomic.Int32
	ended := make(chan struct{}, 4)
	switcher := testenv.EchoUpgrade(ended)
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		switcher(w, r)
	})
	h := newHarness(t, up, gateway.Options{MaxUpgraded: 1})
	addr, served := frontServer(t, h, 0)
	conn, br, resp := dialUpgrade(t, addr, h.key)
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("first: %d, want 101", resp.StatusCode)
	}
	echo(t, conn, br, "open")

	_, _, resp2 := dialUpgrade(t, addr, h.key)
	body, err := io.ReadAll(resp2.Body)
	if err != nil {
		t.Fatal(err)
	}
	d := envelope(t, resp2, body, http.StatusServiceUnavailable, apierror.ServiceUnavailable)
	if d["reason"] != "overloaded" || resp2.Header.Get("Retry-After") != "1" || reached.Load() != 1 {
		t.Errorf("second: reason %v, Retry-After %q, upstream reached %d times; want overloaded, 1, once", d["reason"], resp2.Header.Get("Retry-After"), reached.Load())
	}
	<-served // the refused one

	conn.Close()
	<-ended
	<-served
	conn3, br3, resp3 := dialUpgrade(t, addr, h.key)
	if resp3.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("after the first ended: %d, want 101", resp3.StatusCode)
	}
	echo(t, conn3, br3, "again")
}
