package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate-dev/tollgate/auth"
	"github.com/tollgate-dev/tollgate/internal/api"
	"github.com/tollgate-dev/tollgate/internal/server"
	"github.com/tollgate-dev/tollgate/logjson"
	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/ratelimit"
	"github.com/tollgate-dev/tollgate/ratelimit/redisstore"
	"github.com/tollgate-dev/tollgate/store"
)

// minProcs is the fewest Ps serve runs with. The stores make blocking
// system calls on the request path (SQLite syncs the WAL on every commit).
// With GOMAXPROCS=1 — one CPU, a one-CPU affinity mask or a one-CPU cgroup
// quota — such a call holds the only P until the runtime notices and hands
// it off, and every other request waits meanwhile, refusals included:
// offered 4× its capacity on one core, the server stopped shedding load and
// answered in seconds. With a second P it goes on reading, refusing and
// answering while a commit waits for the disk, still on one core.
const minProcs = 2

// raiseProcs sets GOMAXPROCS to minProcs when it is lower and the
// GOMAXPROCS environment variable (read with getenv) does not set it to a
// positive number, the only values the runtime obeys. It returns the value
// it found and whether it raised it. Setting GOMAXPROCS stops the runtime
// from following later changes of the CPU quota, so it does so only when
// it must.
func raiseProcs(getenv func(string) string) (was int, raised bool) {
	was = runtime.GOMAXPROCS(0)
	if n, err := strconv.Atoi(getenv("GOMAXPROCS")); was >= minProcs || err == nil && n > 0 {
		return was, false
	}
	runtime.GOMAXPROCS(minProcs)
	return was, true
}

// serveConfig is serve's configuration after flags, environment and
// defaults were applied.
type serveConfig struct {
	addr, database, account, redisURL string
	redisOpts                         *redis.Options // from redisURL; nil: in memory
	level                             slog.Level
	bodyLimit                         int64
	successField                      bool
	rateDefault                       ratelimit.Policy
	rateFail                          redisstore.FailurePolicy
	rateHeaders                       int
	maxConcurrency                    int
	requestTimeout                    time.Duration
	maintenance                       bool
	idemRetention, idemLease          time.Duration
	maxKeys                           int
}

