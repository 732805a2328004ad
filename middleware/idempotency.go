package middleware

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/tollgate-dev/tollgate/apierror"
	"github.com/tollgate-dev/tollgate/auth"
	"github.com/tollgate-dev/tollgate/store"
)

// Idempotency headers.
const (
	// HeaderIdempotencyKey carries the client's key on POST and PATCH.
	HeaderIdempotencyKey = "Idempotency-Key"
	// HeaderIdempotentReplayed is "true" on a replayed response.
	HeaderIdempotentReplayed = "Idempotent-Replayed"
)

// Idempotency defaults.
const (
	// MaxIdempotencyKeyLen is the longest key accepted, in bytes.
	MaxIdempotencyKeyLen = 255
	// DefaultIdempotencyLease is how long a claim holds without renewal.
	DefaultIdempotencyLease = 30 * time.Second
	// DefaultIdempotencyRetention is how long a record is kept.
	DefaultIdempotencyRetention = 24 * time.Hour
	// DefaultIdempotencyMaxResponse bounds the response body stored.
	DefaultIdempotencyMaxResponse = 1 << 20
)

// storeTimeout bounds the store calls made after the handler ran, which
// use a context that outlives the client's.
const storeTimeout = 5 * time.Second

// DefaultReplayHeaders are the response headers stored with a result and
// replayed with it.
var DefaultReplayHeaders = []string{"Content-Type", "Location", "Cache-Control"}

// IdempotencyOptions configure Idempotency. The zero value takes the
// defaults noted.
type IdempotencyOptions struct {
	// Lease is how long a claim stays valid without renewal; a request
	// arriving after it ended takes the claim over (the first holder is
	// presumed crashed). While the handler runs, the lease is renewed
	// every Lease/3, so a slow handler keeps its claim; only a dead one
	// loses it. 0 means DefaultIdempotencyLease.
	Lease time.Duration
	// Retention is how long a key is remembered from its first use; 0
	// means DefaultIdempotencyRetention. It must exceed Lease: a
	// Retention of Lease or less is raised to 2×Lease, so a record is not
	// forgotten while its first claim may still be held. (An in-flight
	// record is kept past its retention for as long as its lease is live,
	// so a handler that runs longer than Retention keeps its claim.)
	Retention time.Duration
	// ReplayHeaders lists the response headers stored and replayed; nil
	// means DefaultReplayHeaders.
	ReplayHeaders []string
	// MaxResponseBytes bounds the body stored for replay; a larger
	// response is sent but not stored (the claim is released and logged).
	// 0 means DefaultIdempotencyMaxResponse.
	MaxResponseBytes int
	// Logger receives store failures that happen after the response was
	// sent; nil discards.
	Logger *slog.Logger

	// afterFunc schedules lease renewals; nil means time.AfterFunc. Tests
	// set it (export_test.go) to fire renewals on an injected clock.
	afterFunc func(d time.Duration, f func()) leaseTimer
}

// leaseTimer is the part of *time.Timer that lease renewal uses.
type leaseTimer interface {
	Reset(d time.Duration) bool
	Stop() bool
}

// IdempotencyStores reports whether a handler's answer with status is
// final, and so stored and replayed to every retry with the same key. It
// is the rule of docs/idempotency.md:
//
//   - 2xx, 3xx and 4xx results are stored: the request ran and its
//     outcome (created, not found, already exists, unprocessable) will
//     not change on a retry;
//   - except 400, 401, 403, 413, 415 and 429: the request was refused
//     before it ran (a malformed or invalid body, a missing scope, a
//     limit), and the client is expected to fix it and send it again with
//     the same key — Stripe does not save these either;
//   - 5xx is not stored: the claim is released so that the retry runs
//     again. tollgate's handlers answer 5xx only when their write did not
//     happen (the store failed), so running again is the right outcome;
//     a stored 500 would repeat a transient failure for 24 hours.
//
// A handler can also keep a 4xx of its own from being stored (DontStore).
func IdempotencyStores(status int) bool {
	switch status {
	case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden,
		http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType, http.StatusTooManyRequests:
		return false
	}
	return status >= 200 && status < 500
}

