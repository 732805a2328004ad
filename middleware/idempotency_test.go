package middleware_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tollgate-dev/tollgate/apierror"
	"github.com/tollgate-dev/tollgate/auth"
	"github.com/tollgate-dev/tollgate/internal/testenv"
	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/ratelimit"
	"github.com/tollgate-dev/tollgate/store"
	"github.com/tollgate-dev/tollgate/store/sqlite"
)

// idemEnv is Idempotency over a real SQLite store, in front of test
// handlers that count their runs.
type idemEnv struct {
	t       *testing.T
	st      *sqlite.DB
	clock   *testenv.Clock
	acct    store.Account
	other   store.Account
	runs    atomic.Int64
	h       http.Handler
	logs    *testenv.Buffer
	started chan struct{} // /block sends when a run starts
	release chan struct{} // the first /block run waits for it to close
}

const testBodyLimit = 1024

func newIdemEnv(t *testing.T) *idemEnv {
	t.Helper()
	return newIdemEnvWith(t, middleware.IdempotencyOptions{})
}

// newIdemEnvWith is newIdemEnv with opts.
func newIdemEnvWith(t *testing.T, opts middleware.IdempotencyOptions) *idemEnv {
	t.Helper()
	c := testenv.NewClock(time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC))
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "idem.db"), sqlite.WithClock(c.Now))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	acct, err := st.CreateAccount(t.Context(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	other, err := st.CreateAccount(t.Context(), "other")
	if err != nil {
		t.Fatal(err)
	}
	e := &idemEnv{t: t, st: st, clock: c, acct: acct, other: other, logs: &testenv.Buffer{},
		started: make(chan struct{}, 8), release: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("/things", e.things)
	mux.HandleFunc("/other", e.things)
	mux.HandleFunc("/status/{code}", e.status)
	mux.HandleFunc("/block", func(w http.ResponseWriter, r *http.Request) {
		n := e.runs.Add(1)
		e.started <- struct{}{}
		if n == 1 {
			<-e.release
		}
		writeRun(w, 201, n, nil)
	})
	mux.HandleFunc("/panic", func(w http.ResponseWriter, r *http.Request) {
		e.runs.Add(1)
		panic("boom")
	})
	mux.HandleFunc("/silent", func(w http.ResponseWriter, r *http.Request) { e.runs.Add(1) })
	mux.HandleFunc("/secret-refused", func(w http.ResponseWriter, r *http.Request) {
		e.runs.Add(1)
		middleware.SetReplayBody(w, []byte(`{"secret":null}`+"\n"))
		apierror.Write(w, r, apierror.New(apierror.Conflict, "Taken."))
	})
	mux.HandleFunc("/secret", func(w http.ResponseWriter, r *http.Request) {
		n := e.runs.Add(1)
		middleware.SetReplayBody(w, []byte(`{"secret":null}`+"\n"))
		w.WriteHeader(201)
		fmt.Fprintf(w, `{"secret":"s%d"}`+"\n", n)
	})
	opts.Logger = slog.New(slog.NewJSONHandler(e.logs, nil))
	idem := middleware.Idempotency(st, opts)
	e.h = middleware.Chain(
		middleware.RequestID(nil),
		middleware.Recover(slog.New(slog.DiscardHandler)),
		middleware.BodyLimit(testBodyLimit),
		e.principal,
		idem,
	)(mux)
	return e
}

// principal authenticates every request as acct, as X-Test-Account
// "other" says, or not at all with X-Test-Account "none".
func (e *idemEnv) principal(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Header.Get("X-Test-Account") {
		case "none":
		case "other":
			r = r.WithContext(auth.WithPrincipal(r.Context(), auth.Principal{AccountID: e.other.ID, KeyID: "key_o"}))
		default:
			r = r.WithContext(auth.WithPrincipal(r.Context(), auth.Principal{AccountID: e.acct.ID, KeyID: "key_a"}))
		}
		next.ServeHTTP(w, r)
	})
}