func parseServe(e env, args []string) (serveConfig, error) {
	var c serveConfig
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	checkShared := sharedFlags(fs, &c, sharedHelp{
		concurrency:    "API requests in flight before 503 overloaded",
		timeout:        "deadline of each API request; past it 503 timeout",
		timeoutDefault: 10 * time.Second,
	})
	fs.BoolVar(&c.successField, "success-field", false, `add "success": true|false to every body (env TOLLGATE_SUCCESS_FIELD)`)
	fs.BoolVar(&c.maintenance, "maintenance", false, "start in maintenance mode: the API answers 503, /healthz still 200 (env TOLLGATE_MAINTENANCE)")
	fs.DurationVar(&c.idemRetention, "idempotency-retention", middleware.DefaultIdempotencyRetention, "how long Idempotency-Key results are kept (env TOLLGATE_IDEMPOTENCY_RETENTION)")
	fs.DurationVar(&c.idemLease, "idempotency-lease", middleware.DefaultIdempotencyLease, "how long an in-flight Idempotency-Key claim outlives a crashed server (env TOLLGATE_IDEMPOTENCY_LEASE)")
	fs.IntVar(&c.maxKeys, "max-keys", api.DefaultMaxKeys, "live keys an account may have through POST /v1/keys; -1 = no cap (env TOLLGATE_MAX_KEYS)")
	fs.Usage = func() {
		fmt.Fprint(e.stderr, "usage: tollgate serve [flags]\n\nRuns the API server until SIGINT or SIGTERM, then drains in-flight requests.\nFlags override environment variables, which override defaults.\n\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, e.getenv); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, usageError{"serve: unexpected arguments: " + strings.Join(fs.Args(), " ")}
	}
	if err := checkShared(); err != nil {
		return c, err
	}
	for _, err := range []error{
		positive("idempotency-retention", c.idemRetention),
		positive("idempotency-lease", c.idemLease),
	} {
		if err != nil {
			return c, err
		}
	}
	// 0 would read as "none" but mean the default: refuse it, as any
	// other value below -1.
	if c.maxKeys < -1 || c.maxKeys == 0 {
		return c, usageError{fmt.Sprintf("-max-keys (env %s) must be at least 1, or -1 for no cap, got %d", envFlags["max-keys"], c.maxKeys)}
	}
	// A record must outlive its first claim: with a retention of the lease
	// or less, the middleware would silently raise it to twice the lease.
	if c.idemRetention <= c.idemLease {
		return c, usageError{fmt.Sprintf("-idempotency-retention (env %s) must exceed -idempotency-lease (env %s), got %v and %v",
			envFlags["idempotency-retention"], envFlags["idempotency-lease"], c.idemRetention, c.idemLease)}
	}
	return c, nil
}

// sharedHelp is what differs between serve's and gateway's shared flags.
type sharedHelp struct {
	concurrency, timeout string        // help of --max-concurrency and --request-timeout
	timeoutDefault       time.Duration // --request-timeout's default
}

// sharedFlags registers on fs the flags serve and gateway share, into c,
// and returns the function that checks them once fs is parsed.
func sharedFlags(fs *flag.FlagSet, c *serveConfig, help sharedHelp) (check func() error) {
	fs.StringVar(&c.addr, "addr", "localhost:8080", "listen address (env TOLLGATE_ADDR)")
	fs.StringVar(&c.database, "database", "tollgate.db", "SQLite file path or postgres:// URL (env TOLLGATE_DATABASE)")
	fs.StringVar(&c.account, "account", "default", "account created on first start (env TOLLGATE_ACCOUNT)")
	fs.StringVar(&c.redisURL, "redis", "", "Redis URL or host:port for shared rate limits; empty = in memory (env TOLLGATE_REDIS_URL)")
	level := fs.String("log-level", "info", "log level: debug, info, warn, error (env TOLLGATE_LOG_LEVEL)")
	fs.Int64Var(&c.bodyLimit, "body-limit", server.DefaultBodyLimit, "largest request body in bytes (env TOLLGATE_BODY_LIMIT)")
	rateDefault := fs.String("rate-default", "100/1m", "rate plan of keys without their own (env TOLLGATE_RATE_DEFAULT)")
	rateFail := fs.String("rate-fail", "local", "when Redis is down: local (per-instance limits), open (no limits) or closed (503) (env TOLLGATE_RATE_FAIL)")
	rateHeaders := fs.String("ratelimit-headers", "legacy", "rate-limit header families: legacy, ietf or legacy,ietf (env TOLLGATE_RATELIMIT_HEADERS)")
	fs.IntVar(&c.maxConcurrency, "max-concurrency", middleware.DefaultConcurrency(), help.concurrency+" (env TOLLGATE_MAX_CONCURRENCY)")
	fs.DurationVar(&c.requestTimeout, "request-timeout", help.timeoutDefault, help.timeout+" (env TOLLGATE_REQUEST_TIMEOUT)")
	return func() error {
		var err error
		if err = c.level.UnmarshalText([]byte(*level)); err != nil {
			return usageError{fmt.Sprintf("-log-level: %v", err)}
		}
		if c.rateDefault, err = ratelimit.ParsePolicy(*rateDefault); err != nil {
			return usageError{fmt.Sprintf("-rate-default: %v", err)}
		}
		c.rateDefault.Name = "default"
		if c.rateFail, err = redisstore.ParseFailurePolicy(*rateFail); err != nil {
			return usageError{fmt.Sprintf("-rate-fail: %v", err)}
		}
		if c.rateHeaders, err = middleware.ParseHeaderFamilies(*rateHeaders); err != nil {
			return usageError{fmt.Sprintf("-ratelimit-headers: %v", err)}
		}
		if c.redisOpts, err = redisOptions(c.redisURL); err != nil {
			return err
		}
		// Zero or less would not mean "no limit": a body limit of -1
		// refuses every request, a timeout of 0 fails every call and a
		// concurrency of 0 or less silently becomes the default.
		for _, err := range []error{
			positive("body-limit", c.bodyLimit),
			positive("max-concurrency", c.maxConcurrency),
			positive("request-timeout", c.requestTimeout),
		} {
			if err != nil {
				return err
			}
		}
		return nil
	}
}

// positive returns a usage error naming flag name and its environment
// variable when v, the flag's value, is not above zero.
func positive[T int | int64 | time.Duration](name string, v T) error {
	if v > 0 {
		return nil
	}
	return usageError{fmt.Sprintf("-%s (env %s) must be positive, got %v", name, envFlags[name], v)}
}

func serveCmd(ctx context.Context, e env, args []string) error {
	// Before the flags: --max-concurrency's default is read from GOMAXPROCS.
	was, raised := raiseProcs(os.Getenv)
	c, err := parseServe(e, args)
	if err != nil {
		return err
	}
	maintenance := middleware.NewMaintenance(c.maintenance, time.Minute)
	s, err := start(ctx, e, c, was, raised, startOptions{
		successField: c.successField,
		guards:       []middleware.Middleware{maintenance.Guard},
		bootstrap: func(st store.Store, addr string) error {
			return bootstrap(ctx, st, c.account, addr, e)
		},
	})
	if err != nil {
		return err
	}
	defer s.close()
	api.New(api.Config{
		Store: s.st, Verifier: s.verifier, Guard: s.guard, Logger: s.log, Maintenance: maintenance,
		DefaultRate: c.rateDefault, MaxKeys: c.maxKeys,
		RateLimit: middleware.RateLimit(middleware.RateLimitConfig{Store: s.limiter, Default: c.rateDefault, Headers: c.rateHeaders}),
		Idempotency: middleware.Idempotency(s.st, middleware.IdempotencyOptions{
			Lease: c.idemLease, Retention: c.idemRetention, Logger: s.log,
		}),
	}).Routes(s.srv.Handle)

	s.log.Info("listening", "addr", s.l.Addr().String(), "database", redactDSN(c.database), "redis", redactDSN(c.redisURL))
	return s.serve(ctx, func(ctx context.Context) {
		middleware.PurgeIdempotencyKeys(ctx, s.st, time.Minute, s.log)
	})
}

// startOptions is what differs between serve's and gateway's start.
type startOptions struct {
	successField bool
	// guards run before the concurrency limit and the request deadline.
	guards []middleware.Middleware
	// bootstrap prints the admin key on a first start; addr is the
	// address the listener got.
	bootstrap func(st store.Store, addr string) error
}

// started is what serve and gateway set up alike before their routes.
type started struct {
	log      *slog.Logger
	l        net.Listener
	st       store.Store
	srv      *server.Server
	limiter  ratelimit.Store
	verifier *auth.Verifier
	guard    *middleware.Guard
	closers  []func() error // closed in reverse order
}

// close releases what start opened, last opened first: the log last.
func (s *started) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		_ = s.closers[i]()
	}
}

