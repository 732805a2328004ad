package middleware

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/ratelimit"
)

// TestClientAddr: per-address limits count an IPv4 address, or the /64
// of an IPv6 one (an IPv6 host can use any address of its /64).
func TestClientAddr(t *testing.T) {
	tests := []struct{ remote, want string }{
		{"192.0.2.7:1234", "192.0.2.7"},
		{"[2001:db8:1:2:3:4:5:6]:443", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:ffff::1]:443", "2001:db8:1:2::/64"},
		{"[2001:db8:1:3::1]:443", "2001:db8:1:3::/64"},
		{"[::ffff:192.0.2.7]:80", "192.0.2.7"},
		{"[fe80::1%eth0]:80", "fe80::/64"},
		{"[::1]:80", "::/64"},
		{"192.0.2.7", "192.0.2.7"},
		{"not an address", "not an address"},
		{"", ""},
	}
	for _, tt := range tests {
		t.Run(tt.remote, func(t *testing.T) {
			if got := clientAddr(&http.Request{RemoteAddr: tt.remote}); got != tt.want {
				t.Errorf("clientAddr(%q) = %q, want %q", tt.remote, got, tt.want)
			}
		})
	}
}

// TestRateLimitIPv6Network: without a key, two addresses of one IPv6 /64
// share one count; another /64 has its own.
func TestRateLimitIPv6Network(t *testing.T) {
	rl := RateLimit(RateLimitConfig{Store: ratelimit.NewMemoryStore(ratelimit.MemoryOptions{}), Default: ratelimit.Policy{Limit: 1, Window: time.Hour}})
	h := Chain(RequestID(nil), rl)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	for i, tt := range []struct {
		remote string
		want   int
	}{
		{"[2001:db8:1:2::1]:1000", 200},
		{"[2001:db8:1:2::2]:1000", 429},
		{"[2001:db8:1:3::1]:1000", 200},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tt.remote
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tt.want {
			t.Errorf("request %d from %s: %d, want %d", i+1, tt.remote, w.Code, tt.want)
		}
	}
}