// things echoes the body it read, with the run number.
func (e *idemEnv) things(w http.ResponseWriter, r *http.Request) {
	if _, ok := w.(interface{ Unwrap() http.ResponseWriter }); !ok {
		apierror.Write(w, r, errors.New("writer without Unwrap")) // 500: fails the test's status check
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		apierror.Write(w, r, err)
		return
	}
	n := e.runs.Add(1)
	w.Header().Set("Location", "/things/"+strconv.FormatInt(n, 10))
	w.Header().Set("X-Not-Replayed", "1")
	status := 201
	if r.Method == http.MethodGet || r.Method == http.MethodDelete {
		status = 200
	}
	writeRun(w, status, n, body)
}

var statusCodes = map[int]apierror.Code{
	400: apierror.ValidationError, 401: apierror.Unauthorized, 403: apierror.Forbidden,
	404: apierror.NotFound, 409: apierror.AlreadyExists, 413: apierror.PayloadTooLarge,
	415: apierror.UnsupportedMediaType, 422: apierror.Unprocessable, 429: apierror.RateLimited,
	500: apierror.InternalError, 503: apierror.ServiceUnavailable,
}

// status answers with the status in the path: an error through apierror,
// or a JSON body.
func (e *idemEnv) status(w http.ResponseWriter, r *http.Request) {
	n := e.runs.Add(1)
	code, _ := strconv.Atoi(r.PathValue("code"))
	if c, ok := statusCodes[code]; ok {
		apierror.Write(w, r, apierror.New(c, fmt.Sprintf("run %d", n)))
		return
	}
	writeRun(w, code, n, nil)
}

func writeRun(w http.ResponseWriter, status int, n int64, body []byte) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if status == http.StatusNoContent {
		return
	}
	fmt.Fprintf(w, `{"run":%d,"got":%q}`+"\n", n, body)
}

// do sends a request; hdr are header name/value pairs (added, so a name
// may repeat).
func (e *idemEnv) do(method, target, body string, hdr ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Add(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	return w
}

func key(k string) []string { return []string{"Idempotency-Key", k} }

// wantCode fails t unless w is an error with status and code.
func wantCode(t *testing.T, what string, w *httptest.ResponseRecorder, status int, code apierror.Code) *apierror.Error {
	t.Helper()
	if w.Code != status {
		t.Fatalf("%s: status %d, want %d: %s", what, w.Code, status, w.Body)
	}
	got := apierror.Decode(w.Result())
	if got.Code != code {
		t.Fatalf("%s: code %s, want %s: %s", what, got.Code, code, w.Body)
	}
	return got
}

// wantReplay fails t unless second replays first: same status, body and
// stored headers, and Idempotent-Replayed: true.
func wantReplay(t *testing.T, first, second *httptest.ResponseRecorder) {
	t.Helper()
	if first.Header().Get("Idempotent-Replayed") != "" {
		t.Errorf("first answer carries Idempotent-Replayed")
	}
	if got := second.Header().Get("Idempotent-Replayed"); got != "true" {
		t.Errorf("replay: Idempotent-Replayed = %q, want true", got)
	}
	if second.Code != first.Code {
		t.Errorf("replay status %d, want %d", second.Code, first.Code)
	}
	if d := cmp.Diff(first.Body.String(), second.Body.String()); d != "" {
		t.Errorf("replay body differs (-first +replay):\n%s", d)
	}
	for _, h := range middleware.DefaultReplayHeaders {
		if a, b := first.Header().Values(h), second.Header().Values(h); !cmp.Equal(a, b) {
			t.Errorf("replay header %s = %q, want %q", h, b, a)
		}
	}
}

func TestIdempotencyKeyValidation(t *testing.T) {
	e := newIdemEnv(t)
	tests := []struct {
		name   string
		hdr    []string
		status int
		reason string
	}{
		{"one char", key("a"), 201, ""},
		{"255 chars", key(strings.Repeat("k", 255)), 201, ""},
		{"printable punctuation and space", key(`"8e03978e-40d5-43e8-bc93-6894a57f9324" ~!`), 201, ""},
		{"empty", key(""), 400, "empty"},
		{"256 chars", key(strings.Repeat("k", 256)), 400, "longer than 255 characters"},
		{"non-ASCII", key("clé"), 400, "not printable ASCII"},
		{"tab", key("a\tb"), 400, "not printable ASCII"},
		{"DEL", key("a\x7f"), 400, "not printable ASCII"},
		{"repeated header", append(key("a1"), key("a2")...), 400, "repeated header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.runs.Load()
			w := e.do("POST", "/things", `{"n":1}`, tt.hdr...)
			if tt.status != 400 {
				if w.Code != tt.status {
					t.Fatalf("status %d, want %d: %s", w.Code, tt.status, w.Body)
				}
				return
			}
			got := wantCode(t, "invalid key", w, 400, apierror.InvalidRequest)
			if got.Details["field"] != "Idempotency-Key" || got.Details["reason"] != tt.reason {
				t.Errorf("details %v, want field Idempotency-Key, reason %q", got.Details, tt.reason)
			}
			if e.runs.Load() != before {
				t.Error("the handler ran for an invalid key")
			}
		})
	}
}

