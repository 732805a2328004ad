// Package client is the Go SDK of the tollgate API: typed calls for API
// keys, sessions and leads, and retries done the way the contract says.
//
// Every call retries connection errors (timeouts included) and 429, 500,
// 502, 503 and 504 (and 409 IDEMPOTENCY_KEY_IN_USE), never another 4xx,
// nor a redirect the http.Client refused. A POST or PATCH carries an
// Idempotency-Key, the same on every attempt, so that a retry cannot create
// twice. The wait before a retry is the server's (Retry-After, then
// details.retry_after, then X-RateLimit-Reset), capped by Policy.MaxWait,
// else exponential backoff with full jitter; no wait passes the context's
// deadline. A retry budget shared by the client keeps retries under 10% of
// calls (plus a small floor), so an outage is not amplified, and pacing
// (per host and credential) makes a request wait for the rate-limit reset
// instead of earning a 429.
//
// Every failing call returns a *Error. For a non-2xx answer its chain
// holds an *apierror.Error; compare it with the sentinels (errors.Is(err,
// client.ErrNotFound)) or read it with errors.As.
//
// The same retry logic serves any *http.Client through [Transport].
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tollgate-dev/tollgate/apierror"
)

// DefaultUserAgent is the User-Agent a Client sends unless told otherwise.
const DefaultUserAgent = "tollgate-go"

// Client calls the tollgate API. Create it with New. A Client is safe for
// concurrent use by multiple goroutines; its retry budget and pacing state
// are shared by all of them.
type Client struct {
	// Keys manages API keys (/v1/keys).
	Keys *KeyService
	// Sessions manages sessions (/v1/sessions).
	Sessions *SessionService
	// Leads manages leads (/v1/leads).
	Leads *LeadService

	baseURL   string // no trailing slash
	apiKey    string
	userAgent string
	hc        *http.Client
	eng       *engine
}

// Option configures a Client in New.
type Option func(*config)

type config struct {
	apiKey    string
	userAgent string
	hc        *http.Client
	policy    Policy
	log       *slog.Logger
	now       func() time.Time
	sleep     func(ctx context.Context, d time.Duration) error
}

// WithAPIKey sends key as "Authorization: Bearer <key>" on every request.
func WithAPIKey(key string) Option { return func(c *config) { c.apiKey = key } }

// WithHTTPClient sends each attempt through hc instead of a plain
// &http.Client{}. Its Transport should not retry by itself.
func WithHTTPClient(hc *http.Client) Option { return func(c *config) { c.hc = hc } }

// WithRetry sets the retry policy; zero fields keep their defaults.
func WithRetry(p Policy) Option { return func(c *config) { c.policy = p } }

// WithLogger logs each attempt, wait and decision to l at debug level.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option { return func(c *config) { c.userAgent = ua } }

// WithClock replaces the clock and the sleeper, for tests: now is read for
// Retry-After dates, X-RateLimit-Reset and deadlines; sleep waits between
// attempts and must return early with ctx.Err() when ctx is done. Nil keeps
// the default (time.Now, Sleep). now must agree with the clock of context
// deadlines.
func WithClock(now func() time.Time, sleep func(ctx context.Context, d time.Duration) error) Option {
	return func(c *config) { c.now, c.sleep = now, sleep }
}

// redactUserinfo hides the user information of a base URL quoted in an
// error, whether it parses or not: everything from the authority's start
// (after "//", or the string's start without one) to the last "@". That
// may hide more than the userinfo (an "@" in the path), never less (a
// password holding "/", "?" or "#").
func redactUserinfo(s string) string {
	start := 0
	if i := strings.Index(s, "//"); i >= 0 {
		start = i + 2
	}
	if at := strings.LastIndex(s, "@"); at >= start {
		return s[:start] + "xxxxx" + s[at:]
	}
	return s
}

// New returns a Client for the API at baseURL (e.g.
// "http://localhost:8080"; a path prefix is kept).
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("client: new: base URL %q does not parse", redactUserinfo(baseURL))
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("client: new: base URL %q is not an http(s) URL", redactUserinfo(baseURL))
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("client: new: base URL %q has a query or fragment", redactUserinfo(baseURL))
	}
	cfg := config{userAgent: DefaultUserAgent}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.hc == nil {
		cfg.hc = &http.Client{}
	}
	c := &Client{
		baseURL:   strings.TrimRight(u.String(), "/"),
		apiKey:    cfg.apiKey,
		userAgent: cfg.userAgent,
		hc:        cfg.hc,
		eng:       newEngine(cfg.policy, cfg.now, cfg.sleep, cfg.log),
	}
	c.Keys = &KeyService{c}
	c.Sessions = &SessionService{c}
	c.Leads = &LeadService{c}
	return c, nil
}

