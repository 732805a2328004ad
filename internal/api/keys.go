package api

import (
	"context"
	"fmt"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/tollgate-dev/tollgate/apierror"
	"github.com/tollgate-dev/tollgate/auth"
	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/ratelimit"
	"github.com/tollgate-dev/tollgate/store"
)

// maxRateLen bounds the length of a key's rate as sent (it is stored
// normalised): the longest valid plan in normal form, such as
// "9223372036854775807/2562047h47m16.854775807s;burst=1152921504606846",
// is 67 bytes, which leaves room for spaces.
const maxRateLen = 128

// maxKeyNameLen bounds a key's name, in characters.
const maxKeyNameLen = 100

// DefaultRotationOverlap is how long a rotated key stays valid when the
// request names no overlap.
const DefaultRotationOverlap = 24 * time.Hour

// Key is an API key as the API shows it: never the secret.
type Key struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Start      string     `json:"start"`
	Scopes     []string   `json:"scopes"`
	Rate       string     `json:"rate"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	ExpiresAt  *time.Time `json:"expires_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
}

// NewKeyView returns the API's view of k.
func NewKeyView(k store.APIKey) Key {
	return Key{ID: k.ID, Name: k.Name, Start: k.Start, Scopes: k.Scopes, Rate: k.RatePlan,
		CreatedAt: k.CreatedAt, LastUsedAt: k.LastUsedAt, ExpiresAt: k.ExpiresAt, RevokedAt: k.RevokedAt}
}

// CreatedKey is the answer to a create or rotate: the key and, this once,
// its secret.
type CreatedKey struct {
	Key
	Secret string `json:"key"`
	// PreviousKeyExpiresAt is set by rotate: when the old key stops working.
	PreviousKeyExpiresAt *time.Time `json:"previous_key_expires_at,omitempty"`
}

// replayedKey is a CreatedKey as a replay with the same Idempotency-Key
// shows it: the secret was shown once and is not kept, so "key" is null.
type replayedKey struct {
	Key
	Secret               *string    `json:"key"`
	PreviousKeyExpiresAt *time.Time `json:"previous_key_expires_at,omitempty"`
}

// replay returns ck without its secret.
func (ck CreatedKey) replay() replayedKey {
	return replayedKey{Key: ck.Key, PreviousKeyExpiresAt: ck.PreviousKeyExpiresAt}
}

// KeyRequest is the body of POST /v1/keys.
type KeyRequest struct {
	Name      string     `json:"name"`
	Scopes    []string   `json:"scopes"`
	ExpiresAt *time.Time `json:"expires_at"`
	Rate      string     `json:"rate"`
}

// Validate checks r as of now and returns VALIDATION_ERROR (every bad
// field) or UNPROCESSABLE.
func (r KeyRequest) Validate(now time.Time) error {
	var errs []apierror.FieldError
	if utf8.RuneCountInString(r.Name) > maxKeyNameLen {
		errs = append(errs, apierror.FieldError{Field: "name", Reason: fmt.Sprintf("Must be at most %d characters", maxKeyNameLen)})
	}
	if err := auth.ValidateScopes(r.Scopes); err != nil {
		errs = append(errs, apierror.FieldError{Field: "scopes", Reason: fmt.Sprintf("Must be a non-empty list of %v", auth.KnownScopes())})
	}
	if r.Rate != "" {
		if _, err := ratelimit.ParsePolicy(r.Rate); err != nil || len(r.Rate) > maxRateLen {
			errs = append(errs, apierror.FieldError{Field: "rate", Reason: `Must look like "600/1m"`})
		}
	}
	if r.ExpiresAt != nil && !timeInRange(*r.ExpiresAt) {
		errs = append(errs, apierror.FieldError{Field: "expires_at", Reason: timeRangeReason})
	}
	if len(errs) > 0 {
		return validation(errs)
	}
	if r.ExpiresAt != nil && !r.ExpiresAt.After(now) {
		return apierror.New(apierror.Unprocessable, "expires_at must be in the future.").With("field", "expires_at").With("reason", "expires_at is in the past")
	}
	return nil
}