// Idempotency makes POST and PATCH requests that carry an Idempotency-Key
// safe to retry. It runs after Auth (keys are scoped by the authenticated
// account), after rate limiting and after RequireScopes, so 401, 429 and
// 403 answers are never stored, and a key without the route's scope is
// refused before it could see another key's stored answer. Other methods pass through, key or not; so do requests without
// a key.
//
// The key must be 1 to MaxIdempotencyKeyLen printable ASCII characters,
// sent once; otherwise the answer is 400 INVALID_REQUEST with
// details.field "Idempotency-Key". The body is read once (within any
// BodyLimit already in the chain) and handed to next unchanged. The
// request's fingerprint is its method, path with query, and the SHA-256
// of its body. Then:
//
//   - the first request claims the key atomically and runs next; its
//     answer is stored when IdempotencyStores says so, otherwise the
//     claim is released;
//   - a request whose fingerprint differs from the first one's gets 422
//     IDEMPOTENCY_KEY_REUSED;
//   - while the first is running: 409 IDEMPOTENCY_KEY_IN_USE with
//     Retry-After: 1;
//   - once it finished: its status, body (or the one the handler gave
//     SetReplayBody) and ReplayHeaders, replayed, with
//     Idempotent-Replayed: true.
//
// A store failure before next runs (the claim) is 503
// SERVICE_UNAVAILABLE, details.reason "store_unavailable", and next does
// not run. A store failure after next answered cannot change the answer,
// which was already sent; it is logged to Logger and leaves the record in
// flight, held by nobody:
//
//   - a failed completion stores nothing: retries get 409 until the lease
//     ends (at most Lease after the last renewal), then a retry with the
//     same fingerprint takes the claim over and next runs again — the
//     work is done twice;
//   - a failed release likewise blocks the key with 409 for up to Lease,
//     after which a retry runs as it would have at once.
//
// A request without an authenticated principal (a chain without Auth in
// front) is 401. The returned middleware is safe for concurrent use.
func Idempotency(st store.Idempotency, opts IdempotencyOptions) Middleware {
	if opts.Lease <= 0 {
		opts.Lease = DefaultIdempotencyLease
	}
	if opts.Retention <= 0 {
		opts.Retention = DefaultIdempotencyRetention
	}
	if opts.Retention <= opts.Lease {
		opts.Retention = 2 * opts.Lease
	}
	if opts.ReplayHeaders == nil {
		opts.ReplayHeaders = DefaultReplayHeaders
	}
	if opts.MaxResponseBytes <= 0 {
		opts.MaxResponseBytes = DefaultIdempotencyMaxResponse
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.afterFunc == nil {
		opts.afterFunc = func(d time.Duration, f func()) leaseTimer { return time.AfterFunc(d, f) }
	}
	replay := make([]string, len(opts.ReplayHeaders))
	for i, h := range opts.ReplayHeaders {
		replay[i] = http.CanonicalHeaderKey(h)
	}
	opts.ReplayHeaders = replay
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost && r.Method != http.MethodPatch {
				next.ServeHTTP(w, r)
				return
			}
			vals := r.Header.Values(HeaderIdempotencyKey)
			if len(vals) == 0 {
				next.ServeHTTP(w, r)
				return
			}
			key, err := checkIdempotencyKey(vals)
			if err != nil {
				apierror.Write(w, r, err)
				return
			}
			p, ok := auth.PrincipalFrom(r.Context())
			if !ok {
				apierror.Write(w, r, unauthorized("missing", "An API key is required."))
				return
			}
			body, err := readBody(r)
			if err != nil {
				apierror.Write(w, r, err)
				return
			}
			fp := store.NewFingerprint(r.Method, requestTarget(r), body)
			perKey, _ := r.Context().Value(perKeyCtx{}).(bool)
			if perKey {
				fp = fp.ForKey(p.KeyID) // the calling key is part of what must match
			}
			rec, claimed, err := st.ClaimIdempotencyKey(r.Context(), store.IdempotencyClaim{
				AccountID: p.AccountID, Key: key, Fingerprint: fp, Lease: opts.Lease, Retention: opts.Retention,
			})
			if err != nil {
				apierror.Write(w, r, storeFailure(r.Context(), err, "The idempotency store is unavailable.", "store_unavailable"))
				return
			}
			if !claimed {
				answerExisting(w, r, rec, fp, perKey)
				return
			}
			run(w, r, next, st, &opts, rec)
		})
	}
}