// start does what serve and gateway do alike before their routes: the
// log, the listener (first: a start that cannot serve must not create the
// database or print an admin key), the store and its first-start key, the
// server with its guards, the rate limiter, the key verifier and the guard
// against failed authentications. On error it has closed what it opened.
func start(ctx context.Context, e env, c serveConfig, was int, raised bool, o startOptions) (_ *started, err error) {
	s := &started{}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	logs := logjson.New(e.stderr, &logjson.Options{Level: c.level, BufferSize: 32 << 10, FlushInterval: 200 * time.Millisecond})
	s.closers = append(s.closers, logs.Close)
	s.log = slog.New(logs)
	if raised {
		s.log.Info("GOMAXPROCS raised", "from", was, "to", minProcs)
	}
	if s.l, err = net.Listen("tcp", c.addr); err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	s.closers = append(s.closers, s.l.Close)
	st, err := openStore(ctx, c.database)
	if err != nil {
		return nil, err
	}
	s.st = st
	s.closers = append(s.closers, st.Close)
	if err := o.bootstrap(st, s.l.Addr().String()); err != nil {
		return nil, err
	}

	checks := map[string]server.Checker{"database": st}
	s.srv = server.New(server.Config{
		Logger:       s.log,
		BodyLimit:    c.bodyLimit,
		SuccessField: o.successField,
		Checks:       checks,
		Guards: append(o.guards,
			middleware.Concurrency(c.maxConcurrency),
			middleware.Timeout(c.requestTimeout),
		),
		Timeouts: server.Timeouts{Write: writeTimeout(c.requestTimeout)},
	})
	limiter, client, err := newLimiter(c, s.srv, s.log)
	if err != nil {
		return nil, err
	}
	s.limiter = limiter
	if client != nil {
		s.closers = append(s.closers, client.Close)
		if c.rateFail == redisstore.FailClosed {
			// Without Redis every API call is refused: not ready.
			checks["redis"] = redisPing{client}
		}
	}
	s.verifier = auth.NewVerifier(store.AuthKeys(st))
	s.guard = middleware.NewGuard(ratelimit.NewMemoryStore(ratelimit.MemoryOptions{}), ratelimit.Policy{Name: "auth_failures", Limit: 20, Window: time.Minute}, nil)
	return s, nil
}

