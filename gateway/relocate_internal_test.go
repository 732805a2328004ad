package gateway

import (
	"net/url"
	"strings"
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
		// A path starting "//" would read as another host: an open redirect.
		{"http://up:9000", "http://up:9000//evil.example/x", ""},
		{"http://up:9000/base", "http://up:9000/base//evil.example/x", ""},
		{"http://up:9000/base", "/base//evil.example/x", ""},
		{"http://up:9000/base", "/base/%2F/evil.example", "/%2F/evil.example"},
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

// FuzzRelocate: a rewritten Location is a path on the gateway (never
// another host, never "//"), and it names what the upstream's Location
// named: the base path joined to it is the path the upstream meant, with
// the same query.
func FuzzRelocate(f *testing.F) {
	for _, s := range [][2]string{
		{"/base", "http://up:9000/base/x?q=1#f"}, {"/base", "/base/../secret"}, {"", "http://up:9000//evil.example/x"},
		{"/base/", "http://up:9000/base"}, {"/a%2Fb", "/a%2Fb/c"}, {"", "//up:9000/x"}, {"/base", "HTTP://UP:9000/base/./x/../y?"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, basePath, loc string) {
		up, err := url.Parse("http://up:9000" + basePath)
		if err != nil || up.Host != "up:9000" || up.RawQuery != "" || up.Fragment != "" {
			return
		}
		g, err := New(up, Options{})
		if err != nil {
			return
		}
		got, ok := g.relocate(loc)
		if !ok {
			return
		}
		if !strings.HasPrefix(got, "/") || strings.HasPrefix(got, "//") {
			t.Fatalf("relocate(%q) under %q = %q: not a path on the gateway", loc, basePath, got)
		}
		gw, _ := url.Parse("http://gw.test/")
		rel, err := url.Parse(got)
		if err != nil {
			t.Fatalf("relocate(%q) = %q, which does not parse: %v", loc, got, err)
		}
		client := gw.ResolveReference(rel)
		if client.Host != "gw.test" {
			t.Fatalf("relocate(%q) = %q: the client goes to %q", loc, got, client.Host)
		}
		orig, _ := url.Parse(loc)
		meant := up.ResolveReference(orig)
		base := strings.TrimSuffix(up.EscapedPath(), "/")
		if joined := base + client.EscapedPath(); joined != meant.EscapedPath() && !(client.EscapedPath() == "/" && meant.EscapedPath() == base) {
			t.Fatalf("relocate(%q) under %q = %q: reaches %q upstream, the Location meant %q", loc, basePath, got, joined, meant.EscapedPath())
		}
		if client.RawQuery != meant.RawQuery {
			t.Fatalf("relocate(%q) = %q: query %q, want %q", loc, got, client.RawQuery, meant.RawQuery)
		}
	})
}