// validation returns VALIDATION_ERROR for errs: the first as field and
// reason, all of them in errors.
func validation(errs []apierror.FieldError) *apierror.Error {
	e := apierror.New(apierror.ValidationError, errs[0].Reason).
		With("field", errs[0].Field).With("reason", errs[0].Reason)
	if len(errs) > 1 {
		e.With("errors", errs)
	}
	return e
}

// CreateKey makes a new live key for accountID from a validated request
// and stores its hash. The secret is returned this once.
func CreateKey(ctx context.Context, keys store.Keys, accountID string, req KeyRequest) (CreatedKey, error) {
	return createKeyCapped(ctx, keys, accountID, req, 0)
}

// createKeyCapped is CreateKey refusing with store.ErrLimit when the account
// already has max live keys (no cap when max ≤ 0).
func createKeyCapped(ctx context.Context, keys store.Keys, accountID string, req KeyRequest, max int) (CreatedKey, error) {
	secret, err := auth.NewKey(true)
	if err != nil {
		return CreatedKey{}, fmt.Errorf("api: create key: %w", err)
	}
	if p, err := ratelimit.ParsePolicy(req.Rate); err == nil {
		req.Rate = p.String() // stored in one form: "600/1m", not " 600/1m "
	}
	k := store.APIKey{
		AccountID: accountID, Name: req.Name, Start: auth.Start(secret), Hash: auth.Hash(secret),
		Scopes: req.Scopes, RatePlan: req.Rate, ExpiresAt: req.ExpiresAt,
	}
	k, err = keys.CreateKeyCapped(ctx, k, max)
	if err != nil {
		return CreatedKey{}, fmt.Errorf("api: create key: %w", err)
	}
	return CreatedKey{Key: NewKeyView(k), Secret: secret}, nil
}

// RotateKey replaces key id of accountID with a new secret; the old key
// keeps working for overlap.
func RotateKey(ctx context.Context, keys store.Keys, accountID, id string, overlap time.Duration) (CreatedKey, error) {
	return rotateKeyCapped(ctx, keys, accountID, id, overlap, 0)
}

// rotateKeyCapped is RotateKey refusing an overlap with store.ErrLimit when the
// account's other live keys already number max (no cap when max ≤ 0; see
// store.Keys.RotateKeyCapped).
func rotateKeyCapped(ctx context.Context, keys store.Keys, accountID, id string, overlap time.Duration, max int) (CreatedKey, error) {
	secret, err := auth.NewKey(true)
	if err != nil {
		return CreatedKey{}, fmt.Errorf("api: rotate key: %w", err)
	}
	next := store.APIKey{Start: auth.Start(secret), Hash: auth.Hash(secret)}
	created, old, err := keys.RotateKeyCapped(ctx, accountID, id, next, overlap, max)
	if err != nil {
		return CreatedKey{}, fmt.Errorf("api: rotate key: %w", err)
	}
	return CreatedKey{Key: NewKeyView(created), Secret: secret, PreviousKeyExpiresAt: old.ExpiresAt}, nil
}

