// Package gateway puts tollgate's error contract in front of any upstream
// HTTP service. A Gateway is a reverse proxy (net/http/httputil's
// ReverseProxy with a Rewrite function) whose own failures, and the
// upstream's error answers that are not already the contract's envelope,
// come back as the envelope apierror.Write writes. docs/gateway.md is the
// full account; in short:
//
// Failures of the gateway itself:
//
//   - The upstream cannot be reached or answers something that is not
//     HTTP (connection refused or reset, a malformed status line or
//     header, a TLS failure): 502 BAD_GATEWAY. The cause is logged by
//     middleware.Logger with the request id, never sent.
//   - The upstream sends no response headers within Options.Timeout
//     (counted from the moment the whole request was written to it), or
//     the request's own deadline (middleware.Timeout) passes first: 504
//     GATEWAY_TIMEOUT with details.timeout_ms, the time the upstream was
//     given: Options.Timeout, or what was left of the request's deadline
//     when the gateway took the request, whichever is shorter.
//   - The client hangs up before the answer: the error is written with
//     context.Canceled as its cause, so middleware.Logger and
//     middleware.Metrics count it as middleware.StatusClientClosed (499),
//     not as a 5xx. A client that hangs up while a body is streaming ends
//     the request quietly, logged with the status that was sent; an
//     upstream that dies while its body is streaming aborts the response
//     (http.ErrAbortHandler) so that the client sees a cut response, never
//     a short one that looks complete.
//   - A request body over middleware.BodyLimit's limit: 413
//     PAYLOAD_TOO_LARGE, as everywhere else.
//
// The upstream's answers:
//
//   - 1xx, 2xx and 3xx stream through: status, headers and body as sent,
//     never buffered. Chunked bodies and text/event-stream are flushed to
//     the client as they arrive (ReverseProxy's rule). A Location on
//     the upstream (its scheme and host, or a path) under its base path
//     becomes the path the client uses, as nginx's "proxy_redirect
//     default" does.
//   - 4xx and above: at most MaxErrorBody bytes of the body are read. When
//     they hold the contract's envelope or problem+json (apierror.Decode
//     finds a body of its own, the code is in the catalogue, its status is
//     the status received, and there is a message), the answer passes
//     through unchanged: status, headers and the same bytes. A gzip body
//     is unpacked to look at it and passed on packed.
//   - Any other error body (an HTML page, plain text, an empty body, JSON
//     of another shape, a body over MaxErrorBody) is replaced by the
//     envelope of the status's code (apierror.CodeForStatus) with
//     details.upstream_status, the status received. 500 stays 500
//     INTERNAL_ERROR; 503 stays 503 SERVICE_UNAVAILABLE, reason
//     "upstream_unavailable"; a 4xx outside the catalogue becomes 400
//     INVALID_REQUEST and any other status outside it (501, 505, 5xx,
//     600–999) 502 BAD_GATEWAY, so the status always matches the code.
//     The upstream's Retry-After becomes details.retry_after and
//     Retry-After in whole seconds; 429 and 503 always carry one (without
//     a Retry-After, the time to the upstream's X-RateLimit-Reset when its
//     X-RateLimit-Remaining is 0 or absent, else 1 s). A 405's Allow is
//     kept and becomes
//     details.allowed. Of the upstream's other headers only the
//     rate-limit ones are kept (X-RateLimit-*, RateLimit, RateLimit-*);
//     the rest described the body that was replaced.
//   - X-Request-Id is always the gateway's: the upstream's own is dropped
//     (an upstream that keeps the forwarded id, as tollgate serve does,
//     sends the same one).
//   - Rate-limit headers: the gateway's (middleware.RateLimit) and the
//     upstream's are two policies, and the answer describes the most
//     restrictive one, as the contract asks. When both sent some, the
//     upstream's set is kept if its X-RateLimit-* triple parses and has
//     fewer requests remaining (or as many and a later reset), or the
//     gateway sent no triple; otherwise the gateway's. The other set is
//     dropped whole, so one response's headers come from one snapshot.
//
// What the upstream receives:
//
//   - The request to the upstream URL's scheme and host, its path joined
//     after the upstream's path (httputil.ProxyRequest.SetURL); Host is the
//     upstream's host. Hop-by-hop headers are removed (ReverseProxy).
//   - X-Request-Id: the request id middleware.RequestID chose, so the two
//     logs join. The Gateway runs RequestID itself when no chain did.
//   - No credentials meant for tollgate: Authorization and X-Api-Key are
//     always removed. Instead, when middleware.Auth authenticated the
//     request, the caller's identity: X-Tollgate-Account,
//     X-Tollgate-Key-Id, X-Tollgate-Scopes (comma-separated) and
//     X-Tollgate-Key-Mode (live or test). Every header the client sent
//     whose name starts with X-Tollgate- is removed first (spelled with
//     "_" for "-" too, as CGI, WSGI, Rack and PHP read them alike), so
//     these cannot be forged through the gateway. The upstream may trust
//     them only if nothing but the gateway can reach it.
//   - X-Forwarded-For, X-Forwarded-Host and X-Forwarded-Proto describe the
//     connection the gateway received; the client's own, Forwarded and
//     every other X-Forwarded-* (-Port, -Prefix, ...) are dropped. With
//     Options.TrustForwarded, for a gateway behind a proxy of its own,
//     the client's -For, -Host and -Proto are kept and the peer's address
//     is appended to X-Forwarded-For.
//
// Protocol upgrades (WebSocket): until the upstream answers 101 Switching
// Protocols, an upgrade request is a request like any other. Once switched,
// the connection is joined to the upstream's and lasts until either side
// closes it, nothing goes through it for Options.UpgradeIdleTimeout, or
// CloseUpgraded closes it: the request's deadline and the server's
// timeouts no longer apply. middleware.Logger logs it as 101 when it ends.
//
// A Gateway is safe for concurrent use.
package gateway

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate-dev/tollgate/apierror"
	"github.com/tollgate-dev/tollgate/auth"
	"github.com/tollgate-dev/tollgate/middleware"
)

