package api_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tollgate-dev/tollgate/apierror"
	"github.com/tollgate-dev/tollgate/auth"
	"github.com/tollgate-dev/tollgate/internal/api"
	"github.com/tollgate-dev/tollgate/internal/server"
	"github.com/tollgate-dev/tollgate/internal/testenv"
	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/ratelimit"
	"github.com/tollgate-dev/tollgate/store"
	"github.com/tollgate-dev/tollgate/store/postgres"
)

// backend opens a fresh, empty store of one kind.
type backend struct {
	name string
	open func(t testing.TB) store.Store
}

// backends are the stores the end-to-end tests run on. PostgreSQL is
// skipped when unreachable, unless TOLLGATE_REQUIRE_SERVICES=1.
var backends = []backend{
	{"sqlite", sqliteStore},
	{"postgres", func(t testing.TB) store.Store {
		db, err := postgres.Open(context.Background(), testenv.Postgres(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}},
}

// coverage records which statuses each documented operation answered.
type coverage struct {
	mu   sync.Mutex
	seen map[string]map[int]bool // operationId → status
}

func (c *coverage) add(op string, status int) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil {
		c.seen = map[string]map[int]bool{}
	}
	if c.seen[op] == nil {
		c.seen[op] = map[int]bool{}
	}
	c.seen[op][status] = true
}

// live is a tollgate server on a loopback port over a real store, with
// an account and its admin key.
type live struct {
	t       testing.TB
	c       *contract
	cov     *coverage
	base    string
	st      store.Store
	account store.Account
	admin   string
	client  *http.Client
	maint   *middleware.Maintenance
}

// liveOptions tune startLive.
type liveOptions struct {
	// guard, when not nil, limits failed authentications.
	guard *middleware.Guard
	// cov, when not nil, records the statuses each operation answered.
	cov *coverage
	// noRateLimit leaves the rate limiter out (its headers carry the time).
	noRateLimit bool
}

// startLive serves the API on st over HTTP, rate limited (100000/1m by
// default, every header family on) and with Idempotency-Key support.
func startLive(t testing.TB, st store.Store, o liveOptions) *live {
	t.Helper()
	ctx := context.Background()
	acc, _, err := st.EnsureAccount(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	admin, err := api.CreateKey(ctx, st, acc.ID, api.KeyRequest{Name: "admin", Scopes: []string{auth.ScopeAll}})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	maint := middleware.NewMaintenance(false, 30*time.Second)
	srv := server.New(server.Config{Logger: log, Checks: map[string]server.Checker{"database": st}, Guards: []middleware.Middleware{maint.Guard}})
	var limit middleware.Middleware
	def := ratelimit.Policy{Name: "default", Limit: 100000, Window: time.Minute}
	if !o.noRateLimit {
		limit = middleware.RateLimit(middleware.RateLimitConfig{
			Store:   ratelimit.NewMemoryStore(ratelimit.MemoryOptions{}),
			Default: def,
			Headers: middleware.HeadersLegacy | middleware.HeadersIETF,
		})
	}
	api.New(api.Config{Store: st, Verifier: auth.NewVerifier(store.AuthKeys(st)), Guard: o.guard, RateLimit: limit, DefaultRate: def,
		Idempotency: middleware.Idempotency(st, middleware.IdempotencyOptions{Logger: log}), Logger: log, Maintenance: maint}).Routes(srv.Handle)
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return &live{t: t, c: loadContract(t), cov: o.cov, base: ts.URL, st: st, account: acc, admin: admin.Secret, client: ts.Client(), maint: maint}
}

// reply is a response, read whole.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// err decodes the error body.
func (r reply) err(t testing.TB) *apierror.Error {
	t.Helper()
	e := apierror.Decode(&http.Response{StatusCode: r.status, Header: r.header, Body: io.NopCloser(bytes.NewReader(r.body))})
	if e.Foreign {
		t.Fatalf("status %d: not a tollgate error: %s", r.status, r.body)
	}
	return e
}

// into decodes a 2xx body into a T.
func into[T any](t testing.TB, r reply) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("status %d, body %s: %v", r.status, r.body, err)
	}
	return v
}

// call sends a request and checks the response against the OpenAPI
// document. hdr are header name/value pairs; a body is sent as
// application/json unless hdr sets Content-Type.
func (l *live) call(method, path, body string, hdr ...string) reply {
	l.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, l.base+path, rd)
	if err != nil {
		l.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := l.client.Do(req)
	if err != nil {
		l.t.Fatalf("%s %s: %v", method, path, err)
	}
	r := reply{status: resp.StatusCode, header: resp.Header, body: readAll(l.t, resp.Body)}
	if err := l.c.check(req, r.status, r.header, r.body); err != nil {
		l.t.Error(err)
	}
	if route, _, err := l.c.router.FindRoute(req); err == nil {
		l.cov.add(route.Operation.OperationID, r.status)
	}
	return r
}

// as is call with the admin key.
func (l *live) as(method, path, body string, hdr ...string) reply {
	l.t.Helper()
	return l.call(method, path, body, append(bearer(l.admin), hdr...)...)
}

// key makes a key of the live account with scopes.
func (l *live) key(scopes ...string) string {
	l.t.Helper()
	ck, err := api.CreateKey(context.Background(), l.st, l.account.ID, api.KeyRequest{Name: "k", Scopes: scopes})
	if err != nil {
		l.t.Fatal(err)
	}
	return ck.Secret
}

// otherAccountKey makes a key with scopes in a second account, "other".
func (l *live) otherAccountKey(scopes ...string) api.CreatedKey {
	l.t.Helper()
	ctx := context.Background()
	other, _, err := l.st.EnsureAccount(ctx, "other")
	if err != nil {
		l.t.Fatal(err)
	}
	ck, err := api.CreateKey(ctx, l.st, other.ID, api.KeyRequest{Name: "b", Scopes: scopes})
	if err != nil {
		l.t.Fatal(err)
	}
	return ck
}

// wantError checks status, code, message (when not "") and details
// members.
func wantError(t testing.TB, r reply, code apierror.Code, message string, details map[string]any) {
	t.Helper()
	if r.status != code.Status() {
		t.Fatalf("status = %d, want %d: %s", r.status, code.Status(), r.body)
	}
	e := r.err(t)
	if e.Code != code {
		t.Errorf("code = %s, want %s: %s", e.Code, code, r.body)
	}
	if message != "" && e.Message != message {
		t.Errorf("message = %q, want %q", e.Message, message)
	}
	for k, want := range details {
		if diff := cmp.Diff(normJSON(t, want), normJSON(t, e.Details[k])); diff != "" {
			t.Errorf("details.%s (-want +got):\n%s\nbody: %s", k, diff, r.body)
		}
	}
	if e.RequestID() == "" || e.RequestID() != r.header.Get("X-Request-Id") {
		t.Errorf("details.request_id = %q, X-Request-Id = %q", e.RequestID(), r.header.Get("X-Request-Id"))
	}
	if loc := r.header.Get("Location"); loc != "" {
		t.Errorf("an error carries Location %q", loc)
	}
}

