package gateway

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tollgate-dev/tollgate/apierror"
	"github.com/tollgate-dev/tollgate/middleware"
)

// DefaultUpgradeIdleTimeout is the idle timeout of upgraded connections
// for Options whose UpgradeIdleTimeout is zero.
const DefaultUpgradeIdleTimeout = 5 * time.Minute

// DefaultMaxUpgraded is the bound on upgrade requests in flight for
// Options whose MaxUpgraded is zero.
const DefaultMaxUpgraded = 10000

// errShuttingDown refuses an upgrade once CloseUpgraded has run (see
// upgraded.refused).
var errShuttingDown = errors.New("gateway: shutting down: no new upgraded connections")

// errNoHalfClose ends the proxying of an upgraded connection whose client
// side cannot be half-closed once the upstream has finished sending, as
// ReverseProxy does for such a connection.
var errNoHalfClose = errors.New("gateway: upgraded connection cannot be half-closed")

// upgradeRequested reports whether h asks for a protocol upgrade, by
// ReverseProxy's rule: "upgrade" among Connection's tokens, and an Upgrade
// header.
func upgradeRequested(h http.Header) bool {
	for _, v := range h["Connection"] {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), "upgrade") {
				return h.Get("Upgrade") != ""
			}
		}
	}
	return false
}

// switchAsked reports whether h, the headers of a 101 Switching Protocols,
// switch to the protocol the request of ex asked for, by ReverseProxy's
// rule (the same, ASCII case-insensitive).
func switchAsked(ex *exchange, h http.Header) bool {
	if ex == nil || ex.up == nil || !upgradeRequested(h) {
		return false
	}
	want, got := ex.in.Header.Get("Upgrade"), h.Get("Upgrade")
	// The same length: no non-ASCII rune that folds to an ASCII letter
	// (K, ſ), which ReverseProxy would refuse.
	return len(got) == len(want) && strings.EqualFold(got, want)
}

// upgrades are the gateway's upgrade requests: how many are in flight,
// for Options.MaxUpgraded, and those switched, for CloseUpgraded.
type upgrades struct {
	mu      sync.Mutex
	n       int                    // upgrade requests in flight, switched or not
	max     int                    // Options.MaxUpgraded
	refusal *apierror.Error        // the answer past max, built once
	live    map[*upgraded]struct{} // those switched and not yet ended
	closed  bool                   // CloseUpgraded ran: no more switches
}

// upgraded is one request asking for a protocol upgrade (a WebSocket
// handshake). Until the upstream answers 101 Switching Protocols, it is a
// request like any other: its deadline and its client going away end it.
// Once switched, the connection is no longer a request: it lives until
// either side closes it, it carries no byte for the idle timeout, or
// CloseUpgraded closes it.
type upgraded struct {
	g      *Gateway
	id     string             // the request id, for the log
	parent context.Context    // the request's
	ctx    context.Context    // the request's values, cancelled by it until detached
	cancel context.CancelFunc // ends ctx
	detach func() bool        // stops the request's end from cancelling ctx
	conn   *idleConn          // the client's connection once switched; under g.ups.mu
	// refused is set when hijack refused the switch because of
	// CloseUpgraded. ReverseProxy passes hijack's error on as text only, so
	// errorFor reads this instead.
	refused bool
	done    chan struct{} // closed when the request has ended
}

// beginUpgrade returns the upgrade state of a request whose context is
// parent. The request is proxied with u.ctx: ReverseProxy closes the
// upstream's connection when that context ends, so it must outlive the
// request's deadline once the protocols have switched. It returns nil
// when Options.MaxUpgraded upgrade requests are already in flight.
func (g *Gateway) beginUpgrade(parent context.Context) *upgraded {
	g.ups.mu.Lock()
	full := g.ups.n >= g.ups.max
	if !full {
		g.ups.n++
	}
	g.ups.mu.Unlock()
	if full {
		return nil
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(parent))
	return &upgraded{
		g:      g,
		id:     middleware.RequestIDFrom(parent),
		parent: parent,
		ctx:    ctx,
		cancel: cancel,
		detach: context.AfterFunc(parent, cancel),
		done:   make(chan struct{}),
	}
}

// end is called when the request has ended (ReverseProxy returned).
func (u *upgraded) end() {
	u.detach()
	u.cancel()
	u.g.ups.mu.Lock()
	u.g.ups.n--
	delete(u.g.ups.live, u)
	u.g.ups.mu.Unlock()
	close(u.done)
}

