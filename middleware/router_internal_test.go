package middleware

import (
	"net/http"
	"strings"
	"testing"
)

// TestRouterRedirectProbe: only a pattern below the root that ends in "/"
// or "{$}" makes ServeHTTP probe for ServeMux's trailing-slash redirect
// (a second route lookup per request); the gateway's "GET /" does not.
func TestRouterRedirectProbe(t *testing.T) {
	tests := []struct {
		patterns []string
		want     bool
	}{
		{[]string{"GET /", "POST /"}, false},
		{[]string{"GET /{$}"}, false},
		{[]string{"GET /v1/leads", "GET /v1/leads/{id}"}, false},
		{[]string{"GET /v1/dir/"}, true},
		{[]string{"GET /v1/end/{$}"}, true},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.patterns, ","), func(t *testing.T) {
			rt := NewRouter()
			for _, p := range tt.patterns {
				rt.HandleFunc(p, func(http.ResponseWriter, *http.Request) {})
			}
			if got := rt.slash.Load(); got != tt.want {
				t.Errorf("probe %v, want %v", got, tt.want)
			}
		})
	}
}