// normJSON round-trips v through JSON so that Go values and decoded ones
// compare equal.
func normJSON(t testing.TB, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func fieldErrors(fe ...string) []apierror.FieldError {
	var out []apierror.FieldError
	for i := 0; i+1 < len(fe); i += 2 {
		out = append(out, apierror.FieldError{Field: fe[i], Reason: fe[i+1]})
	}
	return out
}

// ignoreServerSet ignores the members the server sets.
var ignoreServerSet = cmpopts.IgnoreFields(api.Session{}, "ID", "CreatedAt", "UpdatedAt")

// TestEndToEnd drives every route and every error the issue lists over
// HTTP, on each backend, and checks every response against the OpenAPI
// document. At the end, every status the document lists for an operation
// must have been seen (500 apart, and 429/503 on at least one operation).
func TestEndToEnd(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			cov := &coverage{}
			l := startLive(t, b.open(t), liveOptions{cov: cov})
			t.Run("sessions", func(t *testing.T) { testSessions(t, l) })
			t.Run("leads", func(t *testing.T) { testLeads(t, l) })
			t.Run("keys", func(t *testing.T) { testKeys(t, l) })
			t.Run("every operation", func(t *testing.T) { testEveryOperation(t, l) })
			t.Run("idempotency", func(t *testing.T) { testIdempotency(t, l) })
			t.Run("operational", func(t *testing.T) { testOperational(t, l) })
			t.Run("maintenance", func(t *testing.T) { testMaintenance(t, l) })
			t.Run("rate limit 429", func(t *testing.T) {
				ck := into[api.CreatedKey](t, l.as("POST", "/v1/keys", `{"name":"slow","scopes":["leads:read"],"rate":"2/1m"}`))
				for i := range 2 {
					r := l.call("GET", "/v1/leads", "", bearer(ck.Secret)...)
					if r.status != 200 || r.header.Get("X-RateLimit-Limit") != "2" || r.header.Get("X-RateLimit-Remaining") != strconv.Itoa(1-i) {
						t.Fatalf("request %d: %d X-RateLimit-Limit %q -Remaining %q", i, r.status, r.header.Get("X-RateLimit-Limit"), r.header.Get("X-RateLimit-Remaining"))
					}
				}
				r := l.call("GET", "/v1/leads", "", bearer(ck.Secret)...)
				wantError(t, r, apierror.RateLimited, "", map[string]any{"limit": 2, "window": "1m"})
				if ra := r.header.Get("Retry-After"); ra == "" || ra != fmt.Sprint(r.err(t).Details["retry_after"]) {
					t.Errorf("Retry-After %q, details.retry_after %v", ra, r.err(t).Details["retry_after"])
				}
			})
			t.Run("guard 429", func(t *testing.T) {
				g := middleware.NewGuard(ratelimit.NewMemoryStore(ratelimit.MemoryOptions{}), ratelimit.Policy{Limit: 1, Window: time.Minute}, nil)
				l2 := startLive(t, l.st, liveOptions{guard: g, cov: cov})
				bad, _ := auth.NewKey(true)
				var got []int
				for range 3 {
					got = append(got, l2.call("GET", "/v1/leads", "", bearer(bad)...).status)
				}
				if !slices.Equal(got, []int{401, 401, 429}) {
					t.Fatalf("statuses = %v, want [401 401 429]", got)
				}
				r := l2.call("GET", "/v1/sessions", "", bearer(bad)...)
				wantError(t, r, apierror.RateLimited, "", nil)
				if r.header.Get("Retry-After") == "" {
					t.Errorf("429 without Retry-After")
				}
			})
			t.Run("store down 503", func(t *testing.T) {
				st := b.open(t)
				l2 := startLive(t, st, liveOptions{cov: cov})
				key := l2.key(auth.ScopeLeadsRead, auth.ScopeSessionsRead)
				st.Close()
				for _, p := range []string{"/v1/leads", "/v1/sessions", "/readyz"} {
					r := l2.call("GET", p, "", bearer(key)...)
					wantError(t, r, apierror.ServiceUnavailable, "", map[string]any{"reason": "store_unavailable"})
					if r.header.Get("Retry-After") == "" {
						t.Errorf("GET %s: 503 without Retry-After", p)
					}
				}
			})
			if t.Failed() {
				return
			}
			checkCoverage(t, l.c, cov)
		})
	}
}

