// Package server assembles tollgate's HTTP server: the core middleware
// chain, the operational routes (/healthz, /readyz, /metrics) and the
// example API, behind an http.Server with timeouts and graceful shutdown.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tollgate-dev/tollgate/apierror"
	"github.com/tollgate-dev/tollgate/middleware"
)

// Timeouts and limits of the http.Server. They hold against slow clients:
// a client must send its headers within ReadHeaderTimeout and its body
// within ReadTimeout.
const (
	ReadHeaderTimeout = 5 * time.Second
	ReadTimeout       = 30 * time.Second
	WriteTimeout      = 60 * time.Second
	IdleTimeout       = 120 * time.Second
	// MaxHeaderBytes bounds a request's header block to 64 KiB: net/http
	// allows 4 KiB more than its MaxHeaderBytes, which the server is given
	// less by that much.
	MaxHeaderBytes  = 64 << 10
	ShutdownTimeout = 30 * time.Second
)

// headerSlack is what net/http adds to http.Server.MaxHeaderBytes.
const headerSlack = 4096

// DefaultBodyLimit is the largest request body accepted by default.
const DefaultBodyLimit = 1 << 20

// Checker reports whether a backing store is reachable, for /readyz.
type Checker interface {
	Ping(ctx context.Context) error
}

// Config is what New needs. Zero values take the defaults noted.
type Config struct {
	// Logger receives access lines and errors; nil discards.
	Logger *slog.Logger
	// Registry receives the metrics served on /metrics; nil makes one.
	Registry *prometheus.Registry
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// BodyLimit bounds request bodies; 0 means DefaultBodyLimit.
	BodyLimit int64
	// SuccessField adds "success" to every body tollgate writes.
	SuccessField bool
	// Checks are pinged by /readyz, by name.
	Checks map[string]Checker
	// Guards wrap every route registered with Handle (the API), outermost
	// first — maintenance mode, the concurrency limit, the request
	// deadline — but not /healthz, /readyz or /metrics, which must answer
	// while the API refuses.
	Guards []middleware.Middleware
	// Timeouts override the http.Server's timeouts; zero fields take the
	// package defaults.
	Timeouts Timeouts
}

// Timeouts are the http.Server's limits on slow clients, and Shutdown,
// how long Serve lets in-flight requests finish once its context ends.
type Timeouts struct {
	ReadHeader, Read, Write, Idle, Shutdown time.Duration
}

func (t Timeouts) orDefaults() Timeouts {
	def := func(d, v time.Duration) time.Duration {
		if d == 0 {
			return v
		}
		return d
	}
	return Timeouts{
		ReadHeader: def(t.ReadHeader, ReadHeaderTimeout),
		Read:       def(t.Read, ReadTimeout),
		Write:      def(t.Write, WriteTimeout),
		Idle:       def(t.Idle, IdleTimeout),
		Shutdown:   def(t.Shutdown, ShutdownTimeout),
	}
}

// Server is tollgate's HTTP server. Register API routes with Handle before
// calling Serve.
type Server struct {
	cfg    Config
	router *middleware.Router
	reg    *prometheus.Registry
}

// New returns a Server with the operational routes registered.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.BodyLimit == 0 {
		cfg.BodyLimit = DefaultBodyLimit
	}
	reg := cfg.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	s := &Server{cfg: cfg, router: middleware.NewRouter(), reg: reg}
	limit := middleware.BodyLimit(cfg.BodyLimit)
	s.router.Handle("GET /healthz", limit(http.HandlerFunc(s.healthz)))
	s.router.Handle("GET /readyz", limit(http.HandlerFunc(s.readyz)))
	s.router.Handle("GET /metrics", limit(promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})))
	return s
}

// Registry returns the metrics registry served on /metrics.
func (s *Server) Registry() *prometheus.Registry { return s.reg }

// Handle registers h, behind BodyLimit and the configured Guards, for a
// ServeMux pattern.
func (s *Server) Handle(pattern string, h http.Handler) {
	ms := append([]middleware.Middleware{middleware.BodyLimit(s.cfg.BodyLimit)}, s.cfg.Guards...)
	s.router.Handle(pattern, middleware.Chain(ms...)(h))
}

// Handler returns the whole chain: RequestID, Metrics, Logger, Recover,
// then the router, and BodyLimit on each route. BodyLimit runs once the
// router matched, so that a 413 is logged and counted under its route
// pattern, and a path no route matches is 404 whatever its body.
func (s *Server) Handler() http.Handler {
	ms := []middleware.Middleware{
		middleware.RequestID(s.cfg.Now),
		middleware.Metrics(s.reg, s.cfg.Now),
		middleware.Logger(s.cfg.Logger, s.cfg.Now),
		middleware.Recover(s.cfg.Logger),
	}
	if s.cfg.SuccessField {
		ms = append(ms, successField)
	}
	return middleware.Chain(ms...)(s.router)
}

func successField(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(apierror.WithOptions(r.Context(), apierror.Options{SuccessField: true})))
	})
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	body := `{"status":"ok"}` + "\n"
	if apierror.OptionsFrom(r.Context()).SuccessField {
		body = `{"success":true,"status":"ok"}` + "\n"
	}
	_, _ = w.Write([]byte(body))
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	for name, c := range s.cfg.Checks {
		if err := c.Ping(ctx); err != nil {
			apierror.Write(w, r, apierror.Wrap(fmt.Errorf("readyz: %s: %w", name, err), apierror.ServiceUnavailable, "A backing store is unreachable.").
				With("reason", "store_unavailable").With("store", name).WithRetryAfter(5*time.Second))
			return
		}
	}
	s.healthz(w, r)
}

// Serve serves on l until ctx is done, then shuts down gracefully: it
// stops accepting, lets in-flight requests finish (up to
// Timeouts.Shutdown, ShutdownTimeout by default), and returns. The start
// of the drain is logged at INFO; requests still running when it times
// out are cut (their connections closed), logged at ERROR.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	to := s.cfg.Timeouts.orDefaults()
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: to.ReadHeader,
		ReadTimeout:       to.Read,
		WriteTimeout:      to.Write,
		IdleTimeout:       to.Idle,
		MaxHeaderBytes:    MaxHeaderBytes - headerSlack,
		// "OPTIONS *" goes to the handler (the router answers it with the
		// envelope), not to net/http's own 200 outside the chain.
		DisableGeneralOptionsHandler: true,
		ErrorLog:                     slog.NewLogLogger(s.cfg.Logger.Handler(), slog.LevelWarn),
		BaseContext:                  func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return fmt.Errorf("server: serve: %w", err)
	case <-ctx.Done():
	}
	s.cfg.Logger.Info("shutting down: draining in-flight requests", "drain_timeout", to.Shutdown.String())
	sctx, cancel := context.WithTimeout(context.Background(), to.Shutdown)
	defer cancel()
	err := srv.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		// Shutdown leaves the connections it could not drain open: close
		// them, so that their clients see a cut response now rather than
		// whenever the process exits, and say so.
		s.cfg.Logger.Error("shutdown: drain timed out, in-flight requests cut", "drain_timeout", to.Shutdown.String())
		_ = srv.Close()
	}
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("server: shutdown: %w", err)
	}
	return nil
}
