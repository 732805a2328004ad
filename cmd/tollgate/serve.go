package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/tollgate-dev/tollgate/auth"
	"github.com/tollgate-dev/tollgate/internal/api"
	"github.com/tollgate-dev/tollgate/internal/server"
	"github.com/tollgate-dev/tollgate/logjson"
	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/ratelimit"
	"github.com/tollgate-dev/tollgate/store"
)

func serveCmd(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	addr := fs.String("addr", "localhost:8080", "listen address (env TOLLGATE_ADDR)")
	database := fs.String("database", "tollgate.db", "SQLite file path or postgres:// URL (env TOLLGATE_DATABASE)")
	level := fs.String("log-level", "info", "log level: debug, info, warn, error (env TOLLGATE_LOG_LEVEL)")
	bodyLimit := fs.Int64("body-limit", server.DefaultBodyLimit, "largest request body in bytes (env TOLLGATE_BODY_LIMIT)")
	account := fs.String("account", "default", "account created on first start (env TOLLGATE_ACCOUNT)")
	successField := fs.Bool("success-field", false, `add "success": true|false to every body (env TOLLGATE_SUCCESS_FIELD)`)
	fs.Usage = func() {
		fmt.Fprint(e.stderr, "usage: tollgate serve [flags]\n\nRuns the API server until SIGINT or SIGTERM, then drains in-flight requests.\nFlags override environment variables, which override defaults.\n\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, e.getenv); err != nil {
		return err
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		return usageError{fmt.Sprintf("-log-level: %v", err)}
	}
	logs := logjson.New(e.stderr, &logjson.Options{Level: lvl, BufferSize: 32 << 10, FlushInterval: 200 * time.Millisecond})
	defer logs.Close()
	log := slog.New(logs)

	st, err := openStore(ctx, *database)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := bootstrap(ctx, st, *account, e); err != nil {
		return err
	}

	verifier := auth.NewVerifier(store.AuthKeys(st))
	guard := middleware.NewGuard(ratelimit.NewMemoryStore(ratelimit.MemoryOptions{}), ratelimit.Policy{Name: "auth_failures", Limit: 20, Window: time.Minute}, nil)
	srv := server.New(server.Config{
		Logger:       log,
		BodyLimit:    *bodyLimit,
		SuccessField: *successField,
		Checks:       map[string]server.Checker{"database": st},
	})
	api.New(api.Config{Store: st, Verifier: verifier, Guard: guard, Logger: log}).Routes(srv.Handle)

	l, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	log.Info("listening", "addr", l.Addr().String(), "database", redactDSN(*database))
	flushed := make(chan error, 1)
	go func() { flushed <- verifier.Run(ctx, 10*time.Second) }()
	err = srv.Serve(ctx, l)
	if ferr := <-flushed; ferr != nil {
		log.Warn("last_used_at flush failed", "err", ferr)
	}
	log.Info("stopped")
	return err
}

// bootstrap creates the account on an empty database and prints an admin
// key (scope *) once.
func bootstrap(ctx context.Context, st store.Store, account string, e env) error {
	acc, created, err := st.EnsureAccount(ctx, account)
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	if !created {
		return nil
	}
	ck, err := api.CreateKey(ctx, st, acc.ID, api.KeyRequest{Name: "admin", Scopes: []string{auth.ScopeAll}})
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	fmt.Fprintf(e.stdout, `
==========================================================================
 tollgate: created account %q and its admin API key (scope *).
 This key is shown ONCE and never stored in plaintext. Save it now:

   %s

 Use it:  curl -H "Authorization: Bearer $KEY" localhost:8080/v1/keys
==========================================================================

`, acc.Name, ck.Secret)
	return nil
}
