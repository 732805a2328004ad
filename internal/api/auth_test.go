package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/apierror"
	"github.com/tollgate-dev/tollgate/auth"
	"github.com/tollgate-dev/tollgate/internal/api"
	"github.com/tollgate-dev/tollgate/internal/server"
	"github.com/tollgate-dev/tollgate/internal/testenv"
	"github.com/tollgate-dev/tollgate/logjson"
	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/ratelimit"
	"github.com/tollgate-dev/tollgate/store"
	"github.com/tollgate-dev/tollgate/store/sqlite"
)

// env is a server over a real SQLite store, with an account and its admin
// key.
type env struct {
	t       *testing.T
	st      store.Store
	clock   *testenv.Clock
	h       http.Handler
	account store.Account
	admin   string
	v       *auth.Verifier
	logs    *bytes.Buffer
}

func newEnv(t *testing.T, st store.Store) *env {
	t.Helper()
	return newEnvGuard(t, st, 1000)
}

// newEnvAt is newEnv on a SQLite file at path.
func newEnvAt(t *testing.T, path string) *env {
	t.Helper()
	db, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return newEnv(t, db)
}

// newEnvGuard is newEnv with a guard admitting guardLimit failed
// authentications per minute per client address.
func newEnvGuard(t *testing.T, st store.Store, guardLimit int) *env {
	t.Helper()
	ctx := context.Background()
	c := testenv.NewClock(time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC))
	if st == nil {
		db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "test.db"), sqlite.WithClock(c.Now))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		st = db
	}
	acc, _, err := st.EnsureAccount(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	admin, err := api.CreateKey(ctx, st, acc.ID, api.KeyRequest{Name: "admin", Scopes: []string{auth.ScopeAll}})
	if err != nil {
		t.Fatal(err)
	}
	v := auth.NewVerifier(store.AuthKeys(st), auth.WithClock(c.Now))
	guard := middleware.NewGuard(ratelimit.NewMemoryStore(ratelimit.MemoryOptions{Now: c.Now}), ratelimit.Policy{Name: "auth_failures", Limit: guardLimit, Window: time.Minute}, c.Now)
	logs := &bytes.Buffer{}
	log := slog.New(logjson.New(logs, &logjson.Options{Level: slog.LevelDebug}))
	srv := server.New(server.Config{Now: c.Now, Logger: log, Checks: map[string]server.Checker{"database": st}})
	api.New(api.Config{Store: st, Verifier: v, Guard: guard, Now: c.Now, Logger: log}).Routes(srv.Handle)
	return &env{t: t, st: st, clock: c, h: srv.Handler(), account: acc, admin: admin.Secret, v: v, logs: logs}
}