// checkCoverage fails for a documented operation status that no request
// produced.
func checkCoverage(t *testing.T, c *contract, cov *coverage) {
	t.Helper()
	anywhere := map[int]bool{}
	for _, statuses := range cov.seen {
		for s := range statuses {
			anywhere[s] = true
		}
	}
	var missing []string
	for path, item := range c.doc.Paths.Map() {
		for method, op := range item.Operations() {
			for code := range op.Responses.Map() {
				s, err := strconv.Atoi(code)
				if err != nil {
					t.Errorf("%s %s: response %q is not a status", method, path, code)
					continue
				}
				switch {
				case s == 500:
					continue // nothing should produce it
				case s == 429 || s == 503:
					if anywhere[s] {
						continue
					}
				case cov.seen[op.OperationID][s]:
					continue
				}
				missing = append(missing, fmt.Sprintf("%s %d", op.OperationID, s))
			}
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("documented responses never produced:\n%s", strings.Join(missing, "\n"))
	}
}

func testSessions(t *testing.T, l *live) {
	start := time.Now().UTC()
	r := l.as("POST", "/v1/sessions", `{"sessionExternalId":"ext-1"}`)
	if r.status != 201 {
		t.Fatalf("create = %d: %s", r.status, r.body)
	}
	minimal := into[api.Session](t, r)
	if !strings.HasPrefix(minimal.ID, "ses_") || r.header.Get("Location") != "/v1/sessions/"+minimal.ID {
		t.Errorf("id %q Location %q", minimal.ID, r.header.Get("Location"))
	}
	if minimal.StartedAt.Before(start.Add(-time.Second)) || minimal.StartedAt.After(time.Now().Add(time.Second)) {
		t.Errorf("startedAt = %v, want about now (%v)", minimal.StartedAt, start)
	}
	want := api.Session{SessionExternalID: "ext-1", Status: "active", StartedAt: minimal.StartedAt, Metadata: json.RawMessage(`{}`)}
	if diff := cmp.Diff(want, minimal, ignoreServerSet); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}

	full := `{"sessionExternalId":"ext-2","title":"Onboarding","source":"web","model":"m-1","status":"completed",
		"startedAt":"2026-11-22T10:00:00.123456Z","endedAt":"2026-11-22T11:00:00Z","tokens":1234,
		"metadata":{"plan": "pro", "tags": ["a", "b"]}}`
	r = l.as("POST", "/v1/sessions", full)
	if r.status != 201 {
		t.Fatalf("create full = %d: %s", r.status, r.body)
	}
	created := into[api.Session](t, r)
	started, _ := time.Parse(time.RFC3339, "2026-11-22T10:00:00.123456Z")
	ended, _ := time.Parse(time.RFC3339, "2026-11-22T11:00:00Z")
	want = api.Session{SessionExternalID: "ext-2", Title: "Onboarding", Source: "web", Model: "m-1", Status: "completed",
		StartedAt: started, EndedAt: &ended, Tokens: 1234, Metadata: json.RawMessage(`{"plan":"pro","tags":["a","b"]}`)}
	if diff := cmp.Diff(want, created, ignoreServerSet); diff != "" {
		t.Errorf("full create (-want +got):\n%s", diff)
	}
	if got := into[api.Session](t, l.as("GET", "/v1/sessions/"+created.ID, "")); !cmp.Equal(got, created) {
		t.Errorf("GET = %+v, want %+v", got, created)
	}

	t.Run("create errors", func(t *testing.T) {
		wantError(t, l.as("POST", "/v1/sessions", `{"title":"x"}`), apierror.MissingField,
			"Missing required field: sessionExternalId", map[string]any{"field": "sessionExternalId"})
		wantError(t, l.as("POST", "/v1/sessions", `{"sessionExternalId":null}`), apierror.MissingField,
			"Missing required field: sessionExternalId", map[string]any{"field": "sessionExternalId"})
		wantError(t, l.as("POST", "/v1/sessions", `{"sessionExternalId":"ext-1"}`), apierror.AlreadyExists,
			"", map[string]any{"field": "sessionExternalId", "resource": "session"})
		wantError(t, l.as("POST", "/v1/sessions", `{"sessionExternalId":"ext-x","startedAt":"2026-11-22T10:00:00Z","endedAt":"2026-11-22T09:59:59Z"}`),
			apierror.Unprocessable, "", map[string]any{"field": "endedAt", "reason": "endedAt is before startedAt"})
		// U+0000, which PostgreSQL's text and jsonb cannot hold (it
		// answered 500 where SQLite stored it), is refused on both.
		for _, tt := range []struct{ method, path, body, field string }{
			{"POST", "/v1/sessions", `{"sessionExternalId":"nul\u0000"}`, "sessionExternalId"},
			{"POST", "/v1/sessions", `{"sessionExternalId":"nul","metadata":{"k":["\u0000"]}}`, "metadata.k.0"},
			{"PATCH", "/v1/sessions/" + minimal.ID, `{"title":"a\u0000"}`, "title"},
			{"POST", "/v1/leads", `{"name":"a\u0000b","phone":"+14155550123"}`, "name"},
		} {
			wantError(t, l.as(tt.method, tt.path, tt.body), apierror.InvalidRequest, "", map[string]any{"field": tt.field, "reason": "NUL character"})
		}
	})

	t.Run("validation", func(t *testing.T) {
		long := strings.Repeat("é", 256)
		big := `{"k":"` + strings.Repeat("x", api.MaxMetadataBytes) + `"}`
		tests := []struct {
			name   string
			body   string
			errors []apierror.FieldError
		}{
			{"external id too long", `{"sessionExternalId":"` + long + `"}`, fieldErrors("sessionExternalId", "Must be at most 255 characters")},
			{"external id empty", `{"sessionExternalId":""}`, fieldErrors("sessionExternalId", "Must not be empty")},
			{"title too long", `{"sessionExternalId":"v","title":"` + long + `"}`, fieldErrors("title", "Must be at most 255 characters")},
			{"bad status", `{"sessionExternalId":"v","status":"done"}`, fieldErrors("status", "Must be one of: active, completed, failed")},
			{"status null", `{"sessionExternalId":"v","status":null}`, fieldErrors("status", "Must not be null")},
			{"negative tokens", `{"sessionExternalId":"v","tokens":-1}`, fieldErrors("tokens", "Must be an integer ≥ 0")},
			{"metadata array", `{"sessionExternalId":"v","metadata":[1]}`, fieldErrors("metadata", "Must be a JSON object")},
			{"metadata string", `{"sessionExternalId":"v","metadata":"{}"}`, fieldErrors("metadata", "Must be a JSON object")},
			{"metadata too big", `{"sessionExternalId":"v","metadata":` + big + `}`, fieldErrors("metadata", "Must be at most 16384 bytes of JSON")},
			{"bad startedAt", `{"sessionExternalId":"v","startedAt":"yesterday"}`, fieldErrors("startedAt", "Must be an RFC 3339 date-time, e.g. 2026-11-22T10:00:00Z")},
			// Valid RFC 3339, but past year 9999 (or before year 0) in
			// UTC, which no answer could write back.
			{"startedAt after 9999 in UTC", `{"sessionExternalId":"v","startedAt":"9999-12-31T23:00:00-05:00"}`,
				fieldErrors("startedAt", "Must be between 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z")},
			{"endedAt before 0000 in UTC", `{"sessionExternalId":"v","endedAt":"0000-01-01T00:00:00+05:00"}`,
				fieldErrors("endedAt", "Must be between 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z")},
			// Not RFC 3339, though Go's time.Parse takes them.
			{"offset +24:00", `{"sessionExternalId":"v","startedAt":"2026-01-02T11:00:00+24:00"}`, fieldErrors("startedAt", "Must be an RFC 3339 date-time, e.g. 2026-11-22T10:00:00Z")},
			{"offset +23:60", `{"sessionExternalId":"v","startedAt":"2026-01-02T11:00:00+23:60"}`, fieldErrors("startedAt", "Must be an RFC 3339 date-time, e.g. 2026-11-22T10:00:00Z")},
			{"comma before the fraction", `{"sessionExternalId":"v","endedAt":"2026-01-02T11:00:00,5Z"}`, fieldErrors("endedAt", "Must be an RFC 3339 date-time, e.g. 2026-11-22T10:00:00Z")},
			{"no fraction digits", `{"sessionExternalId":"v","endedAt":"2026-01-02T11:00:00.Z"}`, fieldErrors("endedAt", "Must be an RFC 3339 date-time, e.g. 2026-11-22T10:00:00Z")},
			{"every bad field", `{"sessionExternalId":"` + long + `","status":"done","tokens":-5,"metadata":[]}`,
				fieldErrors("sessionExternalId", "Must be at most 255 characters", "status", "Must be one of: active, completed, failed",
					"tokens", "Must be an integer ≥ 0", "metadata", "Must be a JSON object")},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				details := map[string]any{"field": tt.errors[0].Field, "reason": tt.errors[0].Reason}
				if len(tt.errors) > 1 {
					details["errors"] = tt.errors
				}
				r := l.as("POST", "/v1/sessions", tt.body)
				wantError(t, r, apierror.ValidationError, tt.errors[0].Reason, details)
				if len(tt.errors) == 1 && r.err(t).Details["errors"] != nil {
					t.Errorf("one bad field, but details.errors = %v", r.err(t).Details["errors"])
				}
			})
		}
		// Metadata of exactly the limit, measured compact, is accepted.
		exact := `{"k":"` + strings.Repeat("x", api.MaxMetadataBytes-8) + `"}`
		if r := l.as("POST", "/v1/sessions", `{"sessionExternalId":"meta-max","metadata":  `+exact+`}`); r.status != 201 {
			t.Errorf("metadata of %d bytes = %d: %.200s", len(exact), r.status, r.body)
		}
	})

	t.Run("get missing", func(t *testing.T) {
		wantError(t, l.as("GET", "/v1/sessions/ses_01JZZZZZZZZZZZZZZZZZZZZZZZ", ""), apierror.NotFound,
			"Session not found", map[string]any{"resource": "session"})
		wantError(t, l.as("GET", "/v1/sessions/nonsense", ""), apierror.NotFound, "Session not found", map[string]any{"resource": "session"})
	})

	t.Run("list", func(t *testing.T) {
		var ids []string
		for _, id := range listAll[api.Session](t, l, "/v1/sessions", 2) {
			ids = append(ids, id.ID)
		}
		all := into[struct {
			Data []api.Session `json:"data"`
		}](t, l.as("GET", "/v1/sessions?limit=100", "")).Data
		if len(all) < 3 || len(ids) != len(all) {
			t.Fatalf("paged %d sessions, one page of 100 has %d", len(ids), len(all))
		}
		for i, s := range all {
			if ids[i] != s.ID {
				t.Errorf("page order [%d] = %s, want %s", i, ids[i], s.ID)
			}
		}
		if !slices.IsSorted(ids) {
			t.Errorf("ids not in creation order: %v", ids)
		}
		for _, q := range []struct{ query, want string }{
			{"?status=completed", created.ID},
			{"?source=web", created.ID},
			{"?status=completed&source=web", created.ID},
			{"?status=failed", ""},
			{"?source=nowhere", ""},
		} {
			got := into[struct {
				Data       []api.Session `json:"data"`
				NextCursor *string       `json:"next_cursor"`
			}](t, l.as("GET", "/v1/sessions"+q.query, ""))
			var gotIDs []string
			for _, s := range got.Data {
				gotIDs = append(gotIDs, s.ID)
			}
			var want []string
			if q.want != "" {
				want = []string{q.want}
			}
			if !slices.Equal(gotIDs, want) || got.NextCursor != nil {
				t.Errorf("GET /v1/sessions%s = %v next %v, want %v", q.query, gotIDs, got.NextCursor, want)
			}
		}
		badQueries := []struct{ query, field string }{
			{"?limit=0", "limit"}, {"?limit=101", "limit"}, {"?limit=ten", "limit"}, {"?limit=", "limit"},
			{"?cursor=%25%25", "cursor"}, {"?cursor=bm9wZQ", "cursor"},
			{"?cursor=" + base64.RawURLEncoding.EncodeToString([]byte("lead_01JD3Q8Z4XK5N6P7R8S9T0V1W2")), "cursor"},
			// FuzzCursor: an ID no store issued (lower case sorts after
			// every ID: an empty page instead of a 400).
			{"?cursor=" + base64.RawURLEncoding.EncodeToString([]byte("ses_01jd3q8z4xk5n6p7r8s9t0v1w2")), "cursor"},
			{"?status=done", "status"}, {"?sort=id", "sort"}, {"?limit=1&limit=2", "limit"},
			// Bytes no store can hold (PostgreSQL answered 500).
			{"?source=%00", "source"}, {"?source=web%00", "source"}, {"?source=%ff", "source"},
			// Empty values: not a status, and no exact match on "".
			{"?status=", "status"}, {"?source=", "source"},
		}
		for _, q := range badQueries {
			t.Run(q.query, func(t *testing.T) {
				wantError(t, l.as("GET", "/v1/sessions"+q.query, ""), apierror.InvalidRequest, "", map[string]any{"field": q.field})
			})
		}
	})

	t.Run("patch", func(t *testing.T) {
		id := minimal.ID
		r := l.as("PATCH", "/v1/sessions/"+id, `{"title":"Renamed","tokens":7,"endedAt":"2099-01-01T00:00:00Z","metadata":{"a":1}}`)
		if r.status != 200 {
			t.Fatalf("patch = %d: %s", r.status, r.body)
		}
		got := into[api.Session](t, r)
		end, _ := time.Parse(time.RFC3339, "2099-01-01T00:00:00Z")
		want := minimal
		want.Title, want.Tokens, want.EndedAt, want.Metadata = "Renamed", 7, &end, json.RawMessage(`{"a":1}`)
		if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(api.Session{}, "UpdatedAt")); diff != "" {
			t.Errorf("patch (-want +got):\n%s", diff)
		}
		if got.UpdatedAt.Before(minimal.UpdatedAt) || !got.CreatedAt.Equal(minimal.CreatedAt) {
			t.Errorf("updatedAt %v createdAt %v after patch, before %v %v", got.UpdatedAt, got.CreatedAt, minimal.UpdatedAt, minimal.CreatedAt)
		}
		// null clears the nullable members; absent ones stay.
		got = into[api.Session](t, l.as("PATCH", "/v1/sessions/"+id, `{"endedAt":null,"title":null,"metadata":null}`))
		want.EndedAt, want.Title, want.Metadata = nil, "", json.RawMessage(`{}`)
		if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(api.Session{}, "UpdatedAt")); diff != "" {
			t.Errorf("patch nulls (-want +got):\n%s", diff)
		}
		if r := l.as("PATCH", "/v1/sessions/"+id, `{}`); r.status != 200 || into[api.Session](t, r).Tokens != 7 {
			t.Errorf("empty patch = %d: %s", r.status, r.body)
		}

		wantError(t, l.as("PATCH", "/v1/sessions/"+id, `{"endedAt":"2000-01-01T00:00:00Z"}`), apierror.Unprocessable, "",
			map[string]any{"field": "endedAt", "reason": "endedAt is before startedAt"})
		wantError(t, l.as("PATCH", "/v1/sessions/"+id, `{"tokens":-1,"status":"x"}`), apierror.ValidationError, "",
			map[string]any{"field": "status", "errors": fieldErrors("status", "Must be one of: active, completed, failed", "tokens", "Must be an integer ≥ 0")})
		wantError(t, l.as("PATCH", "/v1/sessions/"+id, `{"sessionExternalId":null}`), apierror.ValidationError, "",
			map[string]any{"field": "sessionExternalId", "reason": "Must not be null"})
		wantError(t, l.as("PATCH", "/v1/sessions/"+id, `{"sessionExternalId":"ext-2"}`), apierror.AlreadyExists, "",
			map[string]any{"field": "sessionExternalId", "resource": "session"})
		wantError(t, l.as("PATCH", "/v1/sessions/"+id, `{"colour":"red"}`), apierror.InvalidRequest, "", map[string]any{"field": "colour"})
		wantError(t, l.as("PATCH", "/v1/sessions/ses_01JZZZZZZZZZZZZZZZZZZZZZZZ", `{"title":"x"}`), apierror.NotFound, "Session not found", nil)

		// Status moves: active → failed is fine, failed → active is not,
		// failed → completed is.
		for _, step := range []struct {
			status string
			want   int
		}{{"failed", 200}, {"active", 422}, {"completed", 200}, {"active", 422}, {"completed", 200}} {
			r := l.as("PATCH", "/v1/sessions/"+id, `{"status":"`+step.status+`"}`)
			if r.status != step.want {
				t.Fatalf("status → %s = %d, want %d: %s", step.status, r.status, step.want, r.body)
			}
			if step.want == 422 {
				wantError(t, r, apierror.Unprocessable, "", map[string]any{"field": "status"})
				if e := r.err(t); e.Details["reason"] == nil {
					t.Errorf("422 without reason: %s", r.body)
				}
			}
		}
	})

	t.Run("delete", func(t *testing.T) {
		r := l.as("POST", "/v1/sessions", `{"sessionExternalId":"doomed"}`)
		id := into[api.Session](t, r).ID
		if r := l.as("DELETE", "/v1/sessions/"+id, ""); r.status != 204 || len(r.body) != 0 {
			t.Fatalf("delete = %d %q", r.status, r.body)
		}
		wantError(t, l.as("GET", "/v1/sessions/"+id, ""), apierror.NotFound, "Session not found", nil)
		wantError(t, l.as("DELETE", "/v1/sessions/"+id, ""), apierror.NotFound, "Session not found", map[string]any{"resource": "session"})
		// The external id is free again.
		if r := l.as("POST", "/v1/sessions", `{"sessionExternalId":"doomed"}`); r.status != 201 {
			t.Errorf("re-create after delete = %d: %s", r.status, r.body)
		}
	})
}

