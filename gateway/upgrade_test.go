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
	const deadline = 50 * time.Millisecond
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
	conn, br, resp := dialUpgrade(t, addr, h.key)
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("answer %d, want 101", resp.StatusCode)
	}
	echo(t, conn, br, "one")
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