// serve runs the server until ctx ends and its requests drain, with the
// verifier's last_used_at flusher beside it and, when bg is not nil, bg,
// stopped once the server has. The flusher's last flush comes after the
// drain: requests still in flight when ctx ends use keys too.
func (s *started) serve(ctx context.Context, bg func(ctx context.Context)) error {
	flushCtx, stopFlush := context.WithCancel(context.WithoutCancel(ctx))
	defer stopFlush()
	flushed := make(chan error, 1)
	go func() { flushed <- s.verifier.Run(flushCtx, 10*time.Second) }()
	bgCtx, stopBG := context.WithCancel(ctx)
	bgDone := make(chan struct{})
	go func() {
		defer close(bgDone)
		if bg != nil {
			bg(bgCtx)
		}
	}()
	err := s.srv.Serve(ctx, s.l)
	stopBG()
	<-bgDone
	stopFlush()
	if ferr := <-flushed; ferr != nil {
		s.log.Warn("last_used_at flush failed", "err", ferr)
	}
	s.log.Info("stopped")
	return err
}

// redisOptions returns the client options for --redis, a redis:// URL or
// host:port, or nil when it is empty.
func redisOptions(addr string) (*redis.Options, error) {
	if addr == "" {
		return nil, nil
	}
	opts := redisstore.ClientOptions(addr)
	if strings.Contains(addr, "://") {
		u, err := redis.ParseURL(addr)
		if err != nil {
			return nil, usageError{fmt.Sprintf("-redis %s: %v", redactDSN(addr), withoutURL(err))}
		}
		opts = redisstore.ClientOptions(u.Addr)
		opts.Username, opts.Password, opts.DB, opts.TLSConfig = u.Username, u.Password, u.DB, u.TLSConfig
	}
	return opts, nil
}

// writeTimeout is the http.Server's WriteTimeout for a request deadline
// of requestTimeout: the default, or more when the deadline is near it, so
// that a request past its deadline gets its 503 "timeout" instead of a cut
// connection (WriteTimeout runs from the end of the headers, body read
// included).
func writeTimeout(requestTimeout time.Duration) time.Duration {
	return max(server.WriteTimeout, requestTimeout+10*time.Second)
}

// newLimiter returns the rate-limit store: Redis when configured (with its
// client, which the caller closes), else in memory (and a nil client).
func newLimiter(c serveConfig, srv *server.Server, log *slog.Logger) (ratelimit.Store, *redis.Client, error) {
	if c.redisOpts == nil {
		return ratelimit.NewMemoryStore(ratelimit.MemoryOptions{}), nil, nil
	}
	redis.SetLogger(redisLog{log})
	client := redis.NewClient(c.redisOpts)
	metrics, err := redisstore.NewMetrics(srv.Registry())
	if err != nil {
		client.Close()
		return nil, nil, err
	}
	rs, err := redisstore.New(client, redisstore.Options{Failure: c.rateFail, Metrics: metrics})
	if err != nil {
		client.Close()
		return nil, nil, err
	}
	return rs, client, nil
}

// redisPing checks Redis for /readyz.
type redisPing struct{ c *redis.Client }

func (p redisPing) Ping(ctx context.Context) error { return p.c.Ping(ctx).Err() }

// redisLog sends go-redis's own messages (dial failures during an outage)
// to the JSON log at WARN instead of its default plain-text stderr.
type redisLog struct{ l *slog.Logger }

func (r redisLog) Printf(ctx context.Context, format string, v ...any) {
	r.l.Warn(fmt.Sprintf(format, v...), "component", "redis")
}

// bootstrap creates the account if it is missing and, when the account has
// no key at all (revoked and expired ones count), creates an admin key
// (scope *) and prints its secret to stdout, never to the log. The decision
// rests on the keys, not on whether this call created the account: the
// keys CLI creates the account too (even "keys list"), and a key write that
// failed after the account was created must not leave a database on which
// no start ever prints a key. Once a key exists, whoever made it, no start
// prints one again.
func bootstrap(ctx context.Context, st store.Store, account, addr string, e env) error {
	return bootstrapKey(ctx, st, account, "http://"+addr+"/v1/keys", e)
}

// bootstrapKey is bootstrap for any command: the message shows the key
// used on useURL.
func bootstrapKey(ctx context.Context, st store.Store, account, useURL string, e env) error {
	acc, _, err := st.EnsureAccount(ctx, account)
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	keys, err := st.ListKeys(ctx, acc.ID)
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	if len(keys) > 0 {
		return nil
	}
	ck, err := api.CreateKey(ctx, st, acc.ID, api.KeyRequest{Name: "admin", Scopes: []string{auth.ScopeAll}})
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	fmt.Fprintf(e.stdout, `
==========================================================================
 tollgate: created the admin API key (scope *) of account %q.
 This key is shown ONCE and never stored in plaintext. Save it now:

   %s

 Use it:  curl -H "Authorization: Bearer $KEY" %s
==========================================================================

`, acc.Name, ck.Secret, useURL)
	return nil
}
