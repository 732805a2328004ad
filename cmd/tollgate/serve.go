package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/tollgate-dev/tollgate/internal/server"
	"github.com/tollgate-dev/tollgate/logjson"
)

func serveCmd(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	addr := fs.String("addr", "localhost:8080", "listen address (env TOLLGATE_ADDR)")
	database := fs.String("database", "tollgate.db", "SQLite file path or postgres:// URL (env TOLLGATE_DATABASE)")
	level := fs.String("log-level", "info", "log level: debug, info, warn, error (env TOLLGATE_LOG_LEVEL)")
	bodyLimit := fs.Int64("body-limit", server.DefaultBodyLimit, "largest request body in bytes (env TOLLGATE_BODY_LIMIT)")
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

	srv := server.New(server.Config{
		Logger:       log,
		BodyLimit:    *bodyLimit,
		SuccessField: *successField,
	})
	_ = database
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	log.Info("listening", "addr", l.Addr().String(), "database", *database)
	err = srv.Serve(ctx, l)
	log.Info("stopped")
	return err
}
