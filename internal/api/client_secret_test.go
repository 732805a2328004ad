package api_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/auth"
	"github.com/tollgate-dev/tollgate/client"
	"github.com/tollgate-dev/tollgate/internal/api"
	"github.com/tollgate-dev/tollgate/internal/server"
	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/store"
)

// TestKeyCreateSecretCutOff: the server creates the key and sends its 201
// with the secret; the connection is cut mid-body. The client retries with
// the same Idempotency-Key and gets the replay, which withholds the secret
// by design: Keys.Create must say so (ErrSecretNotReceived, with the key's
// id to revoke), not return success with an empty secret.
func TestKeyCreateSecretCutOff(t *testing.T) {
	st := sqliteStore(t)
	ctx := context.Background()
	acc, _, _ := st.EnsureAccount(ctx, "acme")
	admin, err := api.CreateKey(ctx, st, acc.ID, api.KeyRequest{Name: "admin", Scopes: []string{"*"}})
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Config{})
	api.New(api.Config{Store: st, Verifier: auth.NewVerifier(store.AuthKeys(st)),
		Idempotency: middleware.Idempotency(st, middleware.IdempotencyOptions{})}).Routes(srv.Handle)
	h := srv.Handler()
	var n atomic.Int64
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) > 1 {
			h.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r) // the server does the work
		for k, vs := range rec.Header() {
			w.Header()[k] = vs
		}
		body := rec.Body.Bytes()
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(rec.Code)
		w.Write(body[:len(body)/2])
		w.(http.Flusher).Flush()
		conn, _, _ := http.NewResponseController(w).Hijack()
		conn.Close()
	}))
	defer front.Close()
	c, err := client.New(front.URL, client.WithAPIKey(admin.Secret),
		client.WithClock(nil, func(ctx context.Context, d time.Duration) error { return ctx.Err() }))
	if err != nil {
		t.Fatal(err)
	}
	ck, err := c.Keys.Create(ctx, client.KeyCreate{Name: "ci", Scopes: []string{"leads:read"}})
	if n.Load() != 2 {
		t.Errorf("%d attempts, want 2 (the cut-off answer, then the replay)", n.Load())
	}
	if !errors.Is(err, client.ErrSecretNotReceived) || ck == nil || ck.ID == "" || ck.Key != "" {
		t.Fatalf("Keys.Create = %+v, %v; want the key without a secret and ErrSecretNotReceived", ck, err)
	}
	if !strings.Contains(err.Error(), ck.ID) {
		t.Errorf("error %q does not name the key %s", err, ck.ID)
	}
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Attempts != 2 {
		t.Errorf("error %#v, want a *client.Error with Attempts 2", err)
	}
}
