// Package api is the example API tollgate serves: API keys, sessions and
// leads, each record owned by an account. routes.go lists the whole
// surface. Handlers refuse through apierror.Write and map storage errors to
// codes in one place (storeError).
package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tollgate-dev/tollgate/apierror"
	"github.com/tollgate-dev/tollgate/auth"
	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/ratelimit"
	"github.com/tollgate-dev/tollgate/store"
)

// Config is what the API needs.
type Config struct {
	// Store holds every resource.
	Store store.Store
	// Verifier authenticates API keys (and is told about revocations).
	Verifier *auth.Verifier
	// Guard, when not nil, limits failed authentications per client.
	Guard *middleware.Guard
	// RateLimit, when not nil, wraps every authenticated route.
	RateLimit middleware.Middleware
	// Idempotency, when not nil, wraps every authenticated route after
	// RateLimit (so 401 and 429 are never stored): middleware.Idempotency.
	Idempotency middleware.Middleware
	// DefaultRate is the rate plan of keys without their own (the rate
	// limiter's default); the keys API compares plans with it. The zero
	// Policy means DefaultRate.
	DefaultRate ratelimit.Policy
	// MaxKeys is how many live keys (neither revoked nor expired) an
	// account may have before POST /v1/keys answers 422 UNPROCESSABLE with
	// reason key_limit: 0 means DefaultMaxKeys, a negative value no cap.
	// A rotation with an overlap is capped too (both keys live for a
	// while): it needs the account's other live keys below MaxKeys; one
	// without an overlap never is, nor is the CLI.
	MaxKeys int
	// Maintenance is the switch GET/PUT /v1/admin/maintenance read and
	// set; nil means a switch of the API's own, off.
	Maintenance *middleware.Maintenance
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives handler errors; nil discards.
	Logger *slog.Logger
}

// DefaultRate is the rate plan of keys without their own when
// Config.DefaultRate is not set: 100 per minute, serve's --rate-default.
var DefaultRate = ratelimit.Policy{Limit: 100, Window: time.Minute}

// DefaultMaxKeys is Config.MaxKeys when it is not set, serve's
// --max-keys.
const DefaultMaxKeys = 100

// API serves the example API. It is safe for concurrent use.
type API struct {
	cfg Config
}

// New returns the API for cfg.
func New(cfg Config) *API {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.DefaultRate.Limit == 0 {
		cfg.DefaultRate = DefaultRate
	}
	if cfg.MaxKeys == 0 {
		cfg.MaxKeys = DefaultMaxKeys
	}
	if cfg.Maintenance == nil {
		cfg.Maintenance = middleware.NewMaintenance(false, 0)
	}
	return &API{cfg: cfg}
}

// principal returns the authenticated caller. Routes are registered behind
// Auth, so it is always there.
func principal(r *http.Request) *auth.Principal {
	p, _ := auth.PrincipalFrom(r.Context())
	return p
}

// storable reports whether every store can hold s: UTF-8 without NUL
// (PostgreSQL refuses other text with an error).
func storable(s string) bool {
	return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}

// pathID returns the {id} of r's path. An id that no store can hold names
// no record: it is looked up as "", which no record has, so that it gets
// the 404 of any id that does not exist, byte for byte.
func pathID(r *http.Request) string {
	if id := r.PathValue("id"); storable(id) {
		return id
	}
	return ""
}

// respond writes v as JSON with status. With the success_field option, an
// object body gets a leading "success": true.
func respond(w http.ResponseWriter, r *http.Request, status int, v any) {
	body, err := encode(r, v)
	if err != nil {
		apierror.Write(w, r, apierror.Wrap(err, apierror.InternalError, ""))
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// respondSecret is respond for an answer v that carries a secret shown
// once: a replay of the request with the same Idempotency-Key gets
// replay, v without the secret, and the secret is never stored.
func respondSecret(w http.ResponseWriter, r *http.Request, status int, v, replay any) {
	body, err := encode(r, replay)
	if err != nil {
		apierror.Write(w, r, apierror.Wrap(err, apierror.InternalError, ""))
		return
	}
	middleware.SetReplayBody(w, body)
	respond(w, r, status, v)
}

// encode is the body of a 2xx answer v: its JSON, with "success": true
// first when the success field is on, and a newline. "<", ">" and "&" are
// not escaped: a client's data (metadata) comes back byte for byte as it
// was stored and measured, so sending it back unchanged passes the same
// size rule.
func encode(r *http.Request, v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil { // Encode ends it with a newline
		return nil, fmt.Errorf("api: encode answer: %w", err)
	}
	body := buf.Bytes()
	if apierror.OptionsFrom(r.Context()).SuccessField && len(body) > 2 && body[0] == '{' {
		if bytes.Equal(body, []byte("{}\n")) {
			body = []byte(`{"success":true}` + "\n")
		} else {
			body = append([]byte(`{"success":true,`), body[1:]...)
		}
	}
	return body, nil
}

// takenMessage names the value that is taken in ALREADY_EXISTS, by
// conflicting field; other fields get the code's default message.
var takenMessage = map[string]string{
	"phone":             "A lead with this phone number already exists",
	"sessionExternalId": "A session with this sessionExternalId already exists",
}

// storeError maps a storage error to the answer, for a resource kind
// ("session", "lead", "key") and its human name ("Session"). A refusal of
// a handler's own made inside a store call (a rule judged in the update
// function of UpdateSession) is an *apierror.Error, and is answered as it
// is.
func storeError(err error, resource, name string) error {
	var conflict *store.ConflictError
	var limit *store.LimitError
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return apierror.From(err) // 503, reason timeout
	case errors.Is(err, store.ErrNotFound):
		return apierror.Wrap(err, apierror.NotFound, name+" not found").With("resource", resource)
	case errors.As(err, &conflict):
		return apierror.Wrap(err, apierror.AlreadyExists, takenMessage[conflict.Field]).
			With("field", conflict.Field).With("resource", resource)
	case errors.Is(err, store.ErrConflict):
		return apierror.Wrap(err, apierror.Conflict, "").With("resource", resource)
	case errors.As(err, &limit):
		return apierror.Wrap(err, apierror.Unprocessable, fmt.Sprintf("The account already has %d live %ss, as many as it may have; revoke one first.", limit.Limit, name)).
			With("reason", resource+"_limit").With("limit", limit.Limit).With("resource", resource)
	case errors.Is(err, store.ErrUnavailable):
		return apierror.Wrap(err, apierror.ServiceUnavailable, "The database is unavailable.").
			With("reason", "store_unavailable").WithRetryAfter(time.Second)
	}
	return apierror.From(err)
}

// list is the body of every list answer.
type list[T any] struct {
	Data       []T     `json:"data"`
	NextCursor *string `json:"next_cursor"`
}

func newList[T any](items []T, next string) list[T] {
	if items == nil {
		items = []T{}
	}
	l := list[T]{Data: items}
	if next != "" {
		l.NextCursor = &next
	}
	return l
}
