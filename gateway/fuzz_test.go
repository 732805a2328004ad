package gateway_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/apierror"
	"github.com/tollgate-dev/tollgate/gateway"
)

// fuzzUpstream is the upstream's answer for the current input, and what
// the upstream received.
type fuzzUpstream struct {
	mu      sync.Mutex
	status  int
	header  http.Header
	body    []byte
	written []byte      // the body as the upstream's Write accepted it
	seen    http.Header // the request headers the upstream received
}

func (u *fuzzUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.seen = r.Header.Clone()
	io.Copy(io.Discard, r.Body)
	for k, vs := range u.header {
		w.Header()[k] = vs
	}
	w.WriteHeader(u.status)
	if _, err := w.Write(u.body); err == nil {
		u.written = u.body
	}
}

// FuzzGateway serves a random answer from a real upstream on loopback
// (status, headers, body) to a random request parsed as net/http would,
// through the gateway. No input may panic. A 2xx or 3xx is the upstream's,
// byte for byte. Any other answer is either the upstream's own contract
// error, passed through byte for byte, or one the gateway wrote: a valid
// envelope (or problem+json) whose code's status is the status sent,
// whose details.request_id is the one X-Request-Id header, whose
// details.upstream_status, when present, is the upstream's status, and,
// for 429 and 503, whose Retry-After equals details.retry_after. The
// upstream never receives credentials or identity headers the client
// made up, and the gateway's envelope never carries text from the body it
// replaced. Seeds live in testdata/fuzz/FuzzGateway.
func FuzzGateway(f *testing.F) {
	up := &fuzzUpstream{}
	srv := httptest.NewServer(up)
	f.Cleanup(srv.Close)
	u, err := gateway.ParseUpstream(srv.URL)
	if err != nil {
		f.Fatal(err)
	}
	g, err := gateway.New(u, gateway.Options{Timeout: 10 * time.Second})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, status uint16, upHeaders string, upBody []byte, method, path, reqHeaders string, reqBody []byte) {
		var raw bytes.Buffer
		fmt.Fprintf(&raw, "%s %s HTTP/1.1\r\nHost: localhost\r\n", method, path)
		for _, line := range strings.Split(reqHeaders, "\n") {
			if line = strings.TrimSpace(line); line != "" {
				raw.WriteString(line + "\r\n")
			}
		}
		fmt.Fprintf(&raw, "Content-Length: %d\r\n\r\n", len(reqBody))
		raw.Write(reqBody)
		r, err := http.ReadRequest(bufio.NewReader(&raw))
		if err != nil {
			return // net/http's own parser refuses it before any handler runs
		}
		r.RemoteAddr = "192.0.2.1:1234"

		up.mu.Lock()
		up.status = 200 + int(status)%800
		up.header = upstreamHeader(upHeaders)
		up.body = upBody
		up.written, up.seen = nil, nil
		up.mu.Unlock()

		w := httptest.NewRecorder()
		g.ServeHTTP(w, r)

		up.mu.Lock()
		defer up.mu.Unlock()
		ids := w.Header().Values("X-Request-Id")
		if len(ids) != 1 || ids[0] == "" {
			t.Fatalf("X-Request-Id = %q, want one", ids)
		}
		if up.seen != nil {
			for k, vs := range up.seen {
				if strings.EqualFold(k, "Authorization") || strings.EqualFold(k, "X-Api-Key") || strings.HasPrefix(strings.ToLower(k), "x-tollgate-") {
					t.Fatalf("upstream received %s: %q", k, vs)
				}
			}
			if got := up.seen.Values("X-Request-Id"); len(got) != 1 || got[0] != ids[0] {
				t.Fatalf("upstream received X-Request-Id %q, want %q", got, ids[0])
			}
		}
		head := r.Method == http.MethodHead
		if w.Code < 400 {
			if up.seen == nil || w.Code != up.status {
				t.Fatalf("status %d, want the upstream's %d", w.Code, up.status)
			}
			if !head && !bytes.Equal(w.Body.Bytes(), up.written) {
				t.Fatalf("%d body %q, want the upstream's %q", w.Code, w.Body.Bytes(), up.written)
			}
			return
		}
		if up.seen != nil && w.Code == up.status && !head && bytes.Equal(w.Body.Bytes(), up.written) && contract(w, up.status) {
			return // the upstream's own contract error, passed through
		}
		// Written by the gateway.
		ct := w.Header().Get("Content-Type")
		if ct != apierror.ContentTypeJSON && ct != apierror.ContentTypeProblem {
			t.Fatalf("status %d with Content-Type %q: %q", w.Code, ct, w.Body.Bytes())
		}
		if head {
			return
		}
		resp := w.Result()
		e := apierror.Decode(resp)
		if e.Foreign || !e.Code.Known() || e.Code.Status() != w.Code || e.Message == "" {
			t.Fatalf("status %d: not a valid envelope: %s", w.Code, w.Body.Bytes())
		}
		if ct == apierror.ContentTypeJSON {
			var m map[string]any
			if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil || len(m) != 1 {
				t.Fatalf("status %d: envelope shape wrong: %s", w.Code, w.Body.Bytes())
			}
			if env, _ := m["error"].(map[string]any); env == nil || env["details"] == nil {
				t.Fatalf("status %d: envelope shape wrong: %s", w.Code, w.Body.Bytes())
			}
		}
		if e.Details["request_id"] != ids[0] {
			t.Fatalf("details.request_id %v, X-Request-Id %q", e.Details["request_id"], ids[0])
		}
		if s, ok := e.Details["upstream_status"]; ok && s != float64(up.status) {
			t.Fatalf("details.upstream_status %v, want %d", s, up.status)
		}
		if w.Code == 429 || w.Code == 503 {
			if ra := w.Header().Get("Retry-After"); ra == "" || ra != number(e.Details["retry_after"]) {
				t.Fatalf("%d: Retry-After %q, details.retry_after %v", w.Code, ra, e.Details["retry_after"])
			}
		}
		// What the upstream said in a body the gateway replaced is never
		// sent: the seeds mark it.
		const marker = "upstream-internal-detail"
		if strings.Contains(w.Body.String(), marker) && !strings.Contains(raw.String(), marker) && !strings.Contains(upHeaders, marker) {
			t.Fatalf("the envelope carries the upstream's text: %s", w.Body.Bytes())
		}
	})
}

