package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"

	"github.com/tollgate-dev/tollgate/apierror"
	"github.com/tollgate-dev/tollgate/client"
)

func ExampleNew() {
	// A stand-in for the tollgate API.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"id":"lead_1","name":"Ada","status":"new","createdAt":"2026-01-01T00:00:00Z","updatedAt":"2026-01-01T00:00:00Z"}`)
	}))
	defer srv.Close()

	c, err := client.New(srv.URL, client.WithAPIKey("tg_test_example"))
	if err != nil {
		panic(err)
	}
	lead, err := c.Leads.Create(context.Background(), client.LeadCreate{Name: "Ada", Email: "ada@example.com"})
	if err != nil {
		panic(err)
	}
	fmt.Println(lead.ID, lead.Name, lead.Status)
	// Output:
	// lead_1 Ada new
}

func ExampleTransport() {
	// The first attempt is refused with 503 and Retry-After: 0; the retry
	// succeeds with the same Idempotency-Key.
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Printf("attempt %d: %s %s key=%t\n", n.Add(1), r.Method, body, r.Header.Get("Idempotency-Key") != "")
		if n.Load() == 1 {
			w.Header().Set("Retry-After", "0")
			apierror.Write(w, r, apierror.New(apierror.ServiceUnavailable, ""))
			return
		}
		w.WriteHeader(http.StatusCreated)
	}))
	defer srv.Close()

	hc := &http.Client{Transport: &client.Transport{}}
	resp, err := hc.Post(srv.URL+"/v1/things", "application/json", strings.NewReader(`{"a":1}`))
	if err != nil {
		panic(err)
	}
	resp.Body.Close()
	fmt.Println(resp.StatusCode)
	// Output:
	// attempt 1: POST {"a":1} key=true
	// attempt 2: POST {"a":1} key=true
	// 201
}

func ExampleError() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", "req_example")
		apierror.Write(w, r, apierror.New(apierror.NotFound, "Lead not found").With("resource", "lead"))
	}))
	defer srv.Close()

	c, err := client.New(srv.URL, client.WithAPIKey("tg_test_example"))
	if err != nil {
		panic(err)
	}
	_, err = c.Leads.Get(context.Background(), "lead_missing")
	if errors.Is(err, client.ErrNotFound) {
		fmt.Println("not found:", err)
	}
	var ce *client.Error
	if errors.As(err, &ce) {
		fmt.Println(ce.Attempts, ce.Stop, ce.APIError().RequestID())
	}
	// Output:
	// not found: client: get lead: NOT_FOUND: Lead not found
	// 1 not retryable req_example
}