// DefaultTimeout is the upstream timeout of Options whose Timeout is zero.
const DefaultTimeout = 30 * time.Second

// MaxErrorBody is how much of an upstream error body (status 400 and
// above) the gateway reads to tell whether it already is the contract's
// envelope. A longer body is never passed through: it is replaced.
const MaxErrorBody = 64 << 10

// The headers that carry the authenticated caller's identity to the
// upstream. The client's own headers starting with X-Tollgate- are
// removed before these are set.
const (
	// HeaderAccount is the id of the account that owns the key.
	HeaderAccount = "X-Tollgate-Account"
	// HeaderKeyID is the id of the API key (never the key itself).
	HeaderKeyID = "X-Tollgate-Key-Id"
	// HeaderScopes lists the key's scopes, comma-separated ("*" for all).
	HeaderScopes = "X-Tollgate-Scopes"
	// HeaderKeyMode is "live" or "test", the kind of the key.
	HeaderKeyMode = "X-Tollgate-Key-Mode"
)

// identityPrefix starts every identity header.
const identityPrefix = "X-Tollgate-"

// Options configure a Gateway. The zero value is usable.
type Options struct {
	// Timeout bounds the wait for the upstream's response headers,
	// counted from the moment the request (body included) was written to
	// it; past it the answer is 504 GATEWAY_TIMEOUT. The body that
	// follows the headers is bounded only by the request's deadline.
	// Zero means DefaultTimeout.
	Timeout time.Duration
	// Transport sends the requests; nil means a transport of the
	// gateway's own: no proxy from the environment, no transparent
	// compression (the client's Accept-Encoding decides), HTTP/2 to https
	// upstreams, 10 s to connect, up to 64 idle connections kept.
	Transport http.RoundTripper
	// TrustForwarded keeps the client's X-Forwarded-For, -Host and -Proto
	// (the peer's address is appended to X-Forwarded-For). Set it only
	// when the gateway is reachable solely through a proxy that sets
	// them; otherwise a client could claim any address.
	TrustForwarded bool
	// UpgradeIdleTimeout closes an upgraded connection (a WebSocket, once
	// the upstream answered 101 Switching Protocols) through which no byte
	// went either way for this long. An upgraded connection is no longer
	// bound by the request's deadline or the server's read and write
	// timeouts: it lasts until either side closes it, this timeout, or
	// CloseUpgraded. Zero means DefaultUpgradeIdleTimeout.
	UpgradeIdleTimeout time.Duration
	// MaxUpgraded bounds the upgrade requests in flight, switched or on
	// their way: one more is refused with 503 SERVICE_UNAVAILABLE, reason
	// "overloaded", Retry-After: 1, before it reaches the upstream. A
	// switched connection gives back its middleware.Concurrency slot (it
	// may live for hours), so this is what bounds them. Zero means
	// DefaultMaxUpgraded.
	MaxUpgraded int
	// Logger receives, at WARN, why a streaming 1xx–3xx body failed
	// ("upstream body failed", with request_id and error) and
	// ReverseProxy's other messages; nil discards them. Failures answered
	// with an error are logged by middleware.Logger, with their cause.
	Logger *slog.Logger
}