// do sends a request; hdr are header name/value pairs.
func (e *env) do(method, target, body string, hdr ...string) *httptest.ResponseRecorder {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r := httptest.NewRequest(method, target, rd)
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Add(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	return w
}

func bearer(k string) []string { return []string{"Authorization", "Bearer " + k} }

func (e *env) newKey(scopes ...string) api.CreatedKey {
	e.t.Helper()
	ck, err := api.CreateKey(context.Background(), e.st, e.account.ID, api.KeyRequest{Name: "k", Scopes: scopes})
	if err != nil {
		e.t.Fatal(err)
	}
	return ck
}

func decode(t *testing.T, w *httptest.ResponseRecorder) *apierror.Error {
	t.Helper()
	e := apierror.Decode(w.Result())
	if e.Foreign {
		t.Fatalf("status %d: not a tollgate error: %s", w.Code, w.Body)
	}
	return e
}

func TestKeyStatesByHeader(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	valid := e.newKey(auth.ScopeKeysRead).Secret
	revoked := e.newKey(auth.ScopeKeysRead)
	if _, err := e.st.RevokeKey(ctx, e.account.ID, revoked.ID, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	past := e.clock.Now().Add(-time.Minute)
	expired, err := api.CreateKey(ctx, e.st, e.account.ID, api.KeyRequest{Name: "old", Scopes: []string{auth.ScopeKeysRead}, ExpiresAt: &past})
	if err != nil {
		t.Fatal(err)
	}
	unknown, _ := auth.NewKey(true)
	badChecksum := valid[:len(valid)-1] + string("0123456789"[(strings.IndexByte("0123456789", valid[len(valid)-1])+1)%10])
	if !strings.ContainsAny(valid[len(valid)-1:], "0123456789") {
		badChecksum = valid[:len(valid)-1] + "0"
		if badChecksum == valid {
			badChecksum = valid[:len(valid)-1] + "1"
		}
	}

	states := []struct {
		name   string
		key    string
		status int
		code   apierror.Code
		reason string
	}{
		{"valid", valid, 200, "", ""},
		{"malformed prefix", "sk_live_" + valid[8:], 401, apierror.Unauthorized, "malformed"},
		{"malformed short", "tg_live_abc", 401, apierror.Unauthorized, "malformed"},
		{"bad checksum", badChecksum, 401, apierror.Unauthorized, "malformed"},
		{"unknown", unknown, 401, apierror.Unauthorized, "unknown"},
		{"revoked", revoked.Secret, 401, apierror.Unauthorized, "revoked"},
		{"expired", expired.Secret, 401, apierror.Unauthorized, "expired"},
	}
	headers := []struct {
		name string
		set  func(k string) []string
	}{
		{"bearer", bearer},
		{"x-api-key", func(k string) []string { return []string{"x-api-key", k} }},
	}
	for _, s := range states {
		for _, h := range headers {
			t.Run(s.name+"/"+h.name, func(t *testing.T) {
				w := e.do("GET", "/v1/keys", "", h.set(s.key)...)
				if w.Code != s.status {
					t.Fatalf("status = %d, want %d: %s", w.Code, s.status, w.Body)
				}
				if s.code == "" {
					return
				}
				got := decode(t, w)
				if got.Code != s.code || got.Details["reason"] != s.reason {
					t.Errorf("code %s reason %v, want %s %s", got.Code, got.Details["reason"], s.code, s.reason)
				}
				if w.Header().Get("WWW-Authenticate") == "" {
					t.Errorf("401 without WWW-Authenticate")
				}
			})
		}
	}

	others := []struct {
		name   string
		target string
		hdr    []string
		status int
		code   apierror.Code
		reason string
	}{
		{"missing", "/v1/keys", nil, 401, apierror.Unauthorized, "missing"},
		{"basic scheme", "/v1/keys", []string{"Authorization", "Basic dXNlcjpwYXNz"}, 401, apierror.Unauthorized, "malformed"},
		{"empty bearer", "/v1/keys", []string{"Authorization", "Bearer "}, 401, apierror.Unauthorized, "malformed"},
		{"both same", "/v1/keys", append(bearer(valid), "x-api-key", valid), 200, "", ""},
		{"both different", "/v1/keys", append(bearer(valid), "x-api-key", unknown), 400, apierror.InvalidRequest, "conflicting credentials"},
		// HTTP trims spaces and tabs only; a key in Unicode spaces is not a key.
		{"spaces and tabs around", "/v1/keys", []string{"Authorization", "\tBearer  " + valid + " \t"}, 200, "", ""},
		{"no-break space after the key", "/v1/keys", []string{"Authorization", "Bearer " + valid + "\u00a0"}, 401, apierror.Unauthorized, "malformed"},
		{"next line before the key", "/v1/keys", []string{"Authorization", "Bearer \u0085" + valid}, 401, apierror.Unauthorized, "malformed"},
		{"ideographic spaces around x-api-key", "/v1/keys", []string{"x-api-key", "\u3000" + valid + "\u2003"}, 401, apierror.Unauthorized, "malformed"},
		{"key in query", "/v1/keys?api_key=" + valid, nil, 400, apierror.InvalidRequest, "key in query string"},
		{"key value in query", "/v1/keys?q=" + valid, bearer(valid), 400, apierror.InvalidRequest, "key in query string"},
		{"bearer value in query", "/v1/keys?authorization=Bearer%20" + valid, bearer(valid), 400, apierror.InvalidRequest, "key in query string"},
		{"key inside a value", "/v1/keys?q=x" + valid, bearer(valid), 400, apierror.InvalidRequest, "key in query string"},
		{"key as a name", "/v1/keys?" + valid, bearer(valid), 400, apierror.InvalidRequest, "key in query string"},
		{"encoded key", "/v1/keys?q=" + strings.Replace(valid, "_", "%5F", 2), bearer(valid), 400, apierror.InvalidRequest, "key in query string"},
		{"authorization name", "/v1/keys?Authorization=x", bearer(valid), 400, apierror.InvalidRequest, "key in query string"},
		{"scope missing", "/v1/keys", bearer(e.newKey(auth.ScopeLeadsRead).Secret), 403, apierror.Forbidden, ""},
	}
	for _, o := range others {
		t.Run(o.name, func(t *testing.T) {
			w := e.do("GET", o.target, "", o.hdr...)
			if w.Code != o.status {
				t.Fatalf("status = %d, want %d: %s", w.Code, o.status, w.Body)
			}
			if o.code == "" {
				return
			}
			got := decode(t, w)
			if got.Code != o.code {
				t.Errorf("code %s, want %s", got.Code, o.code)
			}
			if o.reason != "" && got.Details["reason"] != o.reason {
				t.Errorf("reason %v, want %s", got.Details["reason"], o.reason)
			}
			if o.code == apierror.Forbidden {
				if m, _ := json.Marshal(got.Details["missing_scopes"]); string(m) != `["keys:read"]` {
					t.Errorf("missing_scopes = %s", m)
				}
			}
		})
	}
}

func TestStoreDownIs503(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "down.db"))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, db)
	key := e.newKey(auth.ScopeKeysRead).Secret
	db.Close() // the store is gone; the key was never verified, so not cached
	w := e.do("GET", "/v1/keys", "", bearer(key)...)
	if w.Code != 503 {
		t.Fatalf("status = %d, want 503: %s", w.Code, w.Body)
	}
	got := decode(t, w)
	if got.Code != apierror.ServiceUnavailable || got.Details["reason"] != "store_unavailable" || w.Header().Get("Retry-After") == "" {
		t.Errorf("got %s %v Retry-After %q", got.Code, got.Details, w.Header().Get("Retry-After"))
	}
}