// checkIdempotencyKey returns the key of the header's values, or the 400
// that refuses it.
func checkIdempotencyKey(vals []string) (string, error) {
	refuse := func(reason string) error {
		return apierror.New(apierror.InvalidRequest, "The Idempotency-Key header must be one value of 1 to 255 printable ASCII characters.").
			With("field", HeaderIdempotencyKey).With("reason", reason)
	}
	if len(vals) > 1 {
		return "", refuse("repeated header")
	}
	k := vals[0]
	if k == "" {
		return "", refuse("empty")
	}
	if len(k) > MaxIdempotencyKeyLen {
		return "", refuse("longer than 255 characters")
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return "", refuse("not printable ASCII")
		}
	}
	return k, nil
}

// readBody reads r's body once and puts a replayable copy back.
func readBody(r *http.Request) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	body, err := readAll(r)
	if err != nil {
		return nil, err
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	return body, nil
}

// requestTarget is the path and query a fingerprint covers, in printable
// ASCII: a query sent with raw bytes outside it (unescaped by the client,
// perhaps not UTF-8, which PostgreSQL's text refuses) has them
// percent-encoded, as the query means the same either way.
func requestTarget(r *http.Request) string {
	if r.URL.RawQuery == "" {
		return r.URL.EscapedPath()
	}
	return r.URL.EscapedPath() + "?" + escapeRawBytes(r.URL.RawQuery)
}

// escapeRawBytes percent-encodes the bytes of s outside printable ASCII.
func escapeRawBytes(s string) string {
	const hex = "0123456789ABCDEF"
	var b []byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 0x20 <= c && c <= 0x7e {
			if b != nil {
				b = append(b, c)
			}
			continue
		}
		if b == nil {
			b = append(make([]byte, 0, len(s)+8), s[:i]...)
		}
		b = append(b, '%', hex[c>>4], hex[c&15])
	}
	if b == nil {
		return s
	}
	return string(b)
}

// answerExisting answers a request whose key is held by another: 422 for
// another request, the stored result when there is one, 409 otherwise.
// perKey says the key belongs to the calling API key (IdempotencyPerKey).
func answerExisting(w http.ResponseWriter, r *http.Request, rec store.IdempotencyRecord, fp store.Fingerprint, perKey bool) {
	switch {
	case rec.Fingerprint != fp:
		msg := "This Idempotency-Key was first used with another method, path or body; use a new key for a new request."
		if perKey {
			msg = "This Idempotency-Key was first used with another method, path or body, or by another API key; use a new key for a new request."
		}
		apierror.Write(w, r, apierror.New(apierror.IdempotencyKeyReused, msg))
	case rec.State == store.IdempotencyComplete && rec.Response != nil:
		h := w.Header()
		for k, vs := range rec.Response.Header {
			h[k] = append([]string(nil), vs...)
		}
		h.Set(HeaderIdempotentReplayed, "true")
		if len(rec.Response.Body) > 0 {
			h.Set("Content-Length", strconv.Itoa(len(rec.Response.Body)))
		}
		w.WriteHeader(rec.Response.Status)
		if len(rec.Response.Body) > 0 {
			_, _ = w.Write(rec.Response.Body)
		}
	default:
		// apierror.Write adds Retry-After: 1 to every IDEMPOTENCY_KEY_IN_USE.
		apierror.Write(w, r, apierror.New(apierror.IdempotencyKeyInUse,
			"A request with this Idempotency-Key is still in progress; retry after the time in Retry-After."))
	}
}