// Gateway is an http.Handler that proxies every request to one upstream
// with the error contract. Build it with New. It is safe for concurrent
// use.
type Gateway struct {
	upstream *url.URL
	timeout  time.Duration
	trust    bool
	proxy    *httputil.ReverseProxy
	h        http.Handler
	log      *slog.Logger
	idle     time.Duration // of upgraded connections
	ups      upgrades
}

// New returns a Gateway to upstream, an absolute http or https URL with a
// host and optionally a base path (see ParseUpstream).
func New(upstream *url.URL, opts Options) (*Gateway, error) {
	if err := checkUpstream(upstream); err != nil {
		return nil, err
	}
	if opts.Timeout < 0 {
		return nil, fmt.Errorf("gateway: negative timeout %v", opts.Timeout)
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.UpgradeIdleTimeout < 0 {
		return nil, fmt.Errorf("gateway: negative upgrade idle timeout %v", opts.UpgradeIdleTimeout)
	}
	if opts.UpgradeIdleTimeout == 0 {
		opts.UpgradeIdleTimeout = DefaultUpgradeIdleTimeout
	}
	if opts.MaxUpgraded < 0 {
		return nil, fmt.Errorf("gateway: negative MaxUpgraded %d", opts.MaxUpgraded)
	}
	if opts.MaxUpgraded == 0 {
		opts.MaxUpgraded = DefaultMaxUpgraded
	}
	if opts.Transport == nil {
		opts.Transport = newTransport()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	u := *upstream
	g := &Gateway{upstream: &u, timeout: opts.Timeout, trust: opts.TrustForwarded, log: opts.Logger, idle: opts.UpgradeIdleTimeout}
	g.ups.max = opts.MaxUpgraded
	g.ups.refusal = apierror.New(apierror.ServiceUnavailable, "Too many upgraded connections; retry shortly.").
		With("reason", "overloaded").WithRetryAfter(time.Second)
	g.proxy = &httputil.ReverseProxy{
		Rewrite:        g.rewrite,
		Transport:      &headerTimeout{next: opts.Transport, d: opts.Timeout},
		ModifyResponse: g.modifyResponse,
		ErrorHandler:   g.fail,
		// Without the body-copy read errors: serve logs those itself, with
		// the request id.
		ErrorLog: log.New(copyErrorFilter{slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn).Writer()}, "", 0),
	}
	// Alone (not behind a chain that ran RequestID), the Gateway gives
	// each request its id: see ServeHTTP.
	g.h = middleware.RequestID(nil)(http.HandlerFunc(g.serve))
	return g, nil
}

// ParseUpstream parses and checks an upstream URL: absolute, http or
// https, with a host, without user information or a fragment. A path is
// the base path requests are joined to; a query is added to every
// request's.
func ParseUpstream(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL, which may hold a password
		}
		return nil, fmt.Errorf("gateway: upstream: %w", err)
	}
	if err := checkUpstream(u); err != nil {
		return nil, err
	}
	return u, nil
}

