// Command loopserver serves one JSON route three ways, for the loopback
// throughput comparison in bench/loopback.sh:
//
//	-mode bare   the handler alone
//	-mode core   RequestID, Logger (access line per request), Recover, Router
//	-mode full   core plus Auth with a cached key and RateLimit (memory store)
//
// The access log goes to stderr through logjson, buffered as serve does.
// With -mode full it prints the API key to use on stdout.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/tollgate-dev/tollgate/auth"
	"github.com/tollgate-dev/tollgate/internal/api"
	"github.com/tollgate-dev/tollgate/logjson"
	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/ratelimit"
	"github.com/tollgate-dev/tollgate/store"
	"github.com/tollgate-dev/tollgate/store/sqlite"
)

var hello = []byte(`{"hello":"world"}` + "\n")

func helloHandler(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(hello)
}

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("loopserver", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8090", "listen address")
	mode := fs.String("mode", "bare", "bare, core or full")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile here until SIGTERM")
	if err := fs.Parse(args); err != nil {
		return err
	}
	logs := logjson.New(stderr, &logjson.Options{BufferSize: 32 << 10, FlushInterval: 200 * time.Millisecond})
	defer logs.Close()
	log := slog.New(logs)
	rt := middleware.NewRouter()
	var h http.Handler
	switch *mode {
	case "bare":
		h = http.HandlerFunc(helloHandler)
	case "core":
		rt.HandleFunc("GET /v1/hello", helloHandler)
		h = middleware.Chain(middleware.RequestID(nil), middleware.Logger(log, nil), middleware.Recover(log))(rt)
	case "full":
		dir, err := os.MkdirTemp("", "loopserver")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		st, err := sqlite.Open(ctx, filepath.Join(dir, "db"))
		if err != nil {
			return err
		}
		defer st.Close()
		acc, _, err := st.EnsureAccount(ctx, "bench")
		if err != nil {
			return err
		}
		key, err := api.CreateKey(ctx, st, acc.ID, api.KeyRequest{Name: "bench", Scopes: []string{"*"}, Rate: "1000000000/1s"})
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, key.Secret)
		v := auth.NewVerifier(store.AuthKeys(st))
		rl := middleware.RateLimit(middleware.RateLimitConfig{Store: ratelimit.NewMemoryStore(ratelimit.MemoryOptions{}), Default: ratelimit.Policy{Limit: 1e9, Window: time.Second}})
		rt.Handle("GET /v1/hello", middleware.Chain(middleware.Auth(v, nil), rl)(http.HandlerFunc(helloHandler)))
		h = middleware.Chain(middleware.RequestID(nil), middleware.Logger(log, nil), middleware.Recover(log))(rt)
	default:
		return fmt.Errorf("unknown mode %q", *mode)
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	srv := &http.Server{Addr: *addr, Handler: h, ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() { <-ctx.Done(); srv.Close() }()
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		return err
	}
	return nil
}