// number formats a JSON number as an integer is written in a header.
func number(v any) string {
	if f, ok := v.(float64); ok {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return fmt.Sprint(v)
}

// contract reports whether w holds a contract error for status (a gzip
// body unpacked).
func contract(w *httptest.ResponseRecorder, status int) bool {
	body := w.Body.Bytes()
	if enc := strings.ToLower(strings.TrimSpace(w.Header().Get("Content-Encoding"))); enc == "gzip" || enc == "x-gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return false
		}
		if body, err = io.ReadAll(zr); err != nil {
			return false
		}
	}
	e := apierror.Decode(&http.Response{StatusCode: status, Header: w.Header(), Body: io.NopCloser(bytes.NewReader(body))})
	return !e.Foreign && e.Code.Known() && e.Code.Status() == status && e.Message != ""
}

// upstreamHeader turns "Name: value" lines into the upstream's headers,
// leaving out what net/http would refuse to send and the framing headers
// (Content-Length, Transfer-Encoding, Trailer) a handler cannot lie with.
func upstreamHeader(lines string) http.Header {
	h := http.Header{}
	for _, line := range strings.Split(lines, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !token(k) || strings.ContainsAny(v, "\r\n\x00") {
			continue
		}
		switch http.CanonicalHeaderKey(k) {
		case "Content-Length", "Transfer-Encoding", "Trailer":
			continue
		}
		h.Add(k, strings.TrimSpace(v))
	}
	return h
}

func token(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}
