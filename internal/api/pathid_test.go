package api_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestIDNoStoreCanHold: an id in the path that is not UTF-8 or holds a
// NUL (/v1/sessions/%ff, /v1/leads/%00) names no record on any backend:
// 404 NOT_FOUND, byte for byte the answer for a well-formed id that does
// not exist, never a 500 (PostgreSQL refuses such text outright).
func TestIDNoStoreCanHold(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			l := startLive(t, b.open(t), liveOptions{noRateLimit: true})
			tests := []struct {
				name, method, path, missing, body string
			}{
				{"get session", "GET", "/v1/sessions/%s", "ses_01JZZZZZZZZZZZZZZZZZZZZZZZ", ""},
				{"patch session", "PATCH", "/v1/sessions/%s", "ses_01JZZZZZZZZZZZZZZZZZZZZZZZ", `{"title":"x"}`},
				{"delete session", "DELETE", "/v1/sessions/%s", "ses_01JZZZZZZZZZZZZZZZZZZZZZZZ", ""},
				{"get lead", "GET", "/v1/leads/%s", "lead_01JZZZZZZZZZZZZZZZZZZZZZZZ", ""},
				{"patch lead", "PATCH", "/v1/leads/%s", "lead_01JZZZZZZZZZZZZZZZZZZZZZZZ", `{"name":"x"}`},
				{"delete lead", "DELETE", "/v1/leads/%s", "lead_01JZZZZZZZZZZZZZZZZZZZZZZZ", ""},
				{"get key", "GET", "/v1/keys/%s", "key_01JZZZZZZZZZZZZZZZZZZZZZZZ", ""},
				{"revoke key", "DELETE", "/v1/keys/%s", "key_01JZZZZZZZZZZZZZZZZZZZZZZZ", ""},
				{"rotate key", "POST", "/v1/keys/%s/rotate", "key_01JZZZZZZZZZZZZZZZZZZZZZZZ", `{}`},
			}
			for _, tt := range tests {
				for _, id := range []string{"%ff", "ses_%ff", "%00", "key_01JZZZZZZZZZZZZZZZZZZZZZZ%00"} {
					t.Run(tt.name+" "+id, func(t *testing.T) {
						hdr := []string{"X-Request-Id", "bad-id-1"}
						got := l.as(tt.method, fmt.Sprintf(tt.path, id), tt.body, hdr...)
						want := l.as(tt.method, fmt.Sprintf(tt.path, tt.missing), tt.body, hdr...)
						if got.status != 404 || want.status != 404 {
							t.Fatalf("id %s: %d %s; nonexistent id: %d %s", id, got.status, got.body, want.status, want.body)
						}
						if !bytes.Equal(got.body, want.body) {
							t.Errorf("id %s: %s\nnonexistent id: %s", id, got.body, want.body)
						}
						hg, hw := got.header.Clone(), want.header.Clone()
						hg.Del("Date")
						hw.Del("Date")
						if diff := cmp.Diff(hw, hg); diff != "" {
							t.Errorf("headers (-nonexistent +id %s):\n%s", id, diff)
						}
					})
				}
			}
		})
	}
}

// TestIdempotencyRawQueryBytes: a request target whose query holds bytes
// that are not UTF-8, sent raw (as some clients do, unescaped), is served
// with an Idempotency-Key as without one, on every backend: the first
// answer is the handler's, and the retry replays it. The key's record must
// not be refused by the store (PostgreSQL's text holds only UTF-8), which
// would answer 503 store_unavailable to every retry.
func TestIdempotencyRawQueryBytes(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			l := startLive(t, b.open(t), liveOptions{noRateLimit: true})
			addr := strings.TrimPrefix(l.base, "http://")
			tests := []struct {
				name, query, phone string
			}{
				{"latin-1", "ref=caf\xe9", "+14155550101"},
				{"lone continuation", "ref=\x80\x80", "+14155550102"},
				{"utf-8", "ref=caf\xc3\xa9", "+14155550103"},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					body := `{"name":"A","phone":"` + tt.phone + `"}`
					post := func() (*http.Response, []byte) {
						c, err := net.Dial("tcp", addr)
						if err != nil {
							t.Fatal(err)
						}
						defer c.Close()
						fmt.Fprintf(c, "POST /v1/leads?%s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"+
							"Content-Type: application/json\r\nIdempotency-Key: raw-%s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
							tt.query, l.admin, tt.phone, len(body), body)
						resp, err := http.ReadResponse(bufio.NewReader(c), nil)
						if err != nil {
							t.Fatal(err)
						}
						b, err := io.ReadAll(resp.Body)
						if err != nil {
							t.Fatal(err)
						}
						return resp, b
					}
					first, fb := post()
					if first.StatusCode != 201 {
						t.Fatalf("first: %d %s", first.StatusCode, fb)
					}
					again, ab := post()
					if again.StatusCode != 201 || again.Header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(ab, fb) {
						t.Errorf("retry: %d replayed=%q %s\nfirst: %s", again.StatusCode, again.Header.Get("Idempotent-Replayed"), ab, fb)
					}
				})
			}
		})
	}
}
