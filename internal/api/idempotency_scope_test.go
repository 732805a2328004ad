package api_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/auth"
	"github.com/tollgate-dev/tollgate/internal/api"
	"github.com/tollgate-dev/tollgate/internal/server"
	"github.com/tollgate-dev/tollgate/internal/testenv"
	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/store"
	"github.com/tollgate-dev/tollgate/store/sqlite"
)

// idemAPI is the API over SQLite with Idempotency wired as serve does.
func idemAPI(t *testing.T) (h http.Handler, st store.Store, acc store.Account, admin string) {
	t.Helper()
	ctx := context.Background()
	c := testenv.NewClock(time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC))
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "idem.db"), sqlite.WithClock(c.Now))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	acc, _, err = db.EnsureAccount(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	ck, err := api.CreateKey(ctx, db, acc.ID, api.KeyRequest{Name: "admin", Scopes: []string{auth.ScopeAll}})
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Config{Now: c.Now})
	api.New(api.Config{
		Store: db, Verifier: auth.NewVerifier(store.AuthKeys(db), auth.WithClock(c.Now)), Now: c.Now,
		Idempotency: middleware.Idempotency(db, middleware.IdempotencyOptions{}),
	}).Routes(srv.Handle)
	return srv.Handler(), db, acc, ck.Secret
}

func idemDo(h http.Handler, method, target, body, key, idem string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Authorization", "Bearer "+key)
	if idem != "" {
		r.Header.Set("Idempotency-Key", idem)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// TestIdempotencyKeysPerAPIKey: a key of the same account that holds the
// route's scope but may not grant what is asked (POST /v1/keys checks
// that in the handler) gets 403 with another key's Idempotency-Key and
// body too, never that key's stored 201. On the keys API an
// Idempotency-Key belongs to the calling API key.
func TestIdempotencyKeysPerAPIKey(t *testing.T) {
	h, st, acc, admin := idemAPI(t)
	limited, err := api.CreateKey(context.Background(), st, acc.ID, api.KeyRequest{Name: "ops", Scopes: []string{auth.ScopeKeysWrite}})
	if err != nil {
		t.Fatal(err)
	}
	body := `{"name":"root2","scopes":["*"]}`
	if w := idemDo(h, "POST", "/v1/keys", body, limited.Secret, ""); w.Code != 403 {
		t.Fatalf("limited key without Idempotency-Key: %d, want 403: %s", w.Code, w.Body)
	}
	if w := idemDo(h, "POST", "/v1/keys", body, admin, "grant-1"); w.Code != 201 {
		t.Fatalf("admin: %d %s", w.Code, w.Body)
	}
	w := idemDo(h, "POST", "/v1/keys", body, limited.Secret, "grant-1")
	if w.Code != 422 || w.Header().Get("Idempotent-Replayed") != "" || !strings.Contains(w.Body.String(), "IDEMPOTENCY_KEY_REUSED") || !strings.Contains(w.Body.String(), "another API key") {
		t.Errorf("limited key with the admin's Idempotency-Key: %d replayed=%q, want 422 IDEMPOTENCY_KEY_REUSED naming another API key: %s",
			w.Code, w.Header().Get("Idempotent-Replayed"), w.Body)
	}
	// The admin's own retry still replays.
	if w := idemDo(h, "POST", "/v1/keys", body, admin, "grant-1"); w.Code != 201 || w.Header().Get("Idempotent-Replayed") != "true" {
		t.Errorf("admin's retry: %d replayed=%q, want the replay", w.Code, w.Header().Get("Idempotent-Replayed"))
	}
	// Elsewhere an Idempotency-Key belongs to the account: another key's
	// retry of a lead creation replays it rather than creating another.
	leadBody := `{"name":"A","phone":"+14155550100"}`
	other, err := api.CreateKey(context.Background(), st, acc.ID, api.KeyRequest{Name: "w", Scopes: []string{auth.ScopeLeadsWrite}})
	if err != nil {
		t.Fatal(err)
	}
	if w := idemDo(h, "POST", "/v1/leads", leadBody, admin, "lead-1"); w.Code != 201 {
		t.Fatalf("lead: %d %s", w.Code, w.Body)
	}
	if w := idemDo(h, "POST", "/v1/leads", leadBody, other.Secret, "lead-1"); w.Code != 201 || w.Header().Get("Idempotent-Replayed") != "true" {
		t.Errorf("another key's retry of a lead: %d replayed=%q, want the replay", w.Code, w.Header().Get("Idempotent-Replayed"))
	}
}

// TestIdempotency422FromBodyNotStored: a 422 from a rule of the body alone,
// checked before any work (endedAt before startedAt; expires_at in the
// past), is not stored: the client fixes the body and resends with the
// same key, as after a 400 (Stripe saves neither).
func TestIdempotency422FromBodyNotStored(t *testing.T) {
	h, _, _, admin := idemAPI(t)
	bad := `{"sessionExternalId":"e1","startedAt":"2026-11-22T10:00:00Z","endedAt":"2026-11-22T09:00:00Z"}`
	good := `{"sessionExternalId":"e1","startedAt":"2026-11-22T10:00:00Z","endedAt":"2026-11-22T11:00:00Z"}`
	if w := idemDo(h, "POST", "/v1/sessions", bad, admin, "s-1"); w.Code != 422 {
		t.Fatalf("bad body: %d %s", w.Code, w.Body)
	}
	if w := idemDo(h, "POST", "/v1/sessions", good, admin, "s-1"); w.Code != 201 {
		t.Errorf("fixed body, same key: %d, want 201 (as after a 400): %s", w.Code, w.Body)
	}
	if w := idemDo(h, "POST", "/v1/keys", `{"name":"k","scopes":["leads:read"],"expires_at":"2020-01-01T00:00:00Z"}`, admin, "k-1"); w.Code != 422 {
		t.Fatalf("key expiring in the past: %d %s", w.Code, w.Body)
	}
	if w := idemDo(h, "POST", "/v1/keys", `{"name":"k","scopes":["leads:read"]}`, admin, "k-1"); w.Code != 201 {
		t.Errorf("fixed key body, same key: %d, want 201: %s", w.Code, w.Body)
	}
}

// TestRotateEmptyBodyAnyFraming: rotate's body is optional whatever its
// framing (a chunked empty body too), and an Idempotency-Key does not
// change the answer.
func TestRotateEmptyBodyAnyFraming(t *testing.T) {
	h, st, acc, admin := idemAPI(t)
	status := func(idem string) int {
		target, err := api.CreateKey(context.Background(), st, acc.ID, api.KeyRequest{Name: "t", Scopes: []string{auth.ScopeLeadsRead}})
		if err != nil {
			t.Fatal(err)
		}
		r := httptest.NewRequest("POST", "/v1/keys/"+target.ID+"/rotate", io.NopCloser(strings.NewReader("")))
		r.ContentLength = -1 // chunked
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Authorization", "Bearer "+admin)
		if idem != "" {
			r.Header.Set("Idempotency-Key", idem)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	if without, with := status(""), status("rot-1"); without != 201 || with != 201 {
		t.Errorf("chunked empty-body rotate: %d without Idempotency-Key, %d with it; want 201 both", without, with)
	}
}