func TestIdempotencyReplay(t *testing.T) {
	e := newIdemEnv(t)
	body := `{"name":"Ada"}`
	first := e.do("POST", "/things", body, key("k1")...)
	if first.Code != 201 || first.Header().Get("Location") != "/things/1" {
		t.Fatalf("first: %d Location %q: %s", first.Code, first.Header().Get("Location"), first.Body)
	}
	if want := fmt.Sprintf(`{"run":1,"got":%q}`+"\n", body); first.Body.String() != want {
		t.Errorf("the handler read %s, want the body %s", first.Body, want)
	}
	for i := range 3 {
		t.Run(fmt.Sprintf("replay %d", i+1), func(t *testing.T) {
			second := e.do("POST", "/things", body, key("k1")...)
			wantReplay(t, first, second)
			if got := second.Header().Get("X-Not-Replayed"); got != "" {
				t.Errorf("unselected header replayed: X-Not-Replayed = %q", got)
			}
			if second.Header().Get("X-Request-Id") == first.Header().Get("X-Request-Id") {
				t.Error("replay kept the first request's X-Request-Id; it is a new request")
			}
		})
	}
	if n := e.runs.Load(); n != 1 {
		t.Errorf("handler ran %d times, want 1", n)
	}
	// Keys are scoped by account: the same key elsewhere is a new request.
	w := e.do("POST", "/things", body, append(key("k1"), "X-Test-Account", "other")...)
	if w.Code != 201 || w.Header().Get("Idempotent-Replayed") != "" || e.runs.Load() != 2 {
		t.Errorf("another account's key: %d replayed %q runs %d, want a new 201",
			w.Code, w.Header().Get("Idempotent-Replayed"), e.runs.Load())
	}
}

// TestIdempotencySetReplayBody: a handler's answer with a secret is sent
// once; what is stored, and replayed, is the body it gave SetReplayBody.
func TestIdempotencySetReplayBody(t *testing.T) {
	e := newIdemEnv(t)
	first := e.do("POST", "/secret", `{}`, key("s1")...)
	if first.Code != 201 || first.Body.String() != `{"secret":"s1"}`+"\n" {
		t.Fatalf("first: %d %s", first.Code, first.Body)
	}
	second := e.do("POST", "/secret", `{}`, key("s1")...)
	if second.Code != 201 || second.Body.String() != `{"secret":null}`+"\n" || second.Header().Get("Idempotent-Replayed") != "true" {
		t.Errorf("replay: %d %q (Idempotent-Replayed %q), want 201 without the secret",
			second.Code, second.Body, second.Header().Get("Idempotent-Replayed"))
	}
	rec, claimed, err := e.st.ClaimIdempotencyKey(t.Context(), store.IdempotencyClaim{
		AccountID: e.acct.ID, Key: "s1", Fingerprint: store.NewFingerprint("POST", "/secret", []byte(`{}`)),
		Lease: time.Minute, Retention: time.Hour,
	})
	if err != nil || claimed || rec.Response == nil || strings.Contains(string(rec.Response.Body), "s1") {
		t.Errorf("stored (claimed %v, err %v): %+v, want the replay body only", claimed, err, rec.Response)
	}
	// A handler that set a replay body, then answered an error: the error
	// is stored and replayed as it was sent.
	refused := e.do("POST", "/secret-refused", `{}`, key("s2")...)
	again := e.do("POST", "/secret-refused", `{}`, key("s2")...)
	wantCode(t, "refused", refused, 409, apierror.Conflict)
	wantReplay(t, refused, again)
	// Outside Idempotency it does nothing.
	w := httptest.NewRecorder()
	middleware.SetReplayBody(w, []byte("x"))
	if w.Body.Len() != 0 || w.Code != 200 {
		t.Errorf("SetReplayBody wrote to a plain writer: %d %q", w.Code, w.Body)
	}
	if n := e.runs.Load(); n != 2 {
		t.Errorf("handlers ran %d times, want 2", n)
	}
}