// listAll pages through path with limit, checking that no page holds more
// than limit items and that every page but the last is full and carries a
// cursor.
func listAll[T any](t *testing.T, l *live, path string, limit int) []T {
	t.Helper()
	var all []T
	cursor := ""
	for range 1000 {
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		q := sep + "limit=" + strconv.Itoa(limit)
		if cursor != "" {
			q += "&cursor=" + cursor
		}
		r := l.as("GET", path+q, "")
		if r.status != 200 {
			t.Fatalf("GET %s%s = %d: %s", path, q, r.status, r.body)
		}
		page := into[struct {
			Data       []T     `json:"data"`
			NextCursor *string `json:"next_cursor"`
		}](t, r)
		if len(page.Data) > limit {
			t.Fatalf("GET %s%s: a page of %d items, limit %d", path, q, len(page.Data), limit)
		}
		all = append(all, page.Data...)
		if page.NextCursor == nil {
			return all
		}
		if len(page.Data) != limit {
			t.Fatalf("a page with a next cursor has %d items, want %d", len(page.Data), limit)
		}
		cursor = *page.NextCursor
	}
	t.Fatal("pagination does not end")
	return nil
}

func testLeads(t *testing.T, l *live) {
	r := l.as("POST", "/v1/leads", `{"name":"Ada Lovelace","phone":"+44 (20) 7946-0958"}`)
	if r.status != 201 {
		t.Fatalf("create = %d: %s", r.status, r.body)
	}
	ada := into[api.Lead](t, r)
	if !strings.HasPrefix(ada.ID, "lead_") || r.header.Get("Location") != "/v1/leads/"+ada.ID {
		t.Errorf("id %q Location %q", ada.ID, r.header.Get("Location"))
	}
	want := api.Lead{Name: "Ada Lovelace", Phone: "+442079460958", Status: "new"}
	ignore := cmpopts.IgnoreFields(api.Lead{}, "ID", "CreatedAt", "UpdatedAt")
	if diff := cmp.Diff(want, ada, ignore); diff != "" {
		t.Errorf("create (-want +got):\n%s", diff)
	}
	r = l.as("POST", "/v1/leads", `{"name":"Grace","email":"grace@navy.example.com","phone":"001.415.555.0123","company":"Navy","notes":"COBOL","status":"qualified"}`)
	grace := into[api.Lead](t, r)
	want = api.Lead{Name: "Grace", Email: "grace@navy.example.com", Phone: "+14155550123", Company: "Navy", Notes: "COBOL", Status: "qualified"}
	if diff := cmp.Diff(want, grace, ignore); r.status != 201 || diff != "" {
		t.Errorf("create full = %d (-want +got):\n%s", r.status, diff)
	}
	if got := into[api.Lead](t, l.as("GET", "/v1/leads/"+grace.ID, "")); !cmp.Equal(got, grace) {
		t.Errorf("GET = %+v, want %+v", got, grace)
	}

	t.Run("create errors", func(t *testing.T) {
		for _, body := range []string{
			`{"name":"Copy","phone":"0044 20 7946 0958"}`,
			`{"name":"Copy","phone":"+442079460958"}`,
			`{"name":"Copy","phone":"+44.20.7946.0958"}`,
		} {
			wantError(t, l.as("POST", "/v1/leads", body), apierror.AlreadyExists,
				"A lead with this phone number already exists", map[string]any{"field": "phone", "resource": "lead"})
		}
		wantError(t, l.as("POST", "/v1/leads", `{"name":"Ada"}`), apierror.MissingField, "Missing required field: phone", map[string]any{"field": "phone"})
		wantError(t, l.as("POST", "/v1/leads", `{"phone":"+14155550100"}`), apierror.MissingField, "Missing required field: name", map[string]any{"field": "name"})
		wantError(t, l.as("POST", "/v1/leads", `{"name":"Ada","email":"ada@","phone":"+14155550100"}`), apierror.ValidationError,
			"Invalid email format", map[string]any{"field": "email", "reason": "Invalid email format"})
	})

	t.Run("validation", func(t *testing.T) {
		tests := []struct {
			name   string
			body   string
			errors []apierror.FieldError
		}{
			{"display name email", `{"name":"A","email":"Ada <ada@example.com>","phone":"+14155550100"}`, fieldErrors("email", api.ReasonEmail)},
			{"email without dot", `{"name":"A","email":"ada@localhost","phone":"+14155550100"}`, fieldErrors("email", api.ReasonEmail)},
			{"email with space", `{"name":"A","email":" ada@example.com","phone":"+14155550100"}`, fieldErrors("email", api.ReasonEmail)},
			{"phone too short", `{"name":"A","phone":"+1234567"}`, fieldErrors("phone", api.ReasonPhone)},
			{"phone too long", `{"name":"A","phone":"+1234567890123456"}`, fieldErrors("phone", api.ReasonPhone)},
			{"phone without plus", `{"name":"A","phone":"4155550100"}`, fieldErrors("phone", api.ReasonPhone)},
			{"phone letters", `{"name":"A","phone":"+1 415 CALL NOW"}`, fieldErrors("phone", api.ReasonPhone)},
			{"blank name", `{"name":"  ","phone":"+14155550100"}`, fieldErrors("name", "Must not be empty")},
			{"bad status", `{"name":"A","phone":"+14155550100","status":"won"}`, fieldErrors("status", "Must be one of: new, contacted, qualified, lost")},
			{"notes too long", `{"name":"A","phone":"+14155550100","notes":"` + strings.Repeat("n", api.MaxNotesLen+1) + `"}`, fieldErrors("notes", "Must be at most 10000 characters")},
			{"several", `{"name":"","email":"nope","phone":"12","status":"won"}`,
				fieldErrors("name", "Must not be empty", "email", api.ReasonEmail, "phone", api.ReasonPhone, "status", "Must be one of: new, contacted, qualified, lost")},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				details := map[string]any{"field": tt.errors[0].Field, "reason": tt.errors[0].Reason}
				if len(tt.errors) > 1 {
					details["errors"] = tt.errors
				}
				wantError(t, l.as("POST", "/v1/leads", tt.body), apierror.ValidationError, tt.errors[0].Reason, details)
			})
		}
	})

	t.Run("get missing", func(t *testing.T) {
		wantError(t, l.as("GET", "/v1/leads/lead_01JZZZZZZZZZZZZZZZZZZZZZZZ", ""), apierror.NotFound, "Lead not found", map[string]any{"resource": "lead"})
	})

	t.Run("list", func(t *testing.T) {
		for i := range 3 {
			if r := l.as("POST", "/v1/leads", fmt.Sprintf(`{"name":"L%d","phone":"+1415555020%d","status":"lost"}`, i, i)); r.status != 201 {
				t.Fatalf("create = %d: %s", r.status, r.body)
			}
		}
		all := listAll[api.Lead](t, l, "/v1/leads", 2)
		if len(all) != 5 {
			t.Errorf("paged %d leads, want 5", len(all))
		}
		if all[0].ID != ada.ID || all[1].ID != grace.ID {
			t.Errorf("first two = %s %s, want %s %s", all[0].ID, all[1].ID, ada.ID, grace.ID)
		}
		lost := into[struct {
			Data []api.Lead `json:"data"`
		}](t, l.as("GET", "/v1/leads?status=lost", "")).Data
		if len(lost) != 3 {
			t.Errorf("status=lost: %d leads, want 3", len(lost))
		}
		if got := listAll[api.Lead](t, l, "/v1/leads?status=lost", 1); len(got) != 3 {
			t.Errorf("status=lost paged by 1: %d leads, want 3", len(got))
		}
		for _, q := range []struct{ query, field string }{
			{"?status=won", "status"}, {"?status=", "status"}, {"?limit=-1", "limit"}, {"?limit=1000", "limit"}, {"?cursor=" + ada.ID, "cursor"},
			{"?source=web", "source"},
			{"?cursor=" + base64.RawURLEncoding.EncodeToString([]byte("ses_01JD3Q8Z4XK5N6P7R8S9T0V1W2")), "cursor"},
		} {
			wantError(t, l.as("GET", "/v1/leads"+q.query, ""), apierror.InvalidRequest, "", map[string]any{"field": q.field})
		}
	})

	t.Run("patch", func(t *testing.T) {
		r := l.as("PATCH", "/v1/leads/"+grace.ID, `{"status":"contacted","phone":"+1 (415) 555-0199","email":null}`)
		if r.status != 200 {
			t.Fatalf("patch = %d: %s", r.status, r.body)
		}
		got := into[api.Lead](t, r)
		want := grace
		want.Status, want.Phone, want.Email = "contacted", "+14155550199", ""
		if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(api.Lead{}, "UpdatedAt")); diff != "" {
			t.Errorf("patch (-want +got):\n%s", diff)
		}
		wantError(t, l.as("PATCH", "/v1/leads/"+grace.ID, `{"phone":"0044 20 7946 0958"}`), apierror.AlreadyExists,
			"A lead with this phone number already exists", map[string]any{"field": "phone", "resource": "lead"})
		wantError(t, l.as("PATCH", "/v1/leads/"+grace.ID, `{"email":"x@y"}`), apierror.ValidationError, "Invalid email format",
			map[string]any{"field": "email", "reason": "Invalid email format"})
		wantError(t, l.as("PATCH", "/v1/leads/"+grace.ID, `{"phone":null}`), apierror.ValidationError, "",
			map[string]any{"field": "phone", "reason": "Must not be null"})
		wantError(t, l.as("PATCH", "/v1/leads/lead_01JZZZZZZZZZZZZZZZZZZZZZZZ", `{"name":"x"}`), apierror.NotFound, "Lead not found", nil)
		// Its own phone, written differently, is not a conflict.
		if r := l.as("PATCH", "/v1/leads/"+grace.ID, `{"phone":"00 1 415 555 0199"}`); r.status != 200 {
			t.Errorf("same phone = %d: %s", r.status, r.body)
		}
	})

	t.Run("delete", func(t *testing.T) {
		if r := l.as("DELETE", "/v1/leads/"+ada.ID, ""); r.status != 204 {
			t.Fatalf("delete = %d: %s", r.status, r.body)
		}
		wantError(t, l.as("GET", "/v1/leads/"+ada.ID, ""), apierror.NotFound, "Lead not found", map[string]any{"resource": "lead"})
		wantError(t, l.as("DELETE", "/v1/leads/"+ada.ID, ""), apierror.NotFound, "Lead not found", map[string]any{"resource": "lead"})
		if r := l.as("POST", "/v1/leads", `{"name":"Ada again","phone":"+442079460958"}`); r.status != 201 {
			t.Errorf("phone reusable after delete: %d %s", r.status, r.body)
		}
	})
}

