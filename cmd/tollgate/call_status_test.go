package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/client"
)

// TestCall3xxNotFollowed: a 3xx the http.Client does not follow is neither
// a refusal nor an internal error of the API: exit 3 like other failures
// without an API error, never "300 INTERNAL_ERROR" with exit 1.
func TestCall3xxNotFollowed(t *testing.T) {
	srv, _ := callServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(300)
		io.WriteString(w, "<html>choices</html>")
	})
	clk := &noSleep{t: time.Now()}
	var so, se bytes.Buffer
	code := runCall(context.Background(), []string{"--base", srv.URL, "/v1/leads"}, envOf(nil), &so, &se, client.WithClock(clk.now, clk.sleep))
	if code != callServerError || strings.Contains(se.String(), "INTERNAL_ERROR") || !strings.Contains(se.String(), "300") {
		t.Errorf("exit %d, stderr:\n%s", code, se.String())
	}
}
