package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strings"

	"github.com/tollgate-dev/tollgate/client"
)

const callUsage = `usage: tollgate call [-X METHOD] PATH [-d JSON|@file] [--key KEY] [--base URL] [-v]

Call the tollgate API with the Go client's retries: 429, 5xx and connection
errors are retried (3 attempts, waiting as long as the server says, capped
at 30s); POST and PATCH carry an Idempotency-Key so a retry cannot apply
twice. The response body goes to stdout; an error's code, message, details
and request id go to stderr.

Flags may come before or after PATH.

  -X METHOD    HTTP method (default GET, or POST when -d is given)
  -d DATA      request body: JSON, or @file to read it from a file
  --key KEY    API key (default $TOLLGATE_KEY)
  --base URL   server (default $TOLLGATE_URL, else http://localhost:8080)
  -v           show each attempt and each wait on stderr

Exit status: 0 success, 1 the API refused the request (4xx), 2 usage,
3 server error (5xx), network failure after retries, or a 3xx not followed,
130 interrupted (SIGINT or SIGTERM).

Examples:
  tollgate call /v1/leads
  tollgate call -X POST /v1/leads -d '{"name":"Ada"}'
  tollgate call /v1/sessions/ses_123 -X PATCH -d @patch.json -v
`

// Exit statuses of tollgate call.
const (
	callOK          = 0
	callRefused     = 1
	callUsageError  = 2
	callServerError = 3
	// callInterrupted is the shell's status for a command ended by SIGINT
	// (128+2), used for SIGTERM too: the call was cancelled, which says
	// nothing of the server.
	callInterrupted = 130
)

// defaultBaseURL is where tollgate call goes without --base or TOLLGATE_URL.
const defaultBaseURL = "http://localhost:8080"

// callCmd runs "tollgate call" and returns its exit status.
func callCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	return runCall(ctx, args, getenv, stdout, stderr)
}

// runCall is callCmd with extra client options, for tests (an injected
// clock).
func runCall(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, opts ...client.Option) int {
	fs := flag.NewFlagSet("call", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	method := fs.String("X", "", "")
	data := fs.String("d", "", "")
	key := fs.String("key", "", "")
	base := fs.String("base", "", "")
	verbose := fs.Bool("v", false, "")

	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "tollgate call: "+format+"\n\n", a...)
		fmt.Fprint(stderr, callUsage)
		return callUsageError
	}

	// Flags may come before and after PATH: parse, take a positional
	// argument, parse the rest again.
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprint(stdout, callUsage)
				return callOK
			}
			return usageErr("%v", err)
		}
		if fs.NArg() == 0 {
			break
		}
		if n := len(args) - fs.NArg(); n > 0 && args[n-1] == "--" {
			// After "--" everything is an argument, flag-like or not.
			pos = append(pos, fs.Args()...)
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) != 1 {
		if len(pos) == 0 {
			return usageErr("missing PATH")
		}
		return usageErr("want one PATH, got %d arguments: %s", len(pos), strings.Join(pos, " "))
	}
	path := pos[0]
	if strings.Contains(path, "://") {
		return usageErr("PATH %q is a URL; give the path and set the server with --base", path)
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	if _, err := url.Parse(path); err != nil {
		return usageErr("PATH %s: %v", printable(path), errors.Unwrap(err))
	}

	var body []byte
	if *data != "" {
		body = []byte(*data)
		if name, ok := strings.CutPrefix(*data, "@"); ok {
			b, err := os.ReadFile(name)
			if err != nil {
				return usageErr("-d: %v", err)
			}
			body = b
		}
		if !json.Valid(body) {
			return usageErr("-d: the body is not valid JSON")
		}
	}
	m := strings.ToUpper(*method)
	if m == "" {
		m = "GET"
		if body != nil {
			m = "POST"
		}
	}
	if !isToken(m) {
		return usageErr("-X %q is not an HTTP method", *method)
	}

	k := firstNonEmpty(*key, getenv("TOLLGATE_KEY"))
	baseURL := firstNonEmpty(*base, getenv("TOLLGATE_URL"), defaultBaseURL)
	copts := []client.Option{client.WithUserAgent("tollgate-call")}
	if k != "" {
		copts = append(copts, client.WithAPIKey(k))
	}
	if *verbose {
		copts = append(copts, client.WithLogger(verboseLogger(stderr)))
	}
	c, err := client.New(baseURL, append(copts, opts...)...)
	if err != nil {
		return usageErr("--base: %v", err)
	}

	resp, err := c.Do(ctx, m, path, body)
	if err != nil {
		return printCallError(stderr, err)
	}
	if len(resp.Body) > 0 {
		stdout.Write(resp.Body)
		if resp.Body[len(resp.Body)-1] != '\n' {
			io.WriteString(stdout, "\n")
		}
	}
	if *verbose {
		fmt.Fprintf(stderr, "%d after %d attempt(s)\n", resp.StatusCode, resp.Attempts)
	}
	return callOK
}

// printCallError writes what a person needs to act on err and returns the
// exit status: 1 for a 4xx, 3 for a 5xx or a failure without a response.
func printCallError(stderr io.Writer, err error) int {
	var ce *client.Error
	if !errors.As(err, &ce) {
		fmt.Fprintf(stderr, "tollgate call: %v\n", err)
		return callRefused
	}
	a := ce.APIError()
	if a == nil {
		fmt.Fprintf(stderr, "tollgate call: %s %s: %s\n", ce.Method, ce.Path, printable(ce.Err.Error()))
		fmt.Fprintf(stderr, "  attempts: %d (%s)\n", ce.Attempts, ce.Stop)
		if errors.Is(err, context.Canceled) {
			return callInterrupted
		}
		return callServerError
	}
	// The server's words reach a terminal: printable, so that no escape
	// sequence a server or proxy sends can act on it.
	fmt.Fprintf(stderr, "tollgate call: %d %s: %s\n", a.HTTPStatus(), printable(string(a.Code)), printable(a.Message))
	details := map[string]any{}
	for k, v := range a.Details {
		if k != "request_id" {
			details[k] = v
		}
	}
	if len(details) > 0 {
		b, _ := json.Marshal(details)
		fmt.Fprintf(stderr, "  details: %s\n", printable(string(b)))
	}
	if id := a.RequestID(); id != "" {
		fmt.Fprintf(stderr, "  request_id: %s\n", printable(id))
	}
	if ce.RetryAfter > 0 {
		fmt.Fprintf(stderr, "  retry_after: %s\n", ce.RetryAfter)
	}
	fmt.Fprintf(stderr, "  attempts: %d (%s)\n", ce.Attempts, ce.Stop)
	if a.HTTPStatus() >= 500 {
		return callServerError
	}
	return callRefused
}

// verboseLogger shows the client's debug log (each attempt, each wait) as
// one line per event, without time and level.
func verboseLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey) {
				return slog.Attr{}
			}
			return a
		},
	}))
}

// isToken reports whether s is an HTTP token (RFC 9110, section 5.6.2),
// as a method must be.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