// Response is the successful answer of Do.
type Response struct {
	// StatusCode is the HTTP status, a 2xx.
	StatusCode int
	// Header holds the response headers.
	Header http.Header
	// Body is the whole response body.
	Body []byte
	// Attempts is how many attempts the call took.
	Attempts int
}

type idempotencyKeyCtx struct{}

// ContextWithIdempotencyKey returns a context that makes the POST or PATCH
// of a call made with it carry key as its Idempotency-Key, instead of one
// the client makes up: use it to retry a logical operation across
// processes (on the keys API, with the same API key: there an
// Idempotency-Key belongs to the API key that sent it, and another API key
// gets 422 IDEMPOTENCY_KEY_REUSED). A key create or rotate repeated with
// the same key gets the
// stored answer of the first call, which holds no secret: Keys.Create and
// Keys.Rotate then return ErrSecretNotReceived (the secret went to the
// first call, if it was received at all).
func ContextWithIdempotencyKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, idempotencyKeyCtx{}, key)
}

// Do sends method path (relative to the base URL, with its query) with body
// as JSON (nil for none), with the client's key, retries and pacing. A 2xx
// answer is returned whole; anything else is an *Error.
func (c *Client) Do(ctx context.Context, method, path string, body []byte) (*Response, error) {
	return c.send(ctx, strings.ToLower(method)+" "+path, method, path, body)
}

func (c *Client) send(ctx context.Context, op, method, path string, body []byte) (*Response, error) {
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.baseURL+path, rd)
	if err != nil {
		return nil, &Error{Op: op, Method: method, Path: path, Err: err}
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	if c.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.apiKey)
	}
	if k, _ := ctx.Value(idempotencyKeyCtx{}).(string); k != "" && (method == http.MethodPost || method == http.MethodPatch) {
		req.Header.Set(HeaderIdempotencyKey, k)
	}

	resp, out, err := c.eng.do(req, c.sendReading)
	if err != nil {
		return nil, newError(op, method, path, out, err, c.eng.now())
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		drain(resp.Body)
		if out.apiErr == nil { // a 3xx the http.Client did not follow: not an API error
			out.stop = StopNotRetryable
			return nil, newError(op, method, path, out, fmt.Errorf("unexpected status %s", resp.Status), c.eng.now())
		}
		return nil, newError(op, method, path, out, nil, c.eng.now())
	}
	data, _ := io.ReadAll(resp.Body) // read whole by sendReading
	return &Response{StatusCode: resp.StatusCode, Header: resp.Header, Body: data, Attempts: out.attempts}, nil
}

// sendReading is one attempt: it sends r and reads a 2xx body whole, so
// that a body cut off mid-read (a reset connection, the http.Client's
// Timeout) fails the attempt like any connection error, and the retry
// rules decide (an idempotent request, or one with an Idempotency-Key,
// whose retry replays the stored answer).
func (c *Client) sendReading(r *http.Request) (*http.Response, error) {
	resp, err := c.hc.Do(r)
	if err != nil || resp.StatusCode/100 != 2 {
		return resp, err
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("read response: %w", err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(data))
	return resp, nil
}

// call sends in as JSON (nil for none) and decodes a 2xx body into out (nil
// to ignore it). Every error it returns is an *Error.
func (c *Client) call(ctx context.Context, op, method, path string, in, out any) error {
	_, err := c.callN(ctx, op, method, path, in, out)
	return err
}

// callN is call, also returning how many attempts the call took.
func (c *Client) callN(ctx context.Context, op, method, path string, in, out any) (attempts int, err error) {
	var body []byte
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, &Error{Op: op, Method: method, Path: path, Err: fmt.Errorf("encode request: %w", err)}
		}
		body = b
	}
	resp, err := c.send(ctx, op, method, path, body)
	if err != nil {
		return 0, err
	}
	if out != nil && len(bytes.TrimSpace(resp.Body)) > 0 {
		if err := json.Unmarshal(resp.Body, out); err != nil {
			e := &Error{Op: op, Method: method, Path: path, Attempts: resp.Attempts,
				Err: fmt.Errorf("decode response: %w", err)}
			if rl, ok := apierror.ParseRateLimit(resp.Header); ok {
				e.RateLimit = &rl
			}
			return resp.Attempts, e
		}
	}
	return resp.Attempts, nil
}
