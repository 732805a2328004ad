package middleware_test

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
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
