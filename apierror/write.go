package apierror

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unsafe"
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
// the header is absent). Location and Content-Encoding headers set
// before the call are removed. Any error that is not an *Error becomes
// INTERNAL_ERROR with a generic message; its text is never sent.
//
// When r's context has already ended (its deadline, its client gone), the
// answer carries Connection: close, and a cancellation that came as the
// deadline passed is answered as the timeout it is (503, reason
// "timeout").
//
// Write is the only code in tollgate that writes an error body. It must be
// called before anything else was written to w.
func Write(w http.ResponseWriter, r *http.Request, err error) {
	e := From(err)
	if r != nil && e.Code == ServiceUnavailable && errors.Is(e, context.Canceled) && !errors.Is(e, context.DeadlineExceeded) && deadlinePassed(r.Context()) {
		// Cancelled as its deadline passed: net/http cancels a request
		// whose connection read fails, and middleware.Timeout's read
		// deadline (the same instant) may fire before the context's own
		// timer. A timeout, not a client gone (logged as 499).
		e = From(fmt.Errorf("%w (%v)", context.DeadlineExceeded, err))
	}
	if e.Code == InternalError || !e.Code.Known() {
		// Never send internal text: the message is the generic one.
		e = &Error{Code: InternalError, Message: InternalError.Message(), Details: e.Details, Header: e.Header, cause: e}
	}
	// Header names below are written in canonical form and the map is
	// indexed directly: Header.Get and Set would canonicalise them on
	// every error. The values Write sets share one allocation.
	h := w.Header()
	hv := new(headerValues)
	id := first(h[HeaderRequestID])
	if id == "" {
		id = newRequestID()
		h[HeaderRequestID] = hv.set(0, id)
	}
	// details are the error's own plus these members: the error's map is
	// not copied on the envelope path.
	extra := append(hv.extra[:0], member{"request_id", id})
	// A handler may have set Location for the success it expected; an
	// error points at no resource unless it names one itself. Nor is its
	// body encoded: a Content-Encoding set for the body the handler meant
	// to send would make the client decode the envelope and fail.
	delete(h, "Location")
	delete(h, "Content-Encoding")
	for k, vs := range e.Header {
		h[k] = vs
	}
	status := e.HTTPStatus()
	if ra, ok := e.Details["retry_after"]; ok && first(h["Retry-After"]) == "" {
		h["Retry-After"] = hv.set(1, toString(ra))
	}
	switch e.Code {
	case Unauthorized:
		if first(h["Www-Authenticate"]) == "" {
			h["Www-Authenticate"] = hv.set(2, `Bearer realm="tollgate"`)
		}
	case IdempotencyKeyInUse:
		if first(h["Retry-After"]) == "" {
			h["Retry-After"] = hv.set(1, "1")
			extra = append(extra, member{"retry_after", 1})
		}
	}
	h["Cache-Control"] = hv.set(3, "no-store")
	if r != nil && r.Context().Err() != nil {
		// The request ended before its answer (its deadline, its client
		// gone, a shutdown): net/http may have cancelled the whole
		// connection's context with it (a read deadline that fired in its
		// background read), and every later request on the connection
		// would start cancelled. This answer is the connection's last.
		h["Connection"] = hv.set(6, "close")
	}
	delete(h, "Content-Length")
	if t := trackerOf(w); t != nil {
		t.TrackError(e)
	}
	var body []byte
	var merr error
	if r != nil && prefersProblem(r.Header.Get("Accept")) {
		h["Content-Type"] = hv.set(4, ContentTypeProblem)
		body, merr = json.Marshal(problem(e, status, merged(e.Details, extra), r))
	} else {
		h["Content-Type"] = hv.set(4, ContentTypeJSON)
		success := r != nil && OptionsFrom(r.Context()).SuccessField
		var ok bool
		if body, ok = appendEnvelope(make([]byte, 0, 256), e.Code, e.Message, e.Details, extra, success); !ok {
			env := envelope{Error: wireBody{Code: e.Code, Message: e.Message, Details: merged(e.Details, extra)}}
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
	n := strconv.AppendInt(hv.length[:0], int64(len(body)), 10)
	h["Content-Length"] = hv.set(5, unsafe.String(&n[0], len(n))) // hv is never reused
	w.WriteHeader(status)
	if r == nil || r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// deadlinePassed reports whether ctx has a deadline and it has passed.
func deadlinePassed(ctx context.Context) bool {
	dl, ok := ctx.Deadline()
	return ok && !time.Now().Before(dl)
}

// headerValues holds the header values one Write sets, and its extra
// details members, in one allocation.
type headerValues struct {
	vals   [7][1]string
	length [20]byte
	extra  [2]member
}

// set stores v in slot i and returns the slice to put in the header map.
func (hv *headerValues) set(i int, v string) []string {
	hv.vals[i][0] = v
	return hv.vals[i][:]
}

func first(vs []string) string {
	if len(vs) == 0 {
		return ""
	}
	return vs[0]
}

// merged is details with extra's members added (replacing those of the
// same key), for the encoders that need one map.
func merged(details Details, extra []member) Details {
	m := make(Details, len(details)+len(extra))
	for k, v := range details {
		m[k] = v
	}
	for _, x := range extra {
		m[x.key] = x.value
	}
	return m
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
	problemQ, jsonQ, wildQ := -1.0, -1.0, -1.0
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
		case "*/*", "application/*":
			// A wildcard accepts the envelope at its q (RFC 9110 §12.5.1);
			// a named type, more specific, is weighed by its own q.
			wildQ = max(wildQ, q)
		}
	}
	if jsonQ < 0 {
		jsonQ = wildQ
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
