package client_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/client"
)

// TestTransportRedirectKeepsKey: the hops of one POST that http.Client
// follows through a 307 (and its retries) carry one Idempotency-Key.
func TestTransportRedirectKeepsKey(t *testing.T) {
	clk := newFakeClock()
	redirect := func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/v1/leads2", 307) }
	srv := newScript(t, redirect, status(503, ""), status(201, leadJSON))
	hc := &http.Client{Transport: &client.Transport{Now: clk.Now, Sleep: clk.Sleep}}
	resp, err := hc.Post(srv.URL+"/v1/leads", "application/json", strings.NewReader(`{"name":"Ada"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	keys := map[string]bool{}
	for _, h := range srv.Hits() {
		t.Logf("%s %s key=%s body=%q", h.Method, h.Path, h.IdempotencyKey, h.Body)
		keys[h.IdempotencyKey] = true
	}
	if len(keys) != 1 {
		t.Errorf("one logical POST carried %d different Idempotency-Keys", len(keys))
	}
}
