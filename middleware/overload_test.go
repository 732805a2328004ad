package middleware_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/apierror"
	"github.com/tollgate-dev/tollgate/middleware"
)

func TestConcurrency(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 8)
	h := middleware.Chain(middleware.RequestID(nil), middleware.Concurrency(2))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
	}))
	var wg sync.WaitGroup
	codes := make([]int, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
			codes[i] = w.Code
		}()
	}
	<-entered
	<-entered
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	e := apierror.Decode(w.Result())
	if w.Code != 503 || e.Details["reason"] != "overloaded" || w.Header().Get("Retry-After") != "1" {
		t.Errorf("third request: %d %v Retry-After %q", w.Code, e.Details, w.Header().Get("Retry-After"))
	}
	close(release)
	wg.Wait()
	if codes[0] != 200 || codes[1] != 200 {
		t.Errorf("admitted requests: %v", codes)
	}
	// Slots are given back.
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	if w.Code != 200 {
		t.Errorf("after release: %d", w.Code)
	}
}

func TestTimeout(t *testing.T) {
	h := middleware.Chain(middleware.RequestID(nil), middleware.Timeout(time.Nanosecond))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // a store call honouring the context
		apierror.Write(w, r, r.Context().Err())
	}))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	e := apierror.Decode(w.Result())
	if w.Code != 503 || e.Details["reason"] != "timeout" || w.Header().Get("Retry-After") == "" {
		t.Errorf("timeout: %d %v", w.Code, e.Details)
	}
}

func TestMaintenance(t *testing.T) {
	m := middleware.NewMaintenance(true, 30*time.Second)
	h := middleware.Chain(middleware.RequestID(nil), m.Guard)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	e := apierror.Decode(w.Result())
	if w.Code != 503 || e.Details["reason"] != "maintenance" || w.Header().Get("Retry-After") != "30" || e.Details["retry_after"] != 30.0 {
		t.Errorf("maintenance on: %d %v %q", w.Code, e.Details, w.Header().Get("Retry-After"))
	}
	m.Set(false)
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	if w.Code != 200 || m.On() {
		t.Errorf("maintenance off: %d", w.Code)
	}
}

// TestTimeoutBodyRead: a body that trickles in cannot hold the request past
// its deadline: Timeout sets the connection's read deadline, so the read
// fails with a timeout (not after the server's ReadTimeout), and the
// handler can answer.
func TestTimeoutBodyRead(t *testing.T) {
	readErr := make(chan error, 1)
	srv := httptest.NewServer(middleware.Timeout(50 * time.Millisecond)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		readErr <- err
	})))
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Ten bytes promised, one sent, then nothing.
	if _, err := io.WriteString(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{"); err != nil {
		t.Fatal(err)
	}
	if err := <-readErr; !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("body read: %v, want the read deadline exceeded", err)
	}
}

// TestTimeoutKeepAlive: a request that ran past its deadline is the last
// on its connection (its answer says Connection: close). Timeout's read
// deadline fires in net/http's background read of the connection, which
// then cancels the connection's context: a next request on the same
// connection would start cancelled (503, logged as 499).
func TestTimeoutKeepAlive(t *testing.T) {
	h := middleware.Chain(middleware.RequestID(nil), middleware.Timeout(200*time.Millisecond))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-r.Context().Done() // a store call honouring the context
			apierror.Write(w, r, r.Context().Err())
			return
		}
		if err := r.Context().Err(); err != nil {
			apierror.Write(w, r, err) // started cancelled
			return
		}
		io.WriteString(w, "ok")
	}))
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ReadHeaderTimeout = 5 * time.Second // as tollgate serve
	srv.Start()
	defer srv.Close()
	var conns atomic.Int32
	tr := srv.Client().Transport.(*http.Transport).Clone()
	dial := tr.DialContext
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		conns.Add(1)
		return dial(ctx, network, addr)
	}
	client := &http.Client{Transport: tr}
	defer tr.CloseIdleConnections()
	for i, tt := range []struct {
		path      string
		status    int
		connClose bool
	}{
		{"/fast", 200, false},
		{"/slow", 503, true},
		{"/fast", 200, false},
		{"/fast", 200, false},
	} {
		resp, err := client.Get(srv.URL + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if tt.status == 503 && !strings.Contains(string(b), `"reason":"timeout"`) {
			t.Errorf("request %d %s: %s; want reason timeout", i+1, tt.path, b)
		}
		if resp.StatusCode != tt.status || resp.Close != tt.connClose {
			t.Errorf("request %d %s: %d (Connection: close %v) %s; want %d, close %v", i+1, tt.path, resp.StatusCode, resp.Close, b, tt.status, tt.connClose)
		}
	}
	// The connection after the slow request is a new one, and is kept.
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

// TestConcurrencyHijacked: a request whose connection is hijacked (a
// WebSocket switching protocols) gives its Concurrency slot back, so open
// connections do not refuse the requests; one that is not hijacked keeps
// its slot until it returns.
func TestConcurrencyHijacked(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	h := middleware.Chain(middleware.RequestID(nil), middleware.Concurrency(1))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/switch":
			conn, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Errorf("hijack: %v", err)
				return
			}
			defer conn.Close()
			brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
			brw.Flush()
			<-release // the connection stays open
		case "/hold":
			entered <- struct{}{}
			<-release
		}
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	defer close(release)

	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET /switch HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("switch: %v, %v", resp, err)
	}
	// The switched connection is open and holds no slot: a request runs.
	held := make(chan int, 1)
	go func() {
		resp, err := http.Get(srv.URL + "/hold")
		if err != nil {
			t.Error(err)
			held <- 0
			return
		}
		resp.Body.Close()
		held <- resp.StatusCode
	}()
	select {
	case <-entered:
	case code := <-held:
		t.Fatalf("request beside an open switched connection: %d, want admitted", code)
	}
	// That request holds the only slot: the next is refused.
	resp, err = http.Get(srv.URL + "/other")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("request beside a held slot: %d, want 503", resp.StatusCode)
	}
}