func checkUpstream(u *url.URL) error {
	switch {
	case u == nil:
		return errors.New("gateway: upstream: no URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("gateway: upstream %q: scheme must be http or https", Redacted(u))
	case u.Opaque != "" || u.Hostname() == "":
		return fmt.Errorf("gateway: upstream %q: no host", Redacted(u))
	case u.User != nil:
		return fmt.Errorf("gateway: upstream %q: user information is not supported", Redacted(u))
	case u.Fragment != "":
		return fmt.Errorf("gateway: upstream %q: a fragment is not allowed", Redacted(u))
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("gateway: upstream %q: port must be 1 to 65535", Redacted(u))
		}
	}
	return nil
}

// Redacted returns u as text for logs and error messages: its password
// (if any) and the value of every query parameter replaced by "xxxxx". An
// upstream's query is added to every request, and often is a token the
// upstream checks.
func Redacted(u *url.URL) string {
	if u == nil {
		return ""
	}
	c := *u
	if c.RawQuery != "" {
		params := strings.Split(c.RawQuery, "&")
		for i, p := range params {
			if k, _, ok := strings.Cut(p, "="); ok {
				params[i] = k + "=xxxxx"
			} else if p != "" {
				params[i] = "xxxxx" // a bare value may be the token itself
			}
		}
		c.RawQuery = strings.Join(params, "&")
	}
	return c.Redacted()
}

// ServeHTTP proxies r to the upstream. A request that already has its id
// (a chain ran middleware.RequestID) goes straight to the proxy: running
// RequestID again would only read the clock and set the same header.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if middleware.RequestIDFrom(r.Context()) != "" {
		g.serve(w, r)
		return
	}
	g.h.ServeHTTP(w, r)
}

// exchange is what one proxied request's hooks share: the request as
// the gateway received it, its ResponseWriter, and the time the upstream
// was given.
type exchange struct {
	in      *http.Request
	w       http.ResponseWriter
	budget  time.Duration // for details.timeout_ms when the deadline ends it
	bodyErr error         // the first error reading a 1xx–3xx body from the upstream
	up      *upgraded     // the request asks for a protocol upgrade
}

type exchangeKey struct{}

func exchangeFrom(ctx context.Context) *exchange {
	ex, _ := ctx.Value(exchangeKey{}).(*exchange)
	return ex
}

func (g *Gateway) serve(w http.ResponseWriter, r *http.Request) {
	iw := &informWriter{ResponseWriter: w, base: w.Header().Clone()}
	w = iw
	ex := &exchange{w: w, budget: g.timeout}
	if dl, ok := r.Context().Deadline(); ok {
		ex.budget = max(min(ex.budget, time.Until(dl)), 0)
	}
	r = r.WithContext(context.WithValue(r.Context(), exchangeKey{}, ex))
	ex.in = r
	out := r // what the proxy gets; failures are answered for r
	if upgradeRequested(r.Header) {
		if iw.up = g.beginUpgrade(r.Context()); iw.up == nil {
			apierror.Write(w, r, g.ups.refusal)
			return
		}
		ex.up = iw.up
		defer iw.up.end()
		out = r.WithContext(iw.up.ctx)
	}
	defer func() {
		// ReverseProxy aborts a response whose body copy failed. When the
		// client is gone, it is the client's doing and reached no one: the
		// request ends quietly. Any other abort (the upstream died
		// mid-body, the request's deadline passed) goes on, so that the
		// client sees a cut response.
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler && clientGone(r.Context()) {
				return
			}
			if v == http.ErrAbortHandler && ex.bodyErr != nil {
				// The access line says "response aborted"; this says why,
				// with the request id.
				g.log.LogAttrs(r.Context(), slog.LevelWarn, "upstream body failed",
					slog.String("request_id", middleware.RequestIDFrom(r.Context())),
					slog.String("error", "gateway: upstream body: "+ex.bodyErr.Error()))
			}
			panic(v)
		}
	}()
	g.proxy.ServeHTTP(w, out)
}

