package gateway_test

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/tollgate-dev/tollgate/gateway"
	"github.com/tollgate-dev/tollgate/middleware"
)

// An upstream that fails with an HTML page answers, through the gateway,
// with the contract's envelope; the upstream's status is in
// details.upstream_status.
func ExampleNew() {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		io.WriteString(w, "<html><body><h1>502 Bad Gateway</h1></body></html>")
	}))
	defer upstream.Close()

	u, err := gateway.ParseUpstream(upstream.URL)
	if err != nil {
		log.Fatal(err)
	}
	g, err := gateway.New(u, gateway.Options{})
	if err != nil {
		log.Fatal(err)
	}
	// In a real server: behind middleware.Auth and middleware.RateLimit.
	srv := httptest.NewServer(middleware.Chain(middleware.RequestID(nil))(g))
	defer srv.Close()

	req, _ := http.NewRequest("GET", srv.URL+"/v1/orders/42", nil)
	req.Header.Set("X-Request-Id", "req_example")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode, resp.Header.Get("Content-Type"))
	fmt.Print(string(body))
	// Output:
	// 502 application/json; charset=utf-8
	// {"error":{"code":"BAD_GATEWAY","message":"The upstream service failed.","details":{"request_id":"req_example","upstream_status":502}}}
}
