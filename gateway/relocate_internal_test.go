package gateway

import (
	"net/url"
	"testing"
)

// TestRelocate: a Location on the upstream, or a path under its base, is
// mapped to the path the client uses; any other is kept.
func TestRelocate(t *testing.T) {
	tests := []struct {
		upstream, loc string
		want          string // "" for kept as it is
	}{
		{"http://up:9000/base", "http://up:9000/base/x?q=1#f", "/x?q=1#f"},
		{"http://up:9000/base", "http://up:9000/base", "/"},
		{"http://up:9000/base", "http://up:9000/base/", "/"},
		{"http://up:9000/base/", "http://up:9000/base/x", "/x"},
		{"http://up:9000/base", "/base/x", "/x"},
		{"http://up:9000/base", "HTTP://UP:9000/base/a%2Fb", "/a%2Fb"},
		{"http://up:9000/base", "//up:9000/base/x", "/x"},
		{"http://up:9000/base", "http://up:9000/base/x?", "/x?"},
		{"http://up/base", "http://up:80/base/x", "/x"},
		{"https://up/base", "https://up:443/base/x", "/x"},
		{"http://up:80", "http://up/x", "/x"},
		{"http://up:9000", "http://up:9000", "/"},
		{"http://up:9000/base", "/other", ""},
		{"http://up:9000/base", "/basement", ""},
		{"http://up:9000/base", "http://up:9000/other", ""},
		{"http://up:9000/base", "http://example.com/base/x", ""},
		{"http://up:9000/base", "https://up:9000/base/x", ""},
		{"http://up:9000/base", "http://up:9001/base/x", ""},
		{"http://up/base", "https://up/base/x", ""},
		{"http://up:9000/base", "x/y", ""},
		{"http://up:9000/base", "mailto:a@up", ""},
		{"http://up:9000/base", "http://user@up:9000/base/x", ""},
		{"http://up:9000/base", "http://up:9000/%zz", ""},
		{"http://up:9000", "/x", ""},
		// Dot segments are resolved first, as the client resolves them.
		{"http://up:9000/base", "/base/../secret", ""},
		{"http://up:9000/base", "http://up:9000/base/x/../../secret", ""},
		{"http://up:9000/base", "/base/..", ""},
		{"http://up:9000/base", "/base/x/../y", "/y"},
		{"http://up:9000/base", "http://up:9000/base/./x", "/x"},
	}
	for _, tt := range tests {
		t.Run(tt.upstream+" "+tt.loc, func(t *testing.T) {
			u, err := url.Parse(tt.upstream)
			if err != nil {
				t.Fatal(err)
			}
			g, err := New(u, Options{})
			if err != nil {
				t.Fatal(err)
			}
			got, ok := g.relocate(tt.loc)
			if tt.want == "" && ok || tt.want != "" && got != tt.want {
				t.Errorf("relocate(%q) = %q, %v; want %q", tt.loc, got, ok, tt.want)
			}
		})
	}
}