// run serves a request that holds the claim rec, then stores its answer
// or releases the claim. A panic in next releases the claim and goes on.
func run(w http.ResponseWriter, r *http.Request, next http.Handler, st store.Idempotency, opts *IdempotencyOptions, rec store.IdempotencyRecord) {
	// The logger is for failures only: made when one happens.
	log := func() *slog.Logger {
		return opts.Logger.With(slog.String("request_id", RequestIDFrom(r.Context())), slog.String("account_id", rec.AccountID))
	}
	// After the handler, the client may be gone; the record must still be
	// settled.
	bg := context.WithoutCancel(r.Context())
	settle := func(op string, f func(ctx context.Context) error) {
		ctx, cancel := context.WithTimeout(bg, storeTimeout)
		defer cancel()
		if err := f(ctx); err != nil {
			log().LogAttrs(ctx, slog.LevelError, "idempotency: "+op+" failed", slog.String("err", err.Error()))
		}
	}
	release := func(ctx context.Context) error {
		return st.ReleaseIdempotencyKey(ctx, rec.AccountID, rec.Key, rec.Token)
	}

	cw := &captureWriter{ResponseWriter: w, keep: opts.ReplayHeaders, max: opts.MaxResponseBytes}
	lease := keepLease(bg, st, rec, opts.Lease, opts.afterFunc, log)
	finished := false
	defer func() {
		lease.stop()
		if !finished { // next panicked
			settle("release", release)
		}
	}()
	next.ServeHTTP(cw, r)
	finished = true
	lease.stop()

	status := cw.status
	if status == 0 { // nothing written: net/http sends 200
		status = http.StatusOK
		cw.snapshot()
	}
	switch {
	case !IdempotencyStores(status) || cw.noStore && status/100 == 4:
		settle("release", release)
	case cw.overflow:
		log().Warn("idempotency: response too large to store; key released", slog.Int("limit_bytes", opts.MaxResponseBytes))
		settle("release", release)
	default:
		body := cw.buf.Bytes()
		if cw.replaySet && status/100 == 2 {
			body = cw.replay
		}
		settle("complete", func(ctx context.Context) error {
			return st.CompleteIdempotencyKey(ctx, rec.AccountID, rec.Key, rec.Token,
				store.StoredResponse{Status: status, Header: cw.header, Body: body})
		})
	}
}

// SetReplayBody sets the body that Idempotency stores, and replays to
// every retry with the same key, in place of the body w sends: for a 2xx
// answer that carries a secret shown once (a new API key), which must
// never be stored or shown again. Call it before writing the response. If
// the handler then answers anything but 2xx (an error), that answer is
// stored as it was sent.
// w is the handler's ResponseWriter, or one wrapping it (through an
// Unwrap method); outside Idempotency it does nothing.
func SetReplayBody(w http.ResponseWriter, body []byte) {
	if cw := captureOf(w); cw != nil {
		cw.replay, cw.replaySet = body, true
	}
}

// DontStore makes Idempotency release the key instead of storing the 4xx
// answer w sends, as for a 400 (an answer of another class is stored or
// not by IdempotencyStores as usual): for a refusal made from the request alone,
// before any work (a 422 for a rule between members of the body), which a
// client should be able to fix and send again with the same key. w is the
// handler's ResponseWriter, or one wrapping it; outside Idempotency it
// does nothing.
func DontStore(w http.ResponseWriter) {
	if cw := captureOf(w); cw != nil {
		cw.noStore = true
	}
}

