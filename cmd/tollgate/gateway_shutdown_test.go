package main

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/gateway"
	"github.com/tollgate-dev/tollgate/internal/server"
	"github.com/tollgate-dev/tollgate/internal/testenv"
	"github.com/tollgate-dev/tollgate/logjson"
)

// signalWriter is a log destination that closes seen when a line holding
// want is written.
type signalWriter struct {
	buf  testenv.Buffer
	want string
	once sync.Once
	seen chan struct{}
}

func (w *signalWriter) Write(p []byte) (int, error) {
	n, err := w.buf.Write(p)
	if strings.Contains(string(p), w.want) {
		w.once.Do(func() { close(w.seen) })
	}
	return n, err
}

// TestGatewayShutdownStream stops the gateway's server (SIGTERM cancels the
// same context) while a streamed upstream answer is in flight: the log
// says the drain began; a stream that ends within the drain timeout
// reaches the client whole; one that does not is cut when the timeout
// passes, and the log says so.
func TestGatewayShutdownStream(t *testing.T) {
	for _, tt := range []struct {
		name  string
		drain bool // the upstream finishes during the drain
	}{{"drained", true}, {"cut", false}} {
		t.Run(tt.name, func(t *testing.T) {
			release := make(chan struct{})
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				io.WriteString(w, "first\n")
				w.(http.Flusher).Flush()
				select {
				case <-release:
					io.WriteString(w, "last\n")
				case <-r.Context().Done():
				}
			}))
			defer up.Close()
			defer close(release)
			u, err := gateway.ParseUpstream(up.URL)
			if err != nil {
				t.Fatal(err)
			}
			logs := &signalWriter{want: "shutting down", seen: make(chan struct{})}
			log := slog.New(logjson.New(logs, nil))
			g, err := gateway.New(u, gateway.Options{Logger: log})
			if err != nil {
				t.Fatal(err)
			}
			drain := time.Minute
			if !tt.drain {
				drain = 50 * time.Millisecond
			}
			srv := server.New(server.Config{Logger: log, Timeouts: server.Timeouts{Shutdown: drain}})
			srv.Handle("GET /", g)
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			served := make(chan error, 1)
			go func() { served <- srv.Serve(ctx, l) }()

			resp, err := http.Get("http://" + l.Addr().String() + "/events")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			br := bufio.NewReader(resp.Body)
			if s, err := br.ReadString('\n'); err != nil || s != "first\n" {
				t.Fatalf("first line %q, %v", s, err)
			}
			cancel() // what SIGTERM does
			select {
			case <-logs.seen:
			case <-time.After(10 * time.Second): // a guard, not a timing: the line comes at once
				t.Fatalf("no \"shutting down\" line after the context ended:\n%s", logs.buf.String())
			}
			if tt.drain {
				release <- struct{}{}
			}
			type read struct {
				b   []byte
				err error
			}
			reads := make(chan read, 1)
			go func() {
				b, err := io.ReadAll(br)
				reads <- read{b, err}
			}()
			serr := <-served
			var rest []byte
			var rerr error
			select {
			case rd := <-reads:
				rest, rerr = rd.b, rd.err
			case <-time.After(10 * time.Second): // a guard: Serve has returned, the stream must have ended
				t.Fatalf("the stream is still open after Serve returned (%v):\n%s", serr, logs.buf.String())
			}
			out := logs.buf.String()
			if tt.drain {
				if rerr != nil || string(rest) != "last\n" || serr != nil {
					t.Errorf("drained stream: rest %q, %v; Serve: %v\n%s", rest, rerr, serr, out)
				}
				return
			}
			if rerr == nil {
				t.Errorf("cut stream read a clean end: %q", rest)
			}
			if serr == nil || !strings.Contains(out, `"level":"ERROR","msg":"shutdown: drain timed out, in-flight requests cut"`) {
				t.Errorf("Serve: %v; the log does not say the stream was cut:\n%s", serr, out)
			}
		})
	}
}

// TestGatewayUpgrade runs tollgate gateway with a short --request-timeout
// in front of an upstream that switches to an echo protocol: the upgraded
// connection outlives the request's deadline; stopping the gateway (what
// SIGTERM does) closes it, both ways, and run returns with the request
// logged as 101.
func TestGatewayUpgrade(t *testing.T) {
	ended := make(chan struct{}, 1)
	up := httptest.NewServer(testenv.EchoUpgrade(ended))
	defer up.Close()
	addr := freeAddr(t)
	out, logs, stop := runGateway(t, addr, "--database", filepath.Join(t.TempDir(), "g.db"), "--upstream", up.URL, "--request-timeout", "300ms")
	key := regexp.MustCompile(`tg_live_[0-9A-Za-z]+`).FindString(out.String())

	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second)) // a guard against a hang
	io.WriteString(conn, "GET /ws HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer "+key+"\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v, %v\n%s", resp, err, logs.Tail(2000))
	}
	id := resp.Header.Get("X-Request-Id")
	// Echoes until the line sent after the request's deadline comes back
	// (the deadline is 300 ms, long enough for the switch to happen first
	// on a loaded machine; each round trip takes far less).
	for start := time.Now(); ; {
		io.WriteString(conn, "ping\n")
		if s, err := br.ReadString('\n'); err != nil || s != "ping\n" {
			t.Fatalf("echo %q, %v after %v\n%s", s, err, time.Since(start), logs.Tail(2000))
		}
		if time.Since(start) > 350*time.Millisecond {
			break
		}
	}
	if err := stop(); err != nil {
		t.Fatalf("gateway: %v\n%s", err, logs.Tail(2000))
	}
	if b, err := br.ReadByte(); err != io.EOF {
		t.Errorf("read after the gateway stopped = %q, %v; want EOF", b, err)
	}
	<-ended
	// The access line is written as the connection's request returns,
	// which may be just after run did (CloseUpgraded cannot wait for the
	// middleware around the gateway): wait for it.
	line := regexp.MustCompile(`"request_id":"` + regexp.QuoteMeta(id) + `".*"status":101`)
	for i := 0; !line.MatchString(logs.String()); i++ {
		if i == 1000 { // a guard: the line follows at once
			t.Fatalf("no access line with status 101 for %s:\n%s", id, logs.Tail(4000))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
