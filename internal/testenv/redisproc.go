package testenv

import (
	"context"
	"net"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisProc is a private redis-server on a free loopback port, for tests
// that kill, pause and restart it. It is not safe for concurrent use.
type RedisProc struct {
	t    testing.TB
	port int
	cmd  *exec.Cmd
}

// StartRedis starts a private redis-server (no persistence) and stops it
// when t ends. Without the redis-server binary the test is skipped, or
// fails under TOLLGATE_REQUIRE_SERVICES=1.
func StartRedis(t testing.TB) *RedisProc {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		unavailable(t, "redis-server binary", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	p := &RedisProc{t: t, port: port}
	p.Start()
	t.Cleanup(p.Kill)
	return p
}

// Addr is the server's host:port.
func (p *RedisProc) Addr() string { return "127.0.0.1:" + strconv.Itoa(p.port) }

// Start runs the server (again) and waits, bounded, until it answers PING.
func (p *RedisProc) Start() {
	p.t.Helper()
	p.cmd = exec.Command("redis-server", "--save", "", "--appendonly", "no",
		"--port", strconv.Itoa(p.port), "--bind", "127.0.0.1")
	if err := p.cmd.Start(); err != nil {
		p.t.Fatalf("testenv: start redis-server: %v", err)
	}
	c := redis.NewClient(&redis.Options{Addr: p.Addr(), MaxRetries: -1})
	defer c.Close()
	var err error
	for range 200 { // up to ~10 s
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		err = c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond) // polling a condition, not a timing claim
	}
	p.t.Fatalf("testenv: redis-server on port %d never answered: %v", p.port, err)
}

// Kill stops the server with SIGKILL and reaps it.
func (p *RedisProc) Kill() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGCONT) // a stopped process dies only once continued
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
	p.cmd = nil
}

// Signal sends sig to the server (SIGSTOP pauses it, SIGCONT resumes).
func (p *RedisProc) Signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("testenv: signal %v: %v", sig, err)
	}
}