// captureOf returns the captureWriter w is or wraps, or nil.
func captureOf(w http.ResponseWriter) *captureWriter {
	for {
		switch x := w.(type) {
		case *captureWriter:
			return x
		case interface{ Unwrap() http.ResponseWriter }:
			w = x.Unwrap()
		default:
			return nil
		}
	}
}

// IdempotencyPerKey marks the requests it passes on so that Idempotency,
// after it, scopes their Idempotency-Key to the calling API key rather
// than to its account: the same key and body from another API key of the
// account is 422 IDEMPOTENCY_KEY_REUSED, not a replay. For routes whose
// handler checks the calling key itself (what a key may grant), whose
// answer another key must not get without those checks.
func IdempotencyPerKey(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), perKeyCtx{}, true)))
	})
}

type perKeyCtx struct{}

// leaseKeeper renews a claim's lease while its handler runs.
type leaseKeeper struct {
	mu      sync.Mutex
	t       leaseTimer
	stopped bool
}

func keepLease(ctx context.Context, st store.Idempotency, rec store.IdempotencyRecord, lease time.Duration,
	afterFunc func(time.Duration, func()) leaseTimer, log func() *slog.Logger) *leaseKeeper {
	every := max(lease/3, time.Millisecond)
	k := &leaseKeeper{}
	beat := func() {
		c, cancel := context.WithTimeout(ctx, every)
		err := st.ExtendIdempotencyLease(c, rec.AccountID, rec.Key, rec.Token, lease)
		cancel()
		k.mu.Lock()
		defer k.mu.Unlock()
		if k.stopped {
			return
		}
		if err != nil {
			log().Warn("idempotency: lease renewal failed", slog.String("err", err.Error()))
			if errors.Is(err, store.ErrConflict) {
				return // taken over: nothing left to renew
			}
		}
		k.t.Reset(every)
	}
	k.mu.Lock()
	k.t = afterFunc(every, beat)
	k.mu.Unlock()
	return k
}

func (k *leaseKeeper) stop() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.stopped = true
	k.t.Stop()
}

// captureWriter passes a response through and keeps a copy of its status,
// selected headers and body (up to max bytes) for storage.
type captureWriter struct {
	http.ResponseWriter
	keep     []string
	max      int
	status   int
	header   map[string][]string
	buf      bytes.Buffer
	overflow bool
	// noStore releases the key instead of storing the answer (DontStore).
	noStore bool
	// replay, when replaySet, is stored instead of buf (SetReplayBody).
	replay    []byte
	replaySet bool
}

func (w *captureWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
		w.snapshot()
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *captureWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
		w.snapshot()
	}
	if !w.overflow {
		if w.buf.Len()+len(p) > w.max {
			w.overflow = true
			w.buf = bytes.Buffer{}
		} else {
			w.buf.Write(p)
		}
	}
	return w.ResponseWriter.Write(p)
}

// snapshot keeps the selected headers as they are when the status is sent.
func (w *captureWriter) snapshot() {
	h := w.ResponseWriter.Header()
	w.header = make(map[string][]string, len(w.keep))
	for _, k := range w.keep {
		if vs, ok := h[k]; ok {
			w.header[k] = append([]string(nil), vs...)
		}
	}
}

// Unwrap lets http.ResponseController and apierror reach the underlying
// writer.
func (w *captureWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush implements http.Flusher when the underlying writer does.
func (w *captureWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
		w.snapshot()
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// PurgeIdempotencyKeys deletes the idempotency records whose retention
// ended from st, every interval, until ctx is done. Failures are logged
// to l (nil discards) and tried again at the next tick. Run it in its own
// goroutine, one per process (several processes purging one database is
// harmless).
func PurgeIdempotencyKeys(ctx context.Context, st store.Idempotency, every time.Duration, l *slog.Logger) {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := st.PurgeIdempotencyKeys(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			l.Warn("idempotency: purge failed", slog.String("err", err.Error()))
		case n > 0:
			l.Debug("idempotency: purged expired keys", slog.Int64("deleted", n))
		}
	}
}