// hijack takes the client's connection from w for the switched protocol:
// it detaches the request from its deadline and returns the connection
// wrapped to close itself when idle. It fails before taking the
// connection (so the failure is answered with the contract) when the
// request has already ended or CloseUpgraded has run.
func (u *upgraded) hijack(w http.ResponseWriter) (net.Conn, *bufio.ReadWriter, error) {
	ups := &u.g.ups
	ups.mu.Lock()
	defer ups.mu.Unlock()
	if ups.closed {
		u.refused = true
		return nil, nil, errShuttingDown
	}
	// parent's Done is closed before its AfterFunc runs: detach may stop
	// it after the request ended.
	if !u.detach() || u.parent.Err() != nil {
		// The deadline passed or the client left first: errorFor tells
		// which from the request's own context.
		return nil, nil, errors.New("gateway: the request ended before the protocol switch")
	}
	// net/http clears the connection's deadlines (the server's timeouts,
	// middleware.Timeout's) as it gives the connection up.
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, nil, err
	}
	u.conn = newIdleConn(conn, u.g.idle, u.idled)
	if ups.live == nil {
		ups.live = make(map[*upgraded]struct{})
	}
	ups.live[u] = struct{}{}
	return u.conn, brw, nil
}

// idled logs that the connection was closed for carrying nothing.
func (u *upgraded) idled() {
	u.g.log.LogAttrs(context.Background(), slog.LevelInfo, "upgraded connection closed: idle",
		slog.String("request_id", u.id), slog.String("idle_timeout", u.g.idle.String()))
}

// CloseUpgraded closes every upgraded connection the gateway is proxying
// (WebSockets, after 101 Switching Protocols), and from then on refuses
// new protocol switches with 503 SERVICE_UNAVAILABLE, reason
// "shutting_down". It returns once the Gateway's handling of the closed
// connections has returned, or with ctx's error if ctx ends first. The
// middleware around the Gateway (middleware.Logger's access line) runs
// after that: CloseUpgraded cannot wait for it.
//
// http.Server.Shutdown neither closes nor waits for upgraded connections:
// call CloseUpgraded when the server starts shutting down, as tollgate
// gateway does. The connections are closed at the TCP level: the gateway
// does not speak the protocols it switches to, so it sends no WebSocket
// close frame; clients reconnect as after any network failure.
func (g *Gateway) CloseUpgraded(ctx context.Context) error {
	g.ups.mu.Lock()
	g.ups.closed = true
	waits := make([]chan struct{}, 0, len(g.ups.live))
	for u := range g.ups.live {
		u.conn.Close()
		waits = append(waits, u.done)
	}
	g.ups.mu.Unlock()
	for _, done := range waits {
		select {
		case <-done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// shuttingDown is the answer to an upgrade refused by CloseUpgraded.
func shuttingDown(err error) *apierror.Error {
	return apierror.Wrap(err, apierror.ServiceUnavailable, "The gateway is shutting down.").
		With("reason", "shutting_down").WithRetryAfter(time.Second)
}

// idleConn is an upgraded client connection that closes itself when no
// byte has gone through it, either way, for idle.
type idleConn struct {
	net.Conn
	idle   time.Duration
	epoch  time.Time
	last   atomic.Int64 // time of the latest read or write that moved bytes, since epoch
	timer  *time.Timer
	onIdle func()
	closed atomic.Bool
}

func newIdleConn(c net.Conn, idle time.Duration, onIdle func()) *idleConn {
	ic := &idleConn{Conn: c, idle: idle, epoch: time.Now(), onIdle: onIdle}
	ic.timer = time.AfterFunc(idle, ic.check)
	return ic
}

func (c *idleConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.last.Store(int64(time.Since(c.epoch)))
	}
	return n, err
}

func (c *idleConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if n > 0 {
		c.last.Store(int64(time.Since(c.epoch)))
	}
	return n, err
}

// check runs when the timer fires: it closes the connection if it has
// been idle for c.idle, else waits for the rest of that time.
func (c *idleConn) check() {
	if c.closed.Load() {
		return
	}
	quiet := time.Since(c.epoch) - time.Duration(c.last.Load())
	if left := c.idle - quiet; left > 0 {
		c.timer.Reset(left)
		return
	}
	if c.Conn.Close() == nil {
		c.onIdle()
	}
}

// Close closes the connection and stops its idle timer.
func (c *idleConn) Close() error {
	c.closed.Store(true)
	c.timer.Stop()
	return c.Conn.Close()
}

// CloseWrite half-closes the connection when the upstream has finished
// sending, so the client sees the end while it may still send (what
// ReverseProxy does with a TCP connection).
func (c *idleConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errNoHalfClose
}