func TestIdempotencyReuse(t *testing.T) {
	e := newIdemEnv(t)
	first := e.do("POST", "/things", `{"a":1}`, key("k")...)
	if first.Code != 201 {
		t.Fatalf("first: %d %s", first.Code, first.Body)
	}
	tests := []struct {
		name, method, target, body string
	}{
		{"other body", "POST", "/things", `{"a":2}`},
		{"body with other spacing", "POST", "/things", `{"a": 1}`},
		{"no body", "POST", "/things", ""},
		{"other method", "PATCH", "/things", `{"a":1}`},
		{"other path", "POST", "/other", `{"a":1}`},
		{"other query", "POST", "/things?x=1", `{"a":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := e.do(tt.method, tt.target, tt.body, key("k")...)
			wantCode(t, tt.name, w, 422, apierror.IdempotencyKeyReused)
		})
	}
	if n := e.runs.Load(); n != 1 {
		t.Errorf("handler ran %d times, want 1", n)
	}
}

// TestIdempotencyInFlight holds the first request in its handler: a
// concurrent one gets 409 with Retry-After: 1; once the first is done,
// its answer is replayed.
func TestIdempotencyInFlight(t *testing.T) {
	e := newIdemEnv(t)
	firstc := make(chan *httptest.ResponseRecorder)
	go func() { firstc <- e.do("POST", "/block", `{}`, key("k")...) }()
	<-e.started
	for _, name := range []string{"same request", "again"} {
		t.Run(name, func(t *testing.T) {
			w := e.do("POST", "/block", `{}`, key("k")...)
			got := wantCode(t, "concurrent", w, 409, apierror.IdempotencyKeyInUse)
			if ra := w.Header().Get("Retry-After"); ra != "1" || got.Details["retry_after"] != 1.0 {
				t.Errorf("Retry-After %q details.retry_after %v, want 1", ra, got.Details["retry_after"])
			}
		})
	}
	// Another request under the key is refused as reuse, even in flight.
	wantCode(t, "other body in flight", e.do("POST", "/block", `{"x":1}`, key("k")...), 422, apierror.IdempotencyKeyReused)
	close(e.release)
	first := <-firstc
	if first.Code != 201 {
		t.Fatalf("first: %d %s", first.Code, first.Body)
	}
	wantReplay(t, first, e.do("POST", "/block", `{}`, key("k")...))
	if n := e.runs.Load(); n != 1 {
		t.Errorf("handler ran %d times, want 1", n)
	}
}

// TestIdempotencyLeaseTakeover: the first holder stops renewing (as a
// crashed one would: the clock jumps past its lease); the next request
// takes the claim over and its answer is the one stored. The late first
// holder cannot overwrite it.
func TestIdempotencyLeaseTakeover(t *testing.T) {
	e := newIdemEnv(t)
	firstc := make(chan *httptest.ResponseRecorder)
	go func() { firstc <- e.do("POST", "/block", `{}`, key("k")...) }()
	<-e.started
	e.clock.Add(middleware.DefaultIdempotencyLease - time.Microsecond)
	wantCode(t, "before the lease ends", e.do("POST", "/block", `{}`, key("k")...), 409, apierror.IdempotencyKeyInUse)
	e.clock.Add(time.Microsecond)
	wantCode(t, "other body after the lease", e.do("POST", "/block", `{"x":1}`, key("k")...), 422, apierror.IdempotencyKeyReused)
	second := e.do("POST", "/block", `{}`, key("k")...)
	if second.Code != 201 || second.Header().Get("Idempotent-Replayed") != "" || !strings.Contains(second.Body.String(), `"run":2`) {
		t.Fatalf("takeover: %d replayed %q %s, want a new run", second.Code, second.Header().Get("Idempotent-Replayed"), second.Body)
	}
	close(e.release)
	if first := <-firstc; first.Code != 201 {
		t.Fatalf("first: %d %s", first.Code, first.Body)
	}
	wantReplay(t, second, e.do("POST", "/block", `{}`, key("k")...))
	if !strings.Contains(e.logs.String(), "idempotency: complete failed") {
		t.Errorf("the late holder's failed completion was not logged: %s", e.logs)
	}
}

// fakeLeaseTimers schedules lease renewals for the test to fire by hand.
type fakeLeaseTimers struct {
	mu     sync.Mutex
	timers []*fakeLeaseTimer
}

func (ft *fakeLeaseTimers) afterFunc(d time.Duration, f func()) middleware.LeaseTimer {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	t := &fakeLeaseTimer{d: d, f: f, armed: true}
	ft.timers = append(ft.timers, t)
	return t
}

// only returns the one timer scheduled so far.
func (ft *fakeLeaseTimers) only(t *testing.T) *fakeLeaseTimer {
	t.Helper()
	ft.mu.Lock()
	defer ft.mu.Unlock()
	if len(ft.timers) != 1 {
		t.Fatalf("%d lease timers scheduled, want 1", len(ft.timers))
	}
	return ft.timers[0]
}

type fakeLeaseTimer struct {
	mu    sync.Mutex
	d     time.Duration
	f     func()
	armed bool
}

func (t *fakeLeaseTimer) Reset(d time.Duration) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	was := t.armed
	t.d, t.armed = d, true
	return was
}

func (t *fakeLeaseTimer) Stop() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	was := t.armed
	t.armed = false
	return was
}

func (t *fakeLeaseTimer) isArmed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.armed
}

// fire moves clock to the timer's due time and runs its function (a lease
// renewal) to completion; it returns how far the clock moved.
func (t *fakeLeaseTimer) fire(tb testing.TB, clock *testenv.Clock) time.Duration {
	tb.Helper()
	t.mu.Lock()
	if !t.armed {
		t.mu.Unlock()
		tb.Fatal("lease renewal timer not armed: renewals stopped")
	}
	d, f := t.d, t.f
	t.armed = false
	t.mu.Unlock()
	clock.Add(d)
	f()
	return d
}

// TestIdempotencyLeaseRenewal holds a request in its handler for three of
// its leases, on an injected clock whose renewals the test fires: each
// renewal keeps the claim, so every concurrent request meanwhile gets 409,
// never a second run (without renewals the claim would be taken over once
// the clock reaches the lease, as in TestIdempotencyLeaseTakeover).
func TestIdempotencyLeaseRenewal(t *testing.T) {
	const lease = 30 * time.Second
	timers := &fakeLeaseTimers{}
	e := newIdemEnvWith(t, middleware.WithLeaseTimers(middleware.IdempotencyOptions{Lease: lease}, timers.afterFunc))
	firstc := make(chan *httptest.ResponseRecorder)
	go func() { firstc <- e.do("POST", "/block", `{}`, key("k")...) }()
	<-e.started
	renewal := timers.only(t)
	var elapsed time.Duration
	for n := 1; elapsed <= 3*lease; n++ {
		d := renewal.fire(t, e.clock)
		if d <= 0 || d >= lease {
			t.Fatalf("renewal %d came %v after the previous one, want within the %v lease", n, d, lease)
		}
		elapsed += d
		wantCode(t, fmt.Sprintf("after renewal %d, %v into the run", n, elapsed), e.do("POST", "/block", `{}`, key("k")...), 409, apierror.IdempotencyKeyInUse)
	}
	close(e.release)
	first := <-firstc
	wantReplay(t, first, e.do("POST", "/block", `{}`, key("k")...))
	if n := e.runs.Load(); n != 1 {
		t.Errorf("handler ran %d times, want 1", n)
	}
	if renewal.isArmed() {
		t.Error("lease renewal still scheduled after the run finished")
	}
}

// TestIdempotencyStoredStatuses walks the storage rule: final answers are
// replayed; refusals before the work and 5xx run again.
func TestIdempotencyStoredStatuses(t *testing.T) {
	e := newIdemEnv(t)
	tests := []struct {
		status int
		stored bool
	}{
		{200, true}, {201, true}, {202, true}, {204, true},
		{404, true}, {409, true}, {422, true},
		{400, false}, {401, false}, {403, false}, {413, false}, {415, false}, {429, false},
		{500, false}, {503, false},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.status), func(t *testing.T) {
			if got := middleware.IdempotencyStores(tt.status); got != tt.stored {
				t.Errorf("IdempotencyStores(%d) = %v, want %v", tt.status, got, tt.stored)
			}
			target, k := fmt.Sprintf("/status/%d", tt.status), key(fmt.Sprintf("s-%d", tt.status))
			before := e.runs.Load()
			first := e.do("POST", target, `{}`, k...)
			second := e.do("POST", target, `{}`, k...)
			if first.Code != tt.status || second.Code != tt.status {
				t.Fatalf("statuses %d, %d, want %d", first.Code, second.Code, tt.status)
			}
			runs := e.runs.Load() - before
			if tt.stored {
				wantReplay(t, first, second)
				if runs != 1 {
					t.Errorf("handler ran %d times, want 1", runs)
				}
				return
			}
			if runs != 2 || second.Header().Get("Idempotent-Replayed") != "" {
				t.Errorf("handler ran %d times, replayed %q; want 2 runs and no replay", runs, second.Header().Get("Idempotent-Replayed"))
			}
		})
	}
	t.Run("nothing written", func(t *testing.T) {
		before := e.runs.Load()
		first := e.do("POST", "/silent", "", key("silent")...)
		second := e.do("POST", "/silent", "", key("silent")...)
		wantReplay(t, first, second)
		if runs := e.runs.Load() - before; runs != 1 || second.Code != 200 {
			t.Errorf("runs %d status %d, want 1 run and 200", runs, second.Code)
		}
	})
	t.Run("panic", func(t *testing.T) {
		before := e.runs.Load()
		for i := range 2 {
			wantCode(t, fmt.Sprintf("panic %d", i+1), e.do("POST", "/panic", "", key("panic")...), 500, apierror.InternalError)
		}
		if runs := e.runs.Load() - before; runs != 2 {
			t.Errorf("handler ran %d times, want 2: a panic must release the key", runs)
		}
	})
}

func TestIdempotencyPassThrough(t *testing.T) {
	e := newIdemEnv(t)
	tests := []struct {
		name, method string
		hdr          []string
	}{
		{"GET with a key", "GET", key("k")},
		{"GET with an invalid key", "GET", key("")},
		{"DELETE with a key", "DELETE", key("k")},
		{"PUT with a key", "PUT", key("k")},
		{"POST without a key", "POST", nil},
		{"PATCH without a key", "PATCH", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.runs.Load()
			for i := range 2 {
				w := e.do(tt.method, "/things", "", tt.hdr...)
				if w.Code >= 300 || w.Header().Get("Idempotent-Replayed") != "" {
					t.Fatalf("request %d: %d replayed %q: %s", i+1, w.Code, w.Header().Get("Idempotent-Replayed"), w.Body)
				}
			}
			if runs := e.runs.Load() - before; runs != 2 {
				t.Errorf("handler ran %d times, want 2", runs)
			}
		})
	}
}

func TestIdempotencyRefusals(t *testing.T) {
	t.Run("no principal", func(t *testing.T) {
		e := newIdemEnv(t)
		wantCode(t, "no principal", e.do("POST", "/things", "{}", append(key("k"), "X-Test-Account", "none")...), 401, apierror.Unauthorized)
	})
	t.Run("body over the limit", func(t *testing.T) {
		e := newIdemEnv(t)
		r := httptest.NewRequest("POST", "/things", strings.NewReader(strings.Repeat("x", testBodyLimit+1)))
		r.ContentLength = -1 // unknown: the limit is hit while reading
		r.Header.Set("Idempotency-Key", "k")
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, r)
		got := wantCode(t, "large body", w, 413, apierror.PayloadTooLarge)
		if got.Details["limit_bytes"] != float64(testBodyLimit) {
			t.Errorf("limit_bytes %v", got.Details["limit_bytes"])
		}
		if w := e.do("POST", "/things", "{}", key("k")...); w.Code != 201 {
			t.Errorf("after a 413, the key: %d %s, want 201 (nothing stored)", w.Code, w.Body)
		}
	})
	t.Run("store down", func(t *testing.T) {
		e := newIdemEnv(t)
		e.st.Close()
		w := e.do("POST", "/things", "{}", key("k")...)
		got := wantCode(t, "store down", w, 503, apierror.ServiceUnavailable)
		if got.Details["reason"] != "store_unavailable" || w.Header().Get("Retry-After") != "1" {
			t.Errorf("reason %v Retry-After %q, want store_unavailable and 1", got.Details["reason"], w.Header().Get("Retry-After"))
		}
		if e.runs.Load() != 0 {
			t.Error("the handler ran without a claim")
		}
	})
	t.Run("request past its deadline", func(t *testing.T) {
		e := newIdemEnv(t)
		ctx, cancel := context.WithDeadline(context.Background(), time.Unix(1, 0))
		defer cancel()
		r := httptest.NewRequestWithContext(ctx, "POST", "/things", strings.NewReader("{}"))
		r.Header.Set("Content-Type", "application/json")
		for i, kv := 0, key("k"); i+1 < len(kv); i += 2 {
			r.Header.Set(kv[i], kv[i+1])
		}
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, r)
		got := wantCode(t, "past deadline", w, 503, apierror.ServiceUnavailable)
		if got.Details["reason"] != "timeout" {
			t.Errorf("reason %v, want timeout (the request's deadline, not a store outage)", got.Details["reason"])
		}
	})
}

// stubVerifier accepts the key "good" as acct's.
type stubVerifier struct{ accountID string }

func (v stubVerifier) Verify(_ context.Context, secret string) (auth.Principal, error) {
	if secret != "good" {
		return auth.Principal{}, auth.ErrUnknown
	}
	return auth.Principal{AccountID: v.accountID, KeyID: "key_good"}, nil
}

// TestIdempotencyAfterAuthAndRateLimit runs the real Auth and RateLimit in
// front: their 401 and 429 never reach the idempotency layer, so the key
// still runs afterwards.
func TestIdempotencyAfterAuthAndRateLimit(t *testing.T) {
	e := newIdemEnv(t)
	limiter := ratelimit.NewMemoryStore(ratelimit.MemoryOptions{Now: e.clock.Now})
	h := middleware.Chain(
		middleware.RequestID(nil),
		middleware.Auth(stubVerifier{e.acct.ID}, nil),
		middleware.RateLimit(middleware.RateLimitConfig{Store: limiter, Default: ratelimit.Policy{Limit: 1, Window: time.Minute}, Now: e.clock.Now}),
		middleware.Idempotency(e.st, middleware.IdempotencyOptions{}),
	)(http.HandlerFunc(e.things))
	send := func(apiKey, idem string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", "/things", strings.NewReader("{}"))
		r.Header.Set("Authorization", "Bearer "+apiKey)
		r.Header.Set("Idempotency-Key", idem)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	steps := []struct {
		name, apiKey, idem string
		advance            time.Duration
		status             int
		runs               int64
	}{
		{"unknown API key", "bad", "k1", 0, 401, 0},
		{"same idempotency key, good API key", "good", "k1", 0, 201, 1},
		{"rate limited", "good", "k2", 0, 429, 1},
		{"same key after the window", "good", "k2", time.Minute, 201, 2},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			e.clock.Add(s.advance)
			w := send(s.apiKey, s.idem)
			if w.Code != s.status || w.Header().Get("Idempotent-Replayed") != "" {
				t.Fatalf("status %d replayed %q, want %d, not replayed: %s", w.Code, w.Header().Get("Idempotent-Replayed"), s.status, w.Body)
			}
			if got := e.runs.Load(); got != s.runs {
				t.Errorf("handler runs %d, want %d", got, s.runs)
			}
		})
	}
}

// purgeSpy reports every purge's result.
type purgeSpy struct {
	store.Idempotency
	results chan int64
}

func (p purgeSpy) PurgeIdempotencyKeys(ctx context.Context) (int64, error) {
	n, err := p.Idempotency.PurgeIdempotencyKeys(ctx)
	if err == nil {
		select {
		case p.results <- n:
		default:
		}
	}
	return n, err
}

func TestPurgeIdempotencyKeys(t *testing.T) {
	e := newIdemEnv(t)
	for _, k := range []string{"k1", "k2"} {
		if w := e.do("POST", "/things", "{}", key(k)...); w.Code != 201 {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
	}
	e.clock.Add(middleware.DefaultIdempotencyRetention)
	spy := purgeSpy{Idempotency: e.st, results: make(chan int64, 1)}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); middleware.PurgeIdempotencyKeys(ctx, spy, time.Millisecond, nil) }()
	select {
	case n := <-spy.results:
		if n != 2 {
			t.Errorf("first purge deleted %d, want 2", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the purge loop did not run")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the purge loop did not stop with its context")
	}
}

// TestIdempotencyRetentionAboveLease checks that a Retention of Lease or
// less is raised to 2×Lease, so a record outlives its first claim, and
// that a Retention above Lease is kept.
func TestIdempotencyRetentionAboveLease(t *testing.T) {
	tests := []struct {
		name string
		opts middleware.IdempotencyOptions
		want time.Duration
	}{
		{"defaults", middleware.IdempotencyOptions{}, middleware.DefaultIdempotencyRetention},
		{"retention below lease", middleware.IdempotencyOptions{Lease: time.Minute, Retention: time.Second}, 2 * time.Minute},
		{"retention equal to lease", middleware.IdempotencyOptions{Lease: time.Minute, Retention: time.Minute}, 2 * time.Minute},
		{"retention below default lease", middleware.IdempotencyOptions{Retention: time.Second}, 2 * middleware.DefaultIdempotencyLease},
		{"retention above lease", middleware.IdempotencyOptions{Lease: time.Minute, Retention: 61 * time.Second}, 61 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newIdemEnvWith(t, tt.opts)
			if w := e.do("POST", "/things", `{}`, key("k")...); w.Code != 201 {
				t.Fatalf("first: %d %s", w.Code, w.Body)
			}
			rec, claimed, err := e.st.ClaimIdempotencyKey(t.Context(), store.IdempotencyClaim{
				AccountID: e.acct.ID, Key: "k", Lease: time.Second, Retention: time.Second,
			})
			if err != nil || claimed {
				t.Fatalf("reading the record: claimed %v, err %v", claimed, err)
			}
			if got := rec.ExpiresAt.Sub(rec.CreatedAt); got != tt.want {
				t.Errorf("retention %v, want %v", got, tt.want)
			}
		})
	}
}

// failComplete is a store whose CompleteIdempotencyKey always fails.
type failComplete struct{ store.Idempotency }

func (failComplete) CompleteIdempotencyKey(context.Context, string, string, string, store.StoredResponse) error {
	return errors.New("db down")
}

// TestIdempotencyCompleteFails pins what the documentation says of a
// completion that fails after the handler answered: the answer stands,
// nothing is stored, retries get 409 until the lease ends, and then a retry
// runs the handler again.
func TestIdempotencyCompleteFails(t *testing.T) {
	e := newIdemEnv(t)
	h := middleware.Chain(e.principal, middleware.Idempotency(failComplete{e.st}, middleware.IdempotencyOptions{}))(http.HandlerFunc(e.things))
	do := func() *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", "/things", strings.NewReader(`{}`))
		r.Header.Set(middleware.HeaderIdempotencyKey, "k")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	if w := do(); w.Code != 201 {
		t.Fatalf("first: %d %s", w.Code, w.Body)
	}
	e.clock.Add(middleware.DefaultIdempotencyLease - time.Microsecond)
	wantCode(t, "retry inside the lease", do(), 409, apierror.IdempotencyKeyInUse)
	e.clock.Add(time.Microsecond)
	if w := do(); w.Code != 201 || w.Header().Get(middleware.HeaderIdempotentReplayed) != "" {
		t.Errorf("retry after the lease: %d replayed %q, want a new run", w.Code, w.Header().Get(middleware.HeaderIdempotentReplayed))
	}
	if n := e.runs.Load(); n != 2 {
		t.Errorf("handler ran %d times, want 2 (once more after the lease)", n)
	}
}