func (a *API) createKey(w http.ResponseWriter, r *http.Request) {
	var req KeyRequest
	if err := middleware.DecodeJSON(r, &req, middleware.DecodeOptions{Required: []string{"name", "scopes"}}); err != nil {
		apierror.Write(w, r, err)
		return
	}
	if err := req.Validate(a.cfg.Now()); err != nil {
		middleware.DontStore(w) // its 422 is a rule of the body alone
		apierror.Write(w, r, err)
		return
	}
	p := principal(r)
	caller, err := a.callerKey(r)
	if err != nil {
		apierror.Write(w, r, err)
		return
	}
	// A new key without its own rate or expiry gets the caller's.
	if req.Rate == "" {
		req.Rate = caller.RatePlan
	}
	if req.ExpiresAt == nil {
		req.ExpiresAt = caller.ExpiresAt
	}
	if err := a.checkGrant(caller, req.Scopes, req.Rate, req.ExpiresAt); err != nil {
		apierror.Write(w, r, err)
		return
	}
	ck, err := createKeyCapped(r.Context(), a.cfg.Store, p.AccountID, req, a.cfg.MaxKeys)
	if err != nil {
		apierror.Write(w, r, storeError(err, "key", "API key"))
		return
	}
	w.Header().Set("Location", "/v1/keys/"+ck.ID)
	respondSecret(w, r, http.StatusCreated, ck, ck.replay())
}

func (a *API) listKeys(w http.ResponseWriter, r *http.Request) {
	page, _, err := listQuery(r, store.PrefixKey)
	if err != nil {
		apierror.Write(w, r, err)
		return
	}
	ks, next, err := a.cfg.Store.ListKeysPage(r.Context(), principal(r).AccountID, page)
	if err != nil {
		apierror.Write(w, r, storeError(err, "key", "API key"))
		return
	}
	views := make([]Key, len(ks))
	for i, k := range ks {
		views[i] = NewKeyView(k)
	}
	respond(w, r, http.StatusOK, newList(views, encodeCursor(next)))
}

func (a *API) getKey(w http.ResponseWriter, r *http.Request) {
	k, err := a.cfg.Store.KeyByID(r.Context(), principal(r).AccountID, pathID(r))
	if err != nil {
		apierror.Write(w, r, storeError(err, "key", "API key"))
		return
	}
	respond(w, r, http.StatusOK, NewKeyView(k))
}

func (a *API) revokeKey(w http.ResponseWriter, r *http.Request) {
	if _, _, err := a.managedKey(r); err != nil {
		apierror.Write(w, r, err)
		return
	}
	k, err := a.cfg.Store.RevokeKey(r.Context(), principal(r).AccountID, pathID(r), a.cfg.Now())
	if err != nil {
		apierror.Write(w, r, storeError(err, "key", "API key"))
		return
	}
	if a.cfg.Verifier != nil {
		a.cfg.Verifier.Forget(k.Hash) // this instance at once; others within the cache TTL
	}
	w.WriteHeader(http.StatusNoContent)
}

// rotateRequest is the body of POST /v1/keys/{id}/rotate.
type rotateRequest struct {
	Overlap *string `json:"overlap"`
}

func (a *API) rotateKey(w http.ResponseWriter, r *http.Request) {
	var req rotateRequest // the body is optional, whatever its framing
	if err := middleware.DecodeJSON(r, &req, middleware.DecodeOptions{Optional: true}); err != nil {
		apierror.Write(w, r, err)
		return
	}
	overlap := DefaultRotationOverlap
	if req.Overlap != nil {
		d, err := time.ParseDuration(*req.Overlap)
		if err != nil || d < 0 {
			apierror.Write(w, r, validation([]apierror.FieldError{{Field: "overlap", Reason: `Must be a non-negative duration such as "24h" or "0s"`}}))
			return
		}
		overlap = d
	}
	caller, target, err := a.managedKey(r)
	if err == nil {
		// The new key has the target's scopes, rate and expiry.
		err = a.checkGrant(caller, target.Scopes, target.RatePlan, target.ExpiresAt)
	}
	if err != nil {
		apierror.Write(w, r, err)
		return
	}
	ck, err := rotateKeyCapped(r.Context(), a.cfg.Store, caller.AccountID, target.ID, overlap, a.cfg.MaxKeys)
	if err != nil {
		apierror.Write(w, r, storeError(err, "key", "API key"))
		return
	}
	if a.cfg.Verifier != nil {
		// Its expiry changed: this instance sees it at once (0s ends it
		// now, as revoke), not a cache TTL later.
		a.cfg.Verifier.Forget(target.Hash)
	}
	w.Header().Set("Location", "/v1/keys/"+ck.ID)
	respondSecret(w, r, http.StatusCreated, ck, ck.replay())
}

