// Command loopserver serves one JSON route five ways, for the loopback
// throughput comparison in bench/loopback.sh, each on its own port from
// one process (bare on -port, core on -port+1, full on -port+2, then
// hdr and hdrs), so that a load generator can alternate between them in
// short slices:
//
//	bare   the handler alone
//	core   RequestID, Logger (access line per request), Recover, Router
//	full   core plus Auth with a cached key and RateLimit (memory store)
//	hdr    the handler plus the one response header core adds
//	       (X-Request-Id), with a constant value and no middleware
//	hdrs   the handler plus the four response headers full adds
//	       (X-Request-Id and X-RateLimit-*), constant, no middleware
//
// hdr and hdrs are floors: what net/http alone charges for writing the
// headers the error contract requires, which no middleware can avoid.
//
// The access log goes to stderr through logjson, buffered as serve does.
// It prints the API key for full on stdout, then "ready".
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
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

// Constant header values for the floors, shared by every response (net/http
// copies the header map before writing it and never changes the values).
var (
	idValue        = []string{"01JDZ8Y2V6Q3N5K7M9P1R3T5W7"}
	limitValue     = []string{"1000000000"}
	remainingValue = []string{"999999999"}
	resetValue     = []string{"1795000000"}
)

// withHeaders returns helloHandler setting n of the contract's headers
// first (1: X-Request-Id; 4: and X-RateLimit-*), the way the middleware
// sets them: canonical keys, values without allocating.
func withHeaders(n int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["X-Request-Id"] = idValue
		if n > 1 {
			h["X-Ratelimit-Limit"] = limitValue
			h["X-Ratelimit-Remaining"] = remainingValue
			h["X-Ratelimit-Reset"] = resetValue
		}
		helloHandler(w, r)
	}
}

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("loopserver", flag.ContinueOnError)
	port := fs.Int("port", 18090, "port of bare; core, full, hdr and hdrs listen on the next four")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile here until SIGTERM")
	if err := fs.Parse(args); err != nil {
		return err
	}
	logs := logjson.New(stderr, &logjson.Options{BufferSize: 32 << 10, FlushInterval: 200 * time.Millisecond})
	defer logs.Close()
	log := slog.New(logs)

	coreRt := middleware.NewRouter()
	coreRt.HandleFunc("GET /v1/hello", helloHandler)
	core := middleware.Chain(middleware.RequestID(nil), middleware.Logger(log, nil), middleware.Recover(log))(coreRt)

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
	v := auth.NewVerifier(store.AuthKeys(st))
	rl := middleware.RateLimit(middleware.RateLimitConfig{Store: ratelimit.NewMemoryStore(ratelimit.MemoryOptions{}), Default: ratelimit.Policy{Limit: 1e9, Window: time.Second}})
	fullRt := middleware.NewRouter()
	fullRt.Handle("GET /v1/hello", middleware.Chain(middleware.Auth(v, nil), rl)(http.HandlerFunc(helloHandler)))
	full := middleware.Chain(middleware.RequestID(nil), middleware.Logger(log, nil), middleware.Recover(log))(fullRt)

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
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, os.Interrupt)
	defer stop()
	handlers := []http.Handler{http.HandlerFunc(helloHandler), core, full, withHeaders(1), withHeaders(4)}
	servers := make([]*http.Server, 0, len(handlers))
	listeners := make([]net.Listener, 0, len(handlers))
	for i, h := range handlers {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *port+i))
		if err != nil {
			return err
		}
		listeners = append(listeners, ln)
		servers = append(servers, &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second})
	}
	fmt.Fprintln(stdout, key.Secret)
	fmt.Fprintln(stdout, "ready")
	errs := make(chan error, len(servers))
	for i, srv := range servers {
		go func() { errs <- srv.Serve(listeners[i]) }()
	}
	select {
	case <-ctx.Done():
	case err := <-errs:
		return err
	}
	for _, srv := range servers {
		srv.Close()
	}
	return nil
}
