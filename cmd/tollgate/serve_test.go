package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/apierror"
	"github.com/tollgate-dev/tollgate/internal/server"
	"github.com/tollgate-dev/tollgate/internal/testenv"
)

// startServe runs serve with args on a free loopback port until the test
// ends, waits until /healthz answers, and returns the address and the
// admin key it printed.
func startServe(t *testing.T, args ...string) (addr, key string) {
	t.Helper()
	addr = freeAddr(t)
	out, stop := runServe(t, addr, args...)
	t.Cleanup(func() { stop() })
	return addr, regexp.MustCompile(`tg_live_[0-9A-Za-z]+`).FindString(out.String())
}

// runServe runs serve with args on addr, waits until /healthz answers, and
// returns what it printed on stdout and a function that stops it and
// returns its error.
func runServe(t *testing.T, addr string, args ...string) (out *testenv.Buffer, stop func() error) {
	t.Helper()
	out, _, stop = runCommand(t, "serve", addr, args...)
	return out, stop
}

// runCommand runs command (serve or gateway) with args on addr until the
// test ends, waits until /healthz answers, and returns what it printed on
// stdout and on stderr (the log), and a function that stops it and
// returns its error (nil after the first call).
func runCommand(t *testing.T, command, addr string, args ...string) (out, logs *testenv.Buffer, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out, logs = &testenv.Buffer{}, &testenv.Buffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{command, "--addr", addr}, args...), envOf(nil), out, logs)
	}()
	for i := 0; ; i++ {
		if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
			resp.Body.Close()
			break
		}
		if i > 500 {
			cancel()
			t.Fatalf("%s did not start", command)
		}
		select {
		case err := <-done:
			cancel()
			t.Fatalf("%s exited: %v\n%s", command, err, logs.Tail(2000))
		case <-time.After(10 * time.Millisecond):
		}
	}
	var once atomic.Bool
	stop = func() error {
		if !once.CompareAndSwap(false, true) {
			return nil
		}
		cancel()
		return <-done
	}
	t.Cleanup(func() { stop() })
	return out, logs, stop
}

// TestReadyzRedis: with --rate-fail closed, an unreachable Redis refuses
// every API call, so /readyz is 503 too; with local, the instance limits
// on its own and stays ready.
func TestReadyzRedis(t *testing.T) {
	dead := freeAddr(t) // nothing listens there
	for _, tt := range []struct {
		fail      string
		wantAPI   int
		wantReady int
	}{
		{"closed", 503, 503},
		{"local", 200, 200},
	} {
		t.Run(tt.fail, func(t *testing.T) {
			addr, key := startServe(t, "--database", filepath.Join(t.TempDir(), "r.db"), "--redis", dead, "--rate-fail", tt.fail)
			req, err := http.NewRequest("GET", "http://"+addr+"/v1/keys", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+key)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			e := apierror.Decode(resp)
			if resp.StatusCode != tt.wantAPI {
				t.Errorf("API: %d %v, want %d", resp.StatusCode, e.Details, tt.wantAPI)
			}
			resp, err = http.Get("http://" + addr + "/readyz")
			if err != nil {
				t.Fatal(err)
			}
			e = apierror.Decode(resp)
			if resp.StatusCode != tt.wantReady || tt.wantReady == 503 && e.Details["store"] != "redis" {
				t.Errorf("/readyz: %d %v, want %d", resp.StatusCode, e.Details, tt.wantReady)
			}
		})
	}
}

// TestServeRefusedStartLeavesNothing: a start refused for a bad --redis
// or a taken address creates no database and prints no admin key.
func TestServeRefusedStartLeavesNothing(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { taken.Close() })
	for _, tt := range []struct {
		name string
		args []string
		code int
	}{
		{"bad redis URL", []string{"--addr", "127.0.0.1:0", "--redis", "redis://127.0.0.1:notaport/0"}, 2},
		{"address in use", []string{"--addr", taken.Addr().String()}, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			db := filepath.Join(t.TempDir(), "u.db")
			var out strings.Builder
			err := run(context.Background(), append([]string{"serve", "--database", db}, tt.args...), envOf(nil), &out, io.Discard)
			if exitCode(err) != tt.code {
				t.Fatalf("exit %d (%v), want %d", exitCode(err), err, tt.code)
			}
			if strings.Contains(out.String(), "tg_live_") {
				t.Errorf("printed an admin key:\n%s", out.String())
			}
			if _, err := os.Stat(db); !os.IsNotExist(err) {
				t.Errorf("created the database %s (stat: %v)", db, err)
			}
		})
	}
}

// TestWriteTimeout: the http.Server's WriteTimeout stays above the request
// deadline, so a request past --request-timeout gets its 503 "timeout".
func TestWriteTimeout(t *testing.T) {
	for _, tt := range []struct {
		request, want time.Duration
	}{
		{10 * time.Second, server.WriteTimeout},
		{50 * time.Second, server.WriteTimeout},
		{55 * time.Second, 65 * time.Second},
		{5 * time.Minute, 5*time.Minute + 10*time.Second},
	} {
		if got := writeTimeout(tt.request); got != tt.want {
			t.Errorf("writeTimeout(%v) = %v, want %v", tt.request, got, tt.want)
		}
	}
}