// managedKey returns the calling key and key {id} of the request, which the
// caller may revoke or rotate only if it holds every scope of it: a key
// cannot end or take over a key that can do more than it can.
func (a *API) managedKey(r *http.Request) (caller, target store.APIKey, err error) {
	if caller, err = a.callerKey(r); err != nil {
		return caller, target, err
	}
	if target, err = a.cfg.Store.KeyByID(r.Context(), caller.AccountID, pathID(r)); err != nil {
		return caller, target, storeError(err, "key", "API key")
	}
	if missing := auth.Scopes(caller.Scopes).Missing(target.Scopes); len(missing) > 0 {
		return caller, target, apierror.New(apierror.Forbidden, "A key cannot manage a key with scopes it does not hold.").
			With("required_scopes", target.Scopes).With("missing_scopes", missing)
	}
	return caller, target, nil
}

// callerKey returns the calling key's record, read from the store: what
// it may grant is judged on it, not on the verifier's cached answer. A key
// revoked or expired since it was cached (on another instance, or by the
// CLI: up to the cache's 1 s) is refused with 401 here, and forgotten, so
// that the grace of the cache cannot mint a successor that outlives it.
func (a *API) callerKey(r *http.Request) (store.APIKey, error) {
	p := principal(r)
	k, err := a.cfg.Store.KeyByID(r.Context(), p.AccountID, p.KeyID)
	if err != nil {
		return k, storeError(err, "key", "API key")
	}
	reason, message := "", ""
	switch {
	case k.RevokedAt != nil:
		reason, message = "revoked", "The API key has been revoked."
	case k.ExpiresAt != nil && !a.cfg.Now().Before(*k.ExpiresAt):
		reason, message = "expired", "The API key has expired."
	default:
		return k, nil
	}
	if a.cfg.Verifier != nil {
		a.cfg.Verifier.Forget(k.Hash)
	}
	return k, apierror.New(apierror.Unauthorized, message).With("reason", reason)
}

// checkGrant refuses with FORBIDDEN a key (made or rotated by caller) with
// scopes, rate or expiry beyond caller's own: more scopes, a faster rate
// or a larger burst (an empty rate is the server's default), or a later
// expiry, or none when caller expires.
func (a *API) checkGrant(caller store.APIKey, scopes []string, rate string, expiresAt *time.Time) error {
	if missing := auth.Scopes(caller.Scopes).Missing(scopes); len(missing) > 0 {
		return apierror.New(apierror.Forbidden, "A key cannot grant scopes it does not hold.").
			With("required_scopes", scopes).With("missing_scopes", missing)
	}
	if mine := a.plan(caller.RatePlan); !a.plan(rate).Within(mine) {
		return apierror.New(apierror.Forbidden, "A key cannot grant a rate above its own ("+mine.String()+").").
			With("field", "rate").With("reason", "above the calling key's rate "+mine.String())
	}
	if caller.ExpiresAt != nil && (expiresAt == nil || expiresAt.After(*caller.ExpiresAt)) {
		mine := caller.ExpiresAt.UTC().Format(time.RFC3339)
		return apierror.New(apierror.Forbidden, "A key cannot grant a lifetime beyond its own (until "+mine+").").
			With("field", "expires_at").With("reason", "after the calling key's expiry "+mine)
	}
	return nil
}

// plan returns the policy of a key's rate plan: its own, or the default.
func (a *API) plan(rate string) ratelimit.Policy {
	if p, err := ratelimit.ParsePolicy(rate); err == nil {
		return p
	}
	return a.cfg.DefaultRate // empty; stored plans were validated when made
}
