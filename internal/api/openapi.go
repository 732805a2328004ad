package api

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
)

// openAPIDocument is the OpenAPI 3.1 description of every route.
// docs/openapi.json is a copy; a test keeps the two identical.
//
//go:embed openapi.json
var openAPIDocument []byte

// openAPIETag is the strong entity tag of openAPIDocument.
var openAPIETag = func() string {
	sum := sha256.Sum256(openAPIDocument)
	return `"` + hex.EncodeToString(sum[:16]) + `"`
}()

// OpenAPIDocument returns the OpenAPI 3.1 document that describes the API,
// as served on GET /openapi.json. The slice is a fresh copy.
func OpenAPIDocument() []byte { return bytes.Clone(openAPIDocument) }

// OpenAPIHandler serves OpenAPIDocument as application/json, with an ETag;
// a request whose If-None-Match names it gets 304 Not Modified. It needs
// no API key. It is safe for concurrent use.
func OpenAPIHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("ETag", openAPIETag)
		h.Set("Cache-Control", "no-cache")
		if etagMatch(r.Header.Get("If-None-Match"), openAPIETag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		h.Set("Content-Type", "application/json; charset=utf-8")
		h.Set("Content-Length", strconv.Itoa(len(openAPIDocument)))
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			_, _ = w.Write(openAPIDocument)
		}
	})
}

// etagMatch reports whether an If-None-Match value names etag (or is *).
func etagMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}
