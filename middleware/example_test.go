package middleware_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/tollgate-dev/tollgate/apierror"
	"github.com/tollgate-dev/tollgate/logjson"
	"github.com/tollgate-dev/tollgate/middleware"
)

func ExampleChain() {
	logger := slog.New(logjson.New(io.Discard, nil))
	rt := middleware.NewRouter()
	rt.HandleFunc("GET /v1/things/{id}", func(w http.ResponseWriter, r *http.Request) {
		apierror.Write(w, r, apierror.New(apierror.NotFound, "Thing not found").With("resource", "thing"))
	})
	h := middleware.Chain(
		middleware.RequestID(nil),
		middleware.Logger(logger, nil),
		middleware.Recover(logger),
		middleware.BodyLimit(1<<20),
	)(rt)

	for _, req := range []string{"GET /v1/things/1", "DELETE /v1/things/1", "GET /nope"} {
		method, path, _ := strings.Cut(req, " ")
		r := httptest.NewRequest(method, path, nil)
		r.Header.Set("X-Request-Id", "req_example")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		fmt.Print(w.Code, " ", w.Body.String())
	}
	// Output:
	// 404 {"error":{"code":"NOT_FOUND","message":"Thing not found","details":{"request_id":"req_example","resource":"thing"}}}
	// 405 {"error":{"code":"METHOD_NOT_ALLOWED","message":"Method DELETE is not allowed on this path.","details":{"allowed":["GET","HEAD"],"request_id":"req_example"}}}
	// 404 {"error":{"code":"ROUTE_NOT_FOUND","message":"No route matches this path.","details":{"path":"/nope","request_id":"req_example"}}}
}

func ExampleDecodeJSON() {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var lead struct {
			Name  string `json:"name"`
			Phone string `json:"phone"`
		}
		if err := middleware.DecodeJSON(r, &lead, middleware.DecodeOptions{Required: []string{"name", "phone"}}); err != nil {
			apierror.Write(w, r, err)
			return
		}
		fmt.Fprintf(w, "hello %s\n", lead.Name)
	})
	for _, body := range []string{`{"name":"Ada","phone":"+15550100"}`, `{"name":"Ada"}`, `{"name":"Ada","phone":1}`} {
		r := httptest.NewRequest("POST", "/v1/leads", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		w.Header().Set("X-Request-Id", "req_example")
		h.ServeHTTP(w, r)
		fmt.Print(w.Code, " ", w.Body.String())
	}
	// Output:
	// 200 hello Ada
	// 400 {"error":{"code":"MISSING_FIELD","message":"Missing required field: phone","details":{"field":"phone","request_id":"req_example"}}}
	// 400 {"error":{"code":"INVALID_REQUEST","message":"Field phone must be a string.","details":{"expected":"a string","field":"phone","reason":"wrong type","request_id":"req_example"}}}
}
