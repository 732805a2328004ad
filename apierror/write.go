package apierror

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
)

// Media types Write produces.
const (
	ContentTypeJSON    = "application/json; charset=utf-8"
	ContentTypeProblem = "application/problem+json"
)

// HeaderRequestID is the response header that carries the request id.
// Write copies it into details.request_id.
const HeaderRequestID = "X-Request-Id"

// TypeBase prefixes the problem+json "type" of each code: TypeBase +
// lower-case code, an anchor in docs/errors.md.
const TypeBase = "https://github.com/tollgate-dev/tollgate/blob/main/docs/errors.md#"

// Options change how errors (and tollgate's own 2xx bodies) are written for
// a request. The zero value is the default.
type Options struct {
	// SuccessField adds a top-level "success": false to error envelopes
	// (and "success": true to the 2xx bodies tollgate writes).
	SuccessField bool
}

type optionsKey struct{}

// WithOptions returns a context carrying o for Write.
func WithOptions(ctx context.Context, o Options) context.Context {
	return context.WithValue(ctx, optionsKey{}, o)
}

// OptionsFrom returns the Options in ctx, or the zero Options.
func OptionsFrom(ctx context.Context) Options {
	o, _ := ctx.Value(optionsKey{}).(Options)
	return o
}

// Tracker is implemented by ResponseWriter wrappers that want to know which
// error a response carried (access logs, metrics). Write calls TrackError on
// the first writer in the Unwrap chain that implements it.
type Tracker interface {
	TrackError(e *Error)
}

type envelope struct {
	Success *bool    `json:"success,omitempty"`
	Error   wireBody `json:"error"`
}

type wireBody struct {
	Code    Code    `json:"code"`
	Message string  `json:"message"`
	Details Details `json:"details"`
}

var falseValue = false

// Write writes err to w as the error contract says: status from the code,
// the envelope (or problem+json when r's Accept prefers it),
// Content-Type, Cache-Control: no-store, the error's headers, and
// details.request_id taken from w's X-Request-Id header (one is made if
// the header is absent). Any error that is not an *Error becomes
// INTERNAL_ERROR with a generic message; its text is never sent.
//
// Write is the only code in tollgate that writes an error body. It must be
// called before anything else was written to w.
func Write(w http.ResponseWriter, r *http.Request, err error) {
	e := From(err)
	if e.Code == InternalError || !e.Code.Known() {
		// Never send internal text: the message is the generic one.
		e = &Error{Code: InternalError, Message: InternalError.Message(), Details: e.Details, Header: e.Header, cause: e}
	}
	h := w.Header()
	id := h.Get(HeaderRequestID)
	if id == "" {
		id = newRequestID()
		h.Set(HeaderRequestID, id)
	}
	details := make(Details, len(e.Details)+1)
	for k, v := range e.Details {
		details[k] = v
	}
	details["request_id"] = id
	for k, vs := range e.Header {
		h[k] = vs
	}
	status := e.HTTPStatus()
	if ra, ok := details["retry_after"]; ok && h.Get("Retry-After") == "" {
		h.Set("Retry-After", toString(ra))
	}
	switch e.Code {
	case Unauthorized:
		if h.Get("WWW-Authenticate") == "" {
			h.Set("WWW-Authenticate", `Bearer realm="tollgate"`)
		}
	case IdempotencyKeyInUse:
		if h.Get("Retry-After") == "" {
			h.Set("Retry-After", "1")
			details["retry_after"] = 1
		}
	}
	h.Set("Cache-Control", "no-store")
	h.Del("Content-Length")
	if t := trackerOf(w); t != nil {
		t.TrackError(e)
	}
	var body []byte
	var merr error
	if r != nil && prefersProblem(r.Header.Get("Accept")) {
		h.Set("Content-Type", ContentTypeProblem)
		body, merr = json.Marshal(problem(e, status, details, r))
	} else {
		h.Set("Content-Type", ContentTypeJSON)
		success := r != nil && OptionsFrom(r.Context()).SuccessField
		var ok bool
		if body, ok = appendEnvelope(make([]byte, 0, 256), e.Code, e.Message, details, success); !ok {
			env := envelope{Error: wireBody{Code: e.Code, Message: e.Message, Details: details}}
			if success {
				env.Success = &falseValue
			}
			body, merr = json.Marshal(env)
		}
	}
	if merr != nil {
		// A detail value that cannot be encoded is a programming error;
		// the client still gets a valid envelope.
		slog.Error("apierror: encode error body", "err", merr, "request_id", id)
		body, _ = json.Marshal(envelope{Error: wireBody{Code: InternalError, Message: InternalError.Message(), Details: Details{"request_id": id}}})
		status = http.StatusInternalServerError
	}
	body = append(body, '\n')
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if r == nil || r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// problem builds the RFC 9457 body: type, title, status, detail, instance,
// plus code, request_id and the details as extension members.
func problem(e *Error, status int, details Details, r *http.Request) map[string]any {
	p := make(map[string]any, len(details)+6)
	for k, v := range details {
		p[k] = v
	}
	p["type"] = TypeBase + strings.ToLower(string(e.Code))
	p["title"] = e.Code.Message()
	p["status"] = status
	p["detail"] = e.Message
	p["instance"] = r.URL.Path
	p["code"] = e.Code
	return p
}

// prefersProblem reports whether an Accept header prefers
// application/problem+json over application/json.
func prefersProblem(accept string) bool {
	if accept == "" || !strings.Contains(strings.ToLower(accept), "problem+json") {
		return false
	}
	problemQ, jsonQ := -1.0, -1.0
	for part := range strings.SplitSeq(accept, ",") {
		mt, params, _ := strings.Cut(part, ";")
		q := 1.0
		for p := range strings.SplitSeq(params, ";") {
			k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
			if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
				if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
					q = f
				}
			}
		}
		switch strings.ToLower(strings.TrimSpace(mt)) {
		case "application/problem+json":
			problemQ = max(problemQ, q)
		case "application/json":
			jsonQ = max(jsonQ, q)
		}
	}
	return problemQ > 0 && problemQ >= jsonQ
}

func trackerOf(w http.ResponseWriter) Tracker {
	for w != nil {
		if t, ok := w.(Tracker); ok {
			return t
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return nil
		}
		w = u.Unwrap()
	}
	return nil
}

func toString(v any) string {
	switch x := v.(type) {
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case string:
		return x
	}
	b, _ := json.Marshal(v)
	return string(b)
}

const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// newRequestID makes a random request id for a response that has none
// (Write used without the RequestID middleware).
func newRequestID() string {
	var b [20]byte
	_, _ = rand.Read(b[:])
	out := make([]byte, 0, 4+len(b))
	out = append(out, "req_"...)
	for _, c := range b {
		out = append(out, crockford[c&31])
	}
	return string(out)
}
