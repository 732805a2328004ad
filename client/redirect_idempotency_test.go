package client_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/auth"
	"github.com/tollgate-dev/tollgate/client"
	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/store/sqlite"
)

// TestTransport307BehindIdempotency: a POST through client.Transport to a
// service using tollgate's own Idempotency middleware, whose handler
// answers 307 (a moved endpoint), reaches the new path: the middleware
// stored the 307 under the first hop's key, with the first path in its
// fingerprint, so the hop to the new path needs a key of its own.
func TestTransport307BehindIdempotency(t *testing.T) {
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "i.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	acct, err := st.CreateAccount(t.Context(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/old", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/v1/new", http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("POST /v1/new", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(201)
		io.WriteString(w, `{"id":"x"}`)
	})
	idem := middleware.Idempotency(st, middleware.IdempotencyOptions{})(mux)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		idem.ServeHTTP(w, r.WithContext(auth.WithPrincipal(r.Context(), auth.Principal{AccountID: acct.ID, KeyID: "k"})))
	})
	srv := httptest.NewServer(h)
	defer srv.Close()
	hc := &http.Client{Transport: &client.Transport{}}
	resp, err := hc.Post(srv.URL+"/v1/old", "application/json", strings.NewReader(`{"a":1}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Errorf("POST via 307 = %d %s; want 201", resp.StatusCode, b)
	}
}
