package apierror_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/tollgate-dev/tollgate/apierror"
)

func ExampleWrite() {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", "req_example")
		apierror.Write(w, r, apierror.New(apierror.NotFound, "Session not found").With("resource", "session"))
	})
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/v1/sessions/ses_x", nil))
	fmt.Println(w.Code, w.Header().Get("Content-Type"))
	fmt.Print(w.Body.String())
	// Output:
	// 404 application/json; charset=utf-8
	// {"error":{"code":"NOT_FOUND","message":"Session not found","details":{"request_id":"req_example","resource":"session"}}}
}

func ExampleDecode() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", "req_example")
		apierror.Write(w, r, apierror.New(apierror.RateLimited, "Rate limit exceeded. Retry after 3 seconds.").
			With("limit", 10).With("window", "1m").With("policy", "default").WithRetryAfter(3e9))
	}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	e := apierror.Decode(resp)
	fmt.Println(e.Code, e.Code.Retryable(), e.Details["retry_after"], e.RequestID())
	// Output:
	// RATE_LIMITED true 3 req_example
}