// rewrite builds the upstream request (see the package documentation).
func (g *Gateway) rewrite(pr *httputil.ProxyRequest) {
	pr.SetURL(g.upstream)
	in, h := pr.In, pr.Out.Header
	for k := range h {
		// CGI, WSGI, Rack and PHP read "_" as "-" in a header's name:
		// X_Tollgate_Account would be X-Tollgate-Account to them.
		n := strings.ReplaceAll(k, "_", "-")
		if strings.EqualFold(n, "Authorization") || strings.EqualFold(n, "X-Api-Key") ||
			strings.EqualFold(n, apierror.HeaderRequestID) || hasPrefixFold(n, identityPrefix) ||
			strings.EqualFold(n, "Forwarded") || hasPrefixFold(n, "X-Forwarded-") {
			// Every forwarding header the client sent, in any spelling:
			// X-Forwarded-Port or -Prefix would tell the upstream where
			// the request came from as much as -For does. TrustForwarded
			// puts back -For, -Host and -Proto below.
			delete(h, k)
		}
	}
	if g.trust {
		for _, k := range []string{"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"} {
			if v := in.Header.Values(k); len(v) > 0 {
				h[k] = append([]string(nil), v...)
			}
		}
		host, proto := h.Get("X-Forwarded-Host"), h.Get("X-Forwarded-Proto")
		pr.SetXForwarded()
		if host != "" {
			h.Set("X-Forwarded-Host", host)
		}
		if proto != "" {
			h.Set("X-Forwarded-Proto", proto)
		}
	} else {
		pr.SetXForwarded()
	}
	if id := middleware.RequestIDFrom(in.Context()); id != "" {
		h[apierror.HeaderRequestID] = []string{id}
	}
	if p, ok := auth.PrincipalFrom(in.Context()); ok {
		mode := "test"
		if p.Live {
			mode = "live"
		}
		h[HeaderAccount] = []string{p.AccountID}
		h[HeaderKeyID] = []string{p.KeyID}
		h[HeaderScopes] = []string{strings.Join(p.Scopes, ",")}
		h[HeaderKeyMode] = []string{mode}
	}
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// fail is ReverseProxy's ErrorHandler: it answers err with the contract.
// r is the request ReverseProxy was handling (the outbound one once it was
// built); the answer is written for the request the gateway received.
func (g *Gateway) fail(w http.ResponseWriter, r *http.Request, err error) {
	in := r
	if ex := exchangeFrom(r.Context()); ex != nil {
		in = ex.in
	}
	apierror.Write(w, in, g.errorFor(in, err))
}

// errorFor maps a failure to proxy in to its answer.
func (g *Gateway) errorFor(in *http.Request, err error) *apierror.Error {
	var ue *upstreamError
	if errors.As(err, &ue) {
		return ue.e
	}
	ctx := in.Context()
	ex := exchangeFrom(ctx)
	var mbe *http.MaxBytesError
	switch {
	case ex != nil && ex.up != nil && ex.up.refused:
		return shuttingDown(err)
	case deadlinePassed(ctx):
		budget := g.timeout
		if ex != nil {
			budget = ex.budget
		}
		if errors.Is(err, context.Canceled) {
			// net/http cancelled the request as the connection's read
			// deadline (the same instant, see deadlinePassed) passed, or
			// an upgrade's context followed the request's: not a client
			// gone, which middleware.Logger would log as 499.
			err = fmt.Errorf("%w (%s)", context.DeadlineExceeded, err)
		}
		return timeout(err, budget)
	case clientGone(ctx):
		// context.Canceled stays in the chain, so the request is logged
		// and counted as 499, not as a 5xx.
		return apierror.From(fmt.Errorf("gateway: %w: %w", ctx.Err(), err))
	case errors.Is(err, errHeaderTimeout):
		return timeout(err, g.timeout)
	case errors.As(err, &mbe):
		return apierror.From(err) // 413, as BodyLimit answers
	}
	return apierror.Wrap(fmt.Errorf("gateway: %w", err), apierror.BadGateway, "")
}

// deadlinePassed reports whether ctx's deadline has passed. Its error may
// then be context.Canceled rather than DeadlineExceeded: middleware.Timeout
// sets the connection's read deadline to the same instant, and net/http
// cancels the request when that read fails.
func deadlinePassed(ctx context.Context) bool {
	dl, ok := ctx.Deadline()
	return ok && ctx.Err() != nil && !time.Now().Before(dl)
}

// clientGone reports whether ctx was cancelled because the client went
// away (net/http cancels a request whose connection closed).
func clientGone(ctx context.Context) bool {
	return errors.Is(ctx.Err(), context.Canceled) && !deadlinePassed(ctx)
}

func timeout(err error, d time.Duration) *apierror.Error {
	return apierror.Wrap(fmt.Errorf("gateway: %w", err), apierror.GatewayTimeout, "").
		With("timeout_ms", d.Milliseconds())
}

// bodyErrRecorder keeps the first read error of an upstream body that
// streams to the client, for serve to log with the request id.
type bodyErrRecorder struct {
	io.ReadCloser
	ex *exchange
}

func (b *bodyErrRecorder) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF && b.ex.bodyErr == nil {
		b.ex.bodyErr = err
	}
	return n, err
}