// TestAuthCutShortIsNotOutage: a key lookup cut short by the request's own
// deadline or cancellation answers 503 "timeout" or "cancelled", not
// "store_unavailable" (which alerts on a store outage).
func TestAuthCutShortIsNotOutage(t *testing.T) {
	e := newEnv(t, nil)
	key := e.newKey(auth.ScopeKeysRead).Secret // not yet verified, so not cached
	for _, tt := range []struct {
		name   string
		ctx    func() context.Context
		reason string
	}{
		{"deadline passed", func() context.Context {
			ctx, cancel := context.WithDeadline(context.Background(), time.Unix(1, 0))
			t.Cleanup(cancel)
			return ctx
		}, "timeout"},
		{"cancelled", func() context.Context {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx
		}, "cancelled"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequestWithContext(tt.ctx(), "GET", "/v1/keys", nil)
			r.Header.Set("Authorization", "Bearer "+key)
			w := httptest.NewRecorder()
			e.h.ServeHTTP(w, r)
			got := decode(t, w)
			if w.Code != 503 || got.Details["reason"] != tt.reason {
				t.Errorf("status %d reason %v, want 503 %s: %s", w.Code, got.Details["reason"], tt.reason, w.Body)
			}
		})
	}
}

func TestBruteForceGuard(t *testing.T) {
	e := newEnvGuard(t, nil, 5)
	bad, _ := auth.NewKey(true)
	var statuses []int
	for range 8 {
		statuses = append(statuses, e.do("GET", "/v1/keys", "", bearer(bad)...).Code)
	}
	// The policy admits 5 failures a minute: the 6th fails and blocks.
	want := []int{401, 401, 401, 401, 401, 401, 429, 429}
	if !slices.Equal(statuses, want) {
		t.Fatalf("statuses = %v, want %v", statuses, want)
	}
	w := e.do("GET", "/v1/keys", "", bearer(e.admin)...)
	if w.Code != 429 {
		t.Fatalf("a good key from a blocked address: %d, want 429 (checked before any lookup)", w.Code)
	}
	got := decode(t, w)
	if got.Code != apierror.RateLimited || w.Header().Get("Retry-After") == "" || got.Details["retry_after"] == nil {
		t.Errorf("429 without Retry-After / retry_after: %s", w.Body)
	}
	e.clock.Add(2 * time.Minute)
	if w := e.do("GET", "/v1/keys", "", bearer(e.admin)...); w.Code != 200 {
		t.Errorf("after the block: %d, want 200: %s", w.Code, w.Body)
	}
}
