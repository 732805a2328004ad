package main

import (
	"context"
	"flag"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/tollgate-dev/tollgate/gateway"
	"github.com/tollgate-dev/tollgate/internal/server"
	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/store"
)

const gatewayUsage = `usage: tollgate gateway --upstream URL [flags]

Runs the gateway until SIGINT or SIGTERM, then drains in-flight requests.
Every request needs an API key of the database (any valid key: the
upstream decides what a key may do, from X-Tollgate-Scopes), is rate
limited by the key's plan, and is proxied to the upstream with the error
contract. GET /healthz, /readyz and /metrics are the gateway's own.
Methods other than GET, HEAD, POST, PUT, PATCH, DELETE and OPTIONS get
405. See docs/gateway.md.
Flags override environment variables, which override defaults.

`

// gatewayMethods are the methods the gateway proxies.
var gatewayMethods = []string{"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"} // GET covers HEAD

// gatewayConfig is gateway's configuration after flags, environment and
// defaults were applied: serve's shared part, and the upstream.
type gatewayConfig struct {
	serveConfig
	upstream        *url.URL
	upstreamTimeout time.Duration
	upgradeIdle     time.Duration
	maxUpgraded     int
	trustForwarded  bool
}

func parseGateway(e env, args []string) (gatewayConfig, error) {
	var c gatewayConfig
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	checkShared := sharedFlags(fs, &c.serveConfig, sharedHelp{
		concurrency:    "requests in flight before 503 overloaded",
		timeout:        "deadline of each request, upstream body included; past it 504 (a cut stream once a body is flowing)",
		timeoutDefault: time.Minute,
	})
	upstream := fs.String("upstream", "", "URL of the upstream service, http:// or https://, optionally with a base path (required; env TOLLGATE_UPSTREAM)")
	fs.DurationVar(&c.upstreamTimeout, "upstream-timeout", gateway.DefaultTimeout, "wait for the upstream's response headers; past it 504 (env TOLLGATE_UPSTREAM_TIMEOUT)")
	fs.DurationVar(&c.upgradeIdle, "upgrade-idle-timeout", gateway.DefaultUpgradeIdleTimeout, "close an upgraded connection (WebSocket) that carried nothing either way for this long (env TOLLGATE_UPGRADE_IDLE_TIMEOUT)")
	fs.IntVar(&c.maxUpgraded, "max-upgraded", gateway.DefaultMaxUpgraded, "upgraded connections (WebSockets) at once, on top of --max-concurrency; past it 503 (env TOLLGATE_MAX_UPGRADED)")
	fs.BoolVar(&c.trustForwarded, "trust-forwarded", false, "keep the client's X-Forwarded-For, -Host and -Proto: only behind a proxy that sets them (env TOLLGATE_TRUST_FORWARDED)")
	fs.Usage = func() {
		fmt.Fprint(e.stderr, gatewayUsage)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, e.getenv); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, usageError{"gateway: unexpected arguments: " + strings.Join(fs.Args(), " ")}
	}
	if *upstream == "" {
		return c, usageError{fmt.Sprintf("-upstream (env %s) is required", envFlags["upstream"])}
	}
	var err error
	if c.upstream, err = gateway.ParseUpstream(*upstream); err != nil {
		return c, usageError{fmt.Sprintf("-upstream: %v", err)}
	}
	if err := checkShared(); err != nil {
		return c, err
	}
	if err := positive("upstream-timeout", c.upstreamTimeout); err != nil {
		return c, err
	}
	if err := positive("upgrade-idle-timeout", c.upgradeIdle); err != nil {
		return c, err
	}
	if err := positive("max-upgraded", c.maxUpgraded); err != nil {
		return c, err
	}
	return c, nil
}

func gatewayCmd(ctx context.Context, e env, args []string) error {
	// Before the flags: --max-concurrency's default is read from GOMAXPROCS.
	was, raised := raiseProcs(os.Getenv)
	c, err := parseGateway(e, args)
	if err != nil {
		return err
	}
	s, err := start(ctx, e, c.serveConfig, was, raised, startOptions{
		bootstrap: func(st store.Store, addr string) error {
			return bootstrapKey(ctx, st, c.account, "http://"+addr+"/", e)
		},
	})
	if err != nil {
		return err
	}
	defer s.close()
	g, err := gateway.New(c.upstream, gateway.Options{
		Timeout:            c.upstreamTimeout,
		UpgradeIdleTimeout: c.upgradeIdle,
		MaxUpgraded:        c.maxUpgraded,
		TrustForwarded:     c.trustForwarded,
		Logger:             s.log,
	})
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	proxied := middleware.Chain(
		middleware.Auth(s.verifier, s.guard),
		middleware.RateLimit(middleware.RateLimitConfig{Store: s.limiter, Default: c.rateDefault, Headers: c.rateHeaders}),
	)(g)
	for _, m := range gatewayMethods {
		s.srv.Handle(m+" /", proxied)
	}

	s.log.Info("listening", "addr", s.l.Addr().String(), "upstream", gateway.Redacted(c.upstream), "database", redactDSN(c.database), "redis", redactDSN(c.redisURL))
	// http.Server.Shutdown neither closes nor waits for upgraded
	// connections (WebSockets): close them as the drain starts.
	return s.serve(ctx, func(bg context.Context) {
		<-bg.Done()
		cctx, cancel := context.WithTimeout(context.Background(), server.ShutdownTimeout)
		defer cancel()
		if err := g.CloseUpgraded(cctx); err != nil {
			s.log.Error("shutdown: upgraded connections did not end", "err", err)
		}
	})
}