func testKeys(t *testing.T, l *live) {
	r := l.as("POST", "/v1/keys", `{"name":"ci","scopes":["leads:read"],"rate":"600/1m"}`)
	if r.status != 201 {
		t.Fatalf("create = %d: %s", r.status, r.body)
	}
	ci := into[api.CreatedKey](t, r)
	if r := l.as("GET", "/v1/keys", ""); r.status != 200 || strings.Contains(string(r.body), ci.Secret) {
		t.Errorf("list = %d (or shows the secret): %s", r.status, r.body)
	}
	if r := l.as("GET", "/v1/keys/"+ci.ID, ""); r.status != 200 {
		t.Errorf("get = %d: %s", r.status, r.body)
	}
	r = l.as("POST", "/v1/keys/"+ci.ID+"/rotate", `{"overlap":"0s"}`)
	if r.status != 201 || into[api.CreatedKey](t, r).PreviousKeyExpiresAt == nil {
		t.Fatalf("rotate = %d: %s", r.status, r.body)
	}
	next := into[api.CreatedKey](t, r)
	if r := l.as("POST", "/v1/keys/"+next.ID+"/rotate", ""); r.status != 201 {
		t.Errorf("rotate without a body = %d: %s", r.status, r.body)
	}
	if r := l.as("DELETE", "/v1/keys/"+next.ID, ""); r.status != 204 {
		t.Errorf("revoke = %d: %s", r.status, r.body)
	}
	wantError(t, l.as("POST", "/v1/keys/"+next.ID+"/rotate", `{}`), apierror.Conflict, "", nil)
	wantError(t, l.as("GET", "/v1/keys/key_01JZZZZZZZZZZZZZZZZZZZZZZZ", ""), apierror.NotFound, "API key not found", map[string]any{"resource": "key"})
	wantError(t, l.as("POST", "/v1/keys/key_01JZZZZZZZZZZZZZZZZZZZZZZZ/rotate", `{}`), apierror.NotFound, "API key not found", map[string]any{"resource": "key"})
	wantError(t, l.as("POST", "/v1/keys", `{"name":"x","scopes":["*"],"expires_at":"2001-01-01T00:00:00Z"}`), apierror.Unprocessable, "",
		map[string]any{"field": "expires_at"})
	wantError(t, l.as("POST", "/v1/keys", `{"name":"x","scopes":["root"]}`), apierror.ValidationError, "", map[string]any{"field": "scopes"})
	wantError(t, l.as("POST", "/v1/keys", `{"name":"x","scopes":["*"],"expires_at":"9999-12-31T23:00:00-05:00"}`), apierror.ValidationError, "",
		map[string]any{"field": "expires_at", "reason": "Must be between 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z"})
	wantError(t, l.as("POST", "/v1/keys", `{"name":"x","scopes":["*"],"expires_at":"2030-01-01"}`), apierror.InvalidRequest,
		"Field expires_at must be an RFC 3339 date-time string.", map[string]any{"field": "expires_at", "reason": "wrong type"})
	wantError(t, l.as("GET", "/v1/keys?status=active", ""), apierror.InvalidRequest, "", map[string]any{"field": "status", "reason": "unknown parameter"})
	wantError(t, l.as("GET", "/v1/keys?limit=0", ""), apierror.InvalidRequest, "", map[string]any{"field": "limit"})
	if r := l.as("GET", "/v1/keys", ""); r.status != 200 {
		t.Errorf("list after the refusals = %d: %s", r.status, r.body)
	}
	// A page at a time: every key once, in order, over pages of 2.
	var seen []string
	for cursor, pages := "", 0; ; pages++ {
		if pages > 10 {
			t.Fatal("key pages never end")
		}
		target := "/v1/keys?limit=2"
		if cursor != "" {
			target += "&cursor=" + cursor
		}
		page := into[struct {
			Data       []api.Key `json:"data"`
			NextCursor *string   `json:"next_cursor"`
		}](t, l.as("GET", target, ""))
		if len(page.Data) > 2 {
			t.Fatalf("a page of %d keys, limit 2", len(page.Data))
		}
		for _, k := range page.Data {
			seen = append(seen, k.ID)
		}
		if page.NextCursor == nil {
			break
		}
		cursor = *page.NextCursor
	}
	all, err := l.st.ListKeys(context.Background(), l.account.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != len(all) || !slices.IsSorted(seen) {
		t.Errorf("paged keys %v, want the account's %d keys in order", seen, len(all))
	}
	wantError(t, l.call("POST", "/v1/keys", `{"name":"x","scopes":["*"]}`, bearer(l.key(auth.ScopeKeysWrite))...), apierror.Forbidden, "",
		map[string]any{"missing_scopes": []string{"*"}})
}

// testEveryOperation sends each /v1 operation in the document the
// refusals every authenticated route shares: no key, a key without the
// scope, a key in the query string, and for bodies, a non-JSON type, a
// body over the limit and malformed JSON.
func testEveryOperation(t *testing.T, l *live) {
	none := l.key(auth.ScopeKeysRead) // holds none of the session/lead scopes
	noKeys := l.key(auth.ScopeLeadsRead, auth.ScopeLeadsWrite, auth.ScopeSessionsRead, auth.ScopeSessionsWrite)
	opKey := l.key(auth.ScopeAdminWrite) // the admin routes' scope, not in "*"
	big := `{"notes":"` + strings.Repeat("x", server.DefaultBodyLimit) + `"}`
	for path, item := range l.c.doc.Paths.Map() {
		if !strings.HasPrefix(path, "/v1/") {
			continue
		}
		for method, op := range item.Operations() {
			t.Run(op.OperationID, func(t *testing.T) {
				target := strings.ReplaceAll(path, "{id}", "id_1")
				body := ""
				if op.RequestBody != nil {
					body = `{}`
				}
				wantError(t, l.call(method, target, body), apierror.Unauthorized, "", map[string]any{"reason": "missing"})
				lacking := none
				if strings.HasPrefix(path, "/v1/keys") {
					lacking = noKeys
				}
				as := func(method, target, body string, hdr ...string) reply {
					key := l.admin
					if strings.HasPrefix(path, "/v1/admin/") {
						key = opKey
					}
					return l.call(method, target, body, append(bearer(key), hdr...)...)
				}
				wantError(t, l.call(method, target, body, bearer(lacking)...), apierror.Forbidden, "", nil)
				wantError(t, l.call(method, target+"?api_key="+l.admin, body), apierror.InvalidRequest, "",
					map[string]any{"reason": "key in query string"})
				wantError(t, l.call(method, target, body, "Authorization", "Bearer "+l.admin, "x-api-key", none), apierror.InvalidRequest, "",
					map[string]any{"reason": "conflicting credentials"})
				if op.RequestBody == nil {
					if r := as(method, target, ""); r.status/100 != 2 && r.status != 404 {
						t.Errorf("plain call = %d: %s", r.status, r.body)
					}
					return
				}
				wantError(t, as(method, target, `name=x`, "Content-Type", "application/x-www-form-urlencoded"), apierror.UnsupportedMediaType, "",
					map[string]any{"supported": []string{"application/json"}})
				wantError(t, as(method, target, big), apierror.PayloadTooLarge, "", map[string]any{"limit_bytes": server.DefaultBodyLimit})
				wantError(t, as(method, target, `{"name":`), apierror.InvalidRequest, "", nil)
			})
		}
	}
}

// testIdempotency: a POST or PATCH with an Idempotency-Key is answered
// once and replayed; the key with another body is 422; while the first
// request runs, 409 with Retry-After.
func testIdempotency(t *testing.T, l *live) {
	for _, tt := range []struct{ name, method, path, body, other string }{
		{"create lead", "POST", "/v1/leads", `{"name":"Idem","phone":"+14155550777"}`, `{"name":"Idem","phone":"+14155550778"}`},
		{"create session", "POST", "/v1/sessions", `{"sessionExternalId":"idem-1"}`, `{"sessionExternalId":"idem-2"}`},
		{"create key", "POST", "/v1/keys", `{"name":"idem","scopes":["leads:read"]}`, `{"name":"idem2","scopes":["leads:read"]}`},
		{"update lead (404 is kept)", "PATCH", "/v1/leads/lead_01JZZZZZZZZZZZZZZZZZZZZZZZ", `{"name":"x"}`, `{"name":"y"}`},
		{"update session (404 is kept)", "PATCH", "/v1/sessions/ses_01JZZZZZZZZZZZZZZZZZZZZZZZ", `{"title":"x"}`, `{"title":"y"}`},
		{"rotate key (404 is kept)", "POST", "/v1/keys/key_01JZZZZZZZZZZZZZZZZZZZZZZZ/rotate", `{"overlap":"1h"}`, `{"overlap":"2h"}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			key := "idem-" + strings.ReplaceAll(tt.name, " ", "-")
			first := l.as(tt.method, tt.path, tt.body, "Idempotency-Key", key)
			if first.status/100 != 2 && first.status != 404 {
				t.Fatalf("first = %d: %s", first.status, first.body)
			}
			again := l.as(tt.method, tt.path, tt.body, "Idempotency-Key", key)
			want := first.body
			if tt.name == "create key" {
				// The secret is shown once: a replay answers the same
				// key with "key": null, and it is never stored.
				secret := into[api.CreatedKey](t, first).Secret
				want = bytes.Replace(first.body, []byte(`"key":"`+secret+`"`), []byte(`"key":null`), 1)
				if bytes.Equal(want, first.body) {
					t.Fatalf("first answer has no secret: %s", first.body)
				}
				rec, claimed, err := l.st.ClaimIdempotencyKey(context.Background(), store.IdempotencyClaim{
					AccountID: l.account.ID, Key: key, Fingerprint: store.NewFingerprint(tt.method, tt.path, []byte(tt.body)),
					Lease: time.Minute, Retention: time.Hour,
				})
				if err != nil || claimed || rec.Response == nil || bytes.Contains(rec.Response.Body, []byte(secret)) {
					t.Errorf("stored record (claimed %v, err %v) holds the secret or nothing: %+v", claimed, err, rec.Response)
				}
			}
			if again.status != first.status || !bytes.Equal(again.body, want) || again.header.Get("Idempotent-Replayed") != "true" {
				t.Errorf("replay = %d %q (Idempotent-Replayed %q), want %d %q", again.status, again.body, again.header.Get("Idempotent-Replayed"), first.status, want)
			}
			// A key of the same account without the route's scope is
			// refused before the replay could show it anything.
			lacking := l.key(auth.ScopeSessionsRead)
			wantError(t, l.call(tt.method, tt.path, tt.body, append(bearer(lacking), "Idempotency-Key", key)...), apierror.Forbidden, "", nil)
			wantError(t, l.as(tt.method, tt.path, tt.other, "Idempotency-Key", key), apierror.IdempotencyKeyReused, "", nil)
		})
	}
	t.Run("in use", func(t *testing.T) {
		admin, err := l.st.KeyByHash(context.Background(), auth.Hash(l.admin))
		if err != nil {
			t.Fatal(err)
		}
		for _, tt := range []struct {
			path, body string
			perKey     bool // the keys API: the Idempotency-Key belongs to the API key
		}{
			{"/v1/sessions", `{"sessionExternalId":"busy"}`, false},
			{"/v1/keys", `{"name":"busy","scopes":["leads:read"]}`, true},
		} {
			fp := store.NewFingerprint("POST", tt.path, []byte(tt.body))
			if tt.perKey {
				fp = fp.ForKey(admin.ID)
			}
			key := "busy" + tt.path
			_, claimed, err := l.st.ClaimIdempotencyKey(context.Background(), store.IdempotencyClaim{
				AccountID: l.account.ID, Key: key, Fingerprint: fp, Lease: time.Minute, Retention: time.Hour,
			})
			if err != nil || !claimed {
				t.Fatalf("claim: %v %v", claimed, err)
			}
			r := l.as("POST", tt.path, tt.body, "Idempotency-Key", key)
			wantError(t, r, apierror.IdempotencyKeyInUse, "", nil)
			if r.header.Get("Retry-After") != "1" {
				t.Errorf("%s: Retry-After = %q, want 1", tt.path, r.header.Get("Retry-After"))
			}
		}
	})
	wantError(t, l.as("POST", "/v1/leads", `{"name":"x","phone":"+14155550779"}`, "Idempotency-Key", strings.Repeat("k", 256)),
		apierror.InvalidRequest, "", map[string]any{"field": "Idempotency-Key"})
}

// testMaintenance turns maintenance mode on and off through the admin
// route: while on, the API answers 503 with Retry-After and /healthz 200.
func testMaintenance(t *testing.T, l *live) {
	op := bearer(l.key(auth.ScopeAdminWrite))
	if r := l.call("GET", "/v1/admin/maintenance", "", op...); r.status != 200 || string(r.body) != `{"enabled":false}`+"\n" {
		t.Fatalf("GET = %d %s", r.status, r.body)
	}
	if r := l.call("PUT", "/v1/admin/maintenance", `{"enabled":true}`, op...); r.status != 200 || !l.maint.On() {
		t.Fatalf("PUT on = %d %s", r.status, r.body)
	}
	r := l.as("GET", "/v1/leads", "")
	wantError(t, r, apierror.ServiceUnavailable, "", map[string]any{"reason": "maintenance", "retry_after": 30})
	if r.header.Get("Retry-After") != "30" {
		t.Errorf("Retry-After = %q", r.header.Get("Retry-After"))
	}
	if r := l.call("GET", "/healthz", ""); r.status != 200 {
		t.Errorf("/healthz during maintenance = %d", r.status)
	}
	wantError(t, l.call("PUT", "/v1/admin/maintenance", `{}`, op...), apierror.MissingField, "Missing required field: enabled", nil)
	if r := l.call("PUT", "/v1/admin/maintenance", `{"enabled":false}`, op...); r.status != 200 || l.maint.On() {
		t.Fatalf("PUT off = %d %s", r.status, r.body)
	}
	if r := l.as("GET", "/v1/leads", ""); r.status != 200 {
		t.Errorf("after maintenance: %d", r.status)
	}
}

// testOperational covers the public routes, the router's own errors and
// problem+json.
func testOperational(t *testing.T, l *live) {
	for _, p := range []string{"/healthz", "/readyz", "/metrics", "/openapi.json"} {
		if r := l.call("GET", p, ""); r.status != 200 {
			t.Errorf("GET %s = %d: %s", p, r.status, r.body)
		}
	}
	r := l.call("GET", "/openapi.json", "")
	if !bytes.Equal(r.body, api.OpenAPIDocument()) {
		t.Errorf("/openapi.json differs from the embedded document")
	}
	if r := l.call("GET", "/openapi.json", "", "If-None-Match", r.header.Get("ETag")); r.status != 304 {
		t.Errorf("If-None-Match = %d", r.status)
	}
	wantError(t, l.as("GET", "/v1/nope", ""), apierror.RouteNotFound, "", map[string]any{"path": "/v1/nope"})
	r = l.as("PUT", "/v1/leads", `{}`)
	wantError(t, r, apierror.MethodNotAllowed, "", map[string]any{"allowed": []string{"GET", "HEAD", "POST"}})
	if r.header.Get("Allow") != "GET, HEAD, POST" {
		t.Errorf("Allow = %q", r.header.Get("Allow"))
	}
	r = l.as("GET", "/v1/leads/lead_01JZZZZZZZZZZZZZZZZZZZZZZZ", "", "Accept", "application/problem+json")
	if r.status != 404 || r.header.Get("Content-Type") != apierror.ContentTypeProblem {
		t.Errorf("problem+json: %d %q %s", r.status, r.header.Get("Content-Type"), r.body)
	}
	// The x-api-key header works as Bearer does.
	if r := l.call("GET", "/v1/leads", "", "x-api-key", l.admin); r.status != 200 {
		t.Errorf("x-api-key = %d: %s", r.status, r.body)
	}
}

// TestCrossTenant: for every id route, account B asking for account A's
// id gets the answer a nonexistent id gets, byte for byte (the same
// X-Request-Id is sent), with the same headers apart from Date; and A's
// records are untouched.
func TestCrossTenant(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			// Without the rate limiter: X-RateLimit-Reset moves with the
			// clock, not with the tenant.
			l := startLive(t, b.open(t), liveOptions{noRateLimit: true})
			theirs := l.otherAccountKey(auth.ScopeAll)
			ses := into[api.Session](t, l.as("POST", "/v1/sessions", `{"sessionExternalId":"a-1"}`)).ID
			lead := into[api.Lead](t, l.as("POST", "/v1/leads", `{"name":"A","phone":"+14155550100"}`)).ID
			key := into[api.CreatedKey](t, l.as("POST", "/v1/keys", `{"name":"a","scopes":["leads:read"]}`)).ID
			missing := map[string]string{
				ses:  "ses_01JZZZZZZZZZZZZZZZZZZZZZZZ",
				lead: "lead_01JZZZZZZZZZZZZZZZZZZZZZZZ",
				key:  "key_01JZZZZZZZZZZZZZZZZZZZZZZZ",
			}
			tests := []struct {
				name, method, path, id, body string
			}{
				{"get session", "GET", "/v1/sessions/%s", ses, ""},
				{"patch session", "PATCH", "/v1/sessions/%s", ses, `{"title":"mine now"}`},
				{"delete session", "DELETE", "/v1/sessions/%s", ses, ""},
				{"get lead", "GET", "/v1/leads/%s", lead, ""},
				{"patch lead", "PATCH", "/v1/leads/%s", lead, `{"name":"mine now"}`},
				{"delete lead", "DELETE", "/v1/leads/%s", lead, ""},
				{"get key", "GET", "/v1/keys/%s", key, ""},
				{"revoke key", "DELETE", "/v1/keys/%s", key, ""},
				{"rotate key", "POST", "/v1/keys/%s/rotate", key, `{}`},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					hdr := append(bearer(theirs.Secret), "X-Request-Id", "cross-tenant-1")
					a := l.call(tt.method, fmt.Sprintf(tt.path, tt.id), tt.body, hdr...)
					m := l.call(tt.method, fmt.Sprintf(tt.path, missing[tt.id]), tt.body, hdr...)
					if a.status != 404 {
						t.Fatalf("another account's id: %d %s", a.status, a.body)
					}
					if a.status != m.status || !bytes.Equal(a.body, m.body) {
						t.Errorf("another account's id: %d %s\nnonexistent id: %d %s", a.status, a.body, m.status, m.body)
					}
					ha, hm := a.header.Clone(), m.header.Clone()
					ha.Del("Date")
					hm.Del("Date")
					if diff := cmp.Diff(hm, ha); diff != "" {
						t.Errorf("headers (-nonexistent +another account's):\n%s", diff)
					}
				})
			}
			// A still has everything, unchanged.
			if got := into[api.Session](t, l.as("GET", "/v1/sessions/"+ses, "")); got.Title != "" {
				t.Errorf("A's session changed: %+v", got)
			}
			if got := into[api.Lead](t, l.as("GET", "/v1/leads/"+lead, "")); got.Name != "A" {
				t.Errorf("A's lead changed: %+v", got)
			}
			if got := into[api.Key](t, l.as("GET", "/v1/keys/"+key, "")); got.RevokedAt != nil || got.ExpiresAt != nil {
				t.Errorf("A's key changed: %+v", got)
			}
			// B's lists do not show A's records.
			for _, p := range []string{"/v1/sessions", "/v1/leads", "/v1/keys"} {
				r := l.call("GET", p, "", bearer(theirs.Secret)...)
				if r.status != 200 || bytes.Contains(r.body, []byte(ses)) || bytes.Contains(r.body, []byte(lead)) || bytes.Contains(r.body, []byte(key)) {
					t.Errorf("B's %s shows A's records: %d %s", p, r.status, r.body)
				}
			}
		})
	}
}

// TestLoad measures POST /v1/leads throughput and latency over loopback
// HTTP on each backend: 8 clients for 5 s each, unique phones. It runs
// only with TOLLGATE_LOAD=1:
//
//	TOLLGATE_LOAD=1 go test ./internal/api -run TestLoad -v
func TestLoad(t *testing.T) {
	if os.Getenv("TOLLGATE_LOAD") != "1" {
		t.Skip("set TOLLGATE_LOAD=1 to run the load test")
	}
	const clients = 8
	duration := 5 * time.Second
	if d, err := time.ParseDuration(os.Getenv("TOLLGATE_LOAD_DURATION")); err == nil {
		duration = d
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			st := b.open(t)
			ctx := context.Background()
			acc, _, err := st.EnsureAccount(ctx, "load")
			if err != nil {
				t.Fatal(err)
			}
			admin, err := api.CreateKey(ctx, st, acc.ID, api.KeyRequest{Name: "admin", Scopes: []string{auth.ScopeAll}})
			if err != nil {
				t.Fatal(err)
			}
			srv := server.New(server.Config{})
			api.New(api.Config{Store: st, Verifier: auth.NewVerifier(store.AuthKeys(st))}).Routes(srv.Handle)
			ts := httptest.NewServer(srv.Handler())
			defer ts.Close()
			tr := &http.Transport{MaxIdleConnsPerHost: clients}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr}

			var seq atomic.Int64
			var failures atomic.Int64
			lat := make([][]time.Duration, clients)
			deadline := time.Now().Add(duration)
			start := time.Now()
			var wg sync.WaitGroup
			for c := range clients {
				wg.Go(func() {
					for time.Now().Before(deadline) {
						n := seq.Add(1)
						body := fmt.Sprintf(`{"name":"Load %d","phone":"+1%010d","email":"l%d@example.com"}`, n, 2000000000+n, n)
						req, _ := http.NewRequest("POST", ts.URL+"/v1/leads", strings.NewReader(body))
						req.Header.Set("Content-Type", "application/json")
						req.Header.Set("Authorization", "Bearer "+admin.Secret)
						t0 := time.Now()
						resp, err := client.Do(req)
						if err != nil {
							failures.Add(1)
							continue
						}
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode != 201 {
							failures.Add(1)
							continue
						}
						lat[c] = append(lat[c], time.Since(t0))
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			var all []time.Duration
			for _, l := range lat {
				all = append(all, l...)
			}
			slices.Sort(all)
			if len(all) == 0 {
				t.Fatalf("no request succeeded (%d failures)", failures.Load())
			}
			pct := func(p float64) time.Duration { return all[min(len(all)-1, int(p*float64(len(all))))] }
			t.Logf("%s: POST /v1/leads, %d clients, %v: %d created, %d failed, %.0f req/s, p50 %v, p99 %v, max %v",
				b.name, clients, elapsed.Round(time.Millisecond), len(all), failures.Load(),
				float64(len(all))/elapsed.Seconds(), pct(0.50).Round(10*time.Microsecond), pct(0.99).Round(10*time.Microsecond), all[len(all)-1].Round(10*time.Microsecond))
			if failures.Load() > 0 {
				t.Errorf("%d requests failed", failures.Load())
			}
		})
	}
}