// copyErrorFilter drops ReverseProxy's "read error during body copy"
// lines, which carry no request id: serve logs the error with one.
type copyErrorFilter struct{ w io.Writer }

func (f copyErrorFilter) Write(p []byte) (int, error) {
	if bytes.HasPrefix(p, []byte("httputil: ReverseProxy read error during body copy")) {
		return len(p), nil
	}
	return f.w.Write(p)
}

// newTransport is the default Options.Transport.
func newTransport() *http.Transport {
	return &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
	}
}

// informWriter is the ResponseWriter the proxy writes to. ReverseProxy
// clears the response's header map after it forwards a 1xx (103 Early
// Hints), which would take the gateway's X-Request-Id and rate-limit
// headers off the final answer: informWriter puts back the headers the
// response had when the gateway took the request, and gives each 1xx the
// gateway's request id only.
type informWriter struct {
	http.ResponseWriter
	base     http.Header // the response's headers before the proxy ran
	informed bool        // a 1xx was written since the headers were restored
	up       *upgraded   // the request asks for a protocol upgrade
}

func (w *informWriter) Header() http.Header {
	h := w.ResponseWriter.Header()
	if w.informed {
		w.informed = false
		for k, vs := range w.base {
			h[k] = append([]string(nil), vs...)
		}
	}
	return h
}

func (w *informWriter) WriteHeader(code int) {
	h := w.Header()
	if code < 100 || code > 199 || code == http.StatusSwitchingProtocols {
		w.ResponseWriter.WriteHeader(code)
		return
	}
	if id, ok := w.base[apierror.HeaderRequestID]; ok {
		h[apierror.HeaderRequestID] = append([]string(nil), id...)
	} else {
		delete(h, apierror.HeaderRequestID)
	}
	w.ResponseWriter.WriteHeader(code)
	w.informed = true
}

// Hijack is how ReverseProxy takes the client's connection when the
// upstream switches protocols (101): see upgraded.hijack.
func (w *informWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	var (
		conn net.Conn
		brw  *bufio.ReadWriter
		err  error
	)
	if w.up == nil {
		conn, brw, err = http.NewResponseController(w.ResponseWriter).Hijack()
	} else {
		conn, brw, err = w.up.hijack(w.ResponseWriter)
	}
	if errors.Is(err, http.ErrNotSupported) {
		// On ErrNotSupported, ReverseProxy returns without closing the
		// upstream's connection, switched to a protocol no one speaks;
		// on any other error it closes it.
		err = fmt.Errorf("gateway: cannot switch protocols: the ResponseWriter cannot be hijacked (%v)", err)
	}
	return conn, brw, err
}

// Unwrap lets http.ResponseController (flushes) and apierror.Write reach
// the writers below.
func (w *informWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
