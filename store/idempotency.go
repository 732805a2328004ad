package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"time"
)

// States of an idempotency record.
const (
	// IdempotencyInFlight means a request holds the key's claim and is
	// running; no response is stored yet.
	IdempotencyInFlight = "in_flight"
	// IdempotencyComplete means the response is stored and is replayed to
	// every later request with the key.
	IdempotencyComplete = "complete"
)

// Fingerprint identifies the request an idempotency key was first used
// with: its method, its path (with the query, if any) and the SHA-256 of
// its body. Fingerprints are comparable with ==.
type Fingerprint struct {
	Method   string
	Path     string
	BodyHash [32]byte
}

// NewFingerprint returns the fingerprint of a request with method, path
// and body.
func NewFingerprint(method, path string, body []byte) Fingerprint {
	return Fingerprint{Method: method, Path: path, BodyHash: sha256.Sum256(body)}
}

// ForKey returns f for a request whose Idempotency-Key belongs to the API
// key keyID rather than to its account (middleware.IdempotencyPerKey): the
// same request from another key does not match it.
func (f Fingerprint) ForKey(keyID string) Fingerprint {
	f.BodyHash = sha256.Sum256(append([]byte(keyID+"\x00"), f.BodyHash[:]...))
	return f
}

// StoredResponse is the response kept for replay.
type StoredResponse struct {
	Status int
	// Header holds the selected response headers (canonical names).
	Header map[string][]string
	// Body is the response body, byte for byte. Nil is stored as empty.
	Body []byte
}

// IdempotencyRecord is what a backend keeps for one (account, key).
type IdempotencyRecord struct {
	AccountID   string
	Key         string
	Fingerprint Fingerprint
	// State is IdempotencyInFlight or IdempotencyComplete.
	State string
	// Token identifies the claim. It is set only in the record returned to
	// the caller that won the claim; the holder passes it to Complete,
	// Release and Extend. Records returned to others carry "".
	Token string
	// LeaseExpiresAt is when an in-flight claim may be taken over by a
	// request with the same fingerprint: the holder is presumed dead.
	LeaseExpiresAt time.Time
	// Response is nil while in flight.
	Response  *StoredResponse
	CreatedAt time.Time
	// ExpiresAt is the end of retention: from then on a complete record
	// is ignored (a new request with the key is new) and Purge deletes
	// it. An in-flight record is ignored and purged only once its lease
	// has run out too.
	ExpiresAt time.Time
}

// IdempotencyClaim asks for the claim of one key.
type IdempotencyClaim struct {
	AccountID   string
	Key         string
	Fingerprint Fingerprint
	// Lease is how long the claim is held without completion or renewal
	// before another request may take it over. It must be positive.
	Lease time.Duration
	// Retention is how long the record is kept, from the claim. It must
	// be positive.
	Retention time.Duration
}

// Record is the in-flight record claim c makes at now (which backends
// read at microsecond precision), with a fresh token; a helper for
// backends.
func (c IdempotencyClaim) Record(now time.Time) IdempotencyRecord {
	return IdempotencyRecord{
		AccountID:      c.AccountID,
		Key:            c.Key,
		Fingerprint:    c.Fingerprint,
		State:          IdempotencyInFlight,
		Token:          NewClaimToken(),
		LeaseExpiresAt: now.Add(c.Lease).Truncate(time.Microsecond),
		CreatedAt:      now,
		ExpiresAt:      now.Add(c.Retention).Truncate(time.Microsecond),
	}
}

// ErrInvalidClaim is returned for a claim with an empty key or account, or
// a lease or retention that is not positive.
var ErrInvalidClaim = errors.New("store: invalid idempotency claim")

// Check returns ErrInvalidClaim when c cannot be stored. It is a helper for
// backends.
func (c IdempotencyClaim) Check() error {
	if c.AccountID == "" || c.Key == "" || c.Lease <= 0 || c.Retention <= 0 {
		return ErrInvalidClaim
	}
	return nil
}

// Idempotency stores idempotency keys, scoped by account. Implementations
// are safe for concurrent use, also from several processes sharing one
// database: Claim is atomic.
//
// Times are judged by the backend's clock.
type Idempotency interface {
	// ClaimIdempotencyKey claims c.Key for c.AccountID, atomically:
	//   - when there is no record, or it has expired, a new in-flight
	//     record is stored (replacing any old one). A complete record
	//     expires when its retention ends; an in-flight one when its
	//     retention has ended and its lease has run out, so a holder that
	//     renews its lease keeps the claim past the retention;
	//   - when the record is in flight, its lease has expired and its
	//     fingerprint equals c.Fingerprint, the claim is taken over: a new
	//     token and lease, so the old holder can no longer complete it;
	//   - otherwise the record is returned as it is.
	// claimed reports whether the caller now holds the claim; the record
	// then carries the claim's Token. An unknown account is ErrNotFound.
	ClaimIdempotencyKey(ctx context.Context, c IdempotencyClaim) (rec IdempotencyRecord, claimed bool, err error)
	// CompleteIdempotencyKey stores resp in the in-flight record held by
	// token and marks it complete. ErrConflict when token no longer holds
	// the claim (it was taken over, released, completed or purged).
	CompleteIdempotencyKey(ctx context.Context, accountID, key, token string, resp StoredResponse) error
	// ReleaseIdempotencyKey deletes the in-flight record held by token, so
	// the next request with the key runs anew. ErrConflict as for
	// Complete.
	ReleaseIdempotencyKey(ctx context.Context, accountID, key, token string) error
	// ExtendIdempotencyLease sets the lease of the in-flight record held
	// by token to now+lease, for a request still running. ErrConflict as
	// for Complete.
	ExtendIdempotencyLease(ctx context.Context, accountID, key, token string, lease time.Duration) error
	// PurgeIdempotencyKeys deletes every expired record (as for Claim:
	// past its retention and, when in flight, past its lease) and returns
	// how many it deleted.
	PurgeIdempotencyKeys(ctx context.Context) (int64, error)
}

// NewClaimToken returns a random claim token. It is a helper for backends
// and safe for concurrent use.
func NewClaimToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
