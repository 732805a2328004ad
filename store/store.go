// Package store defines tollgate's persistent resources (accounts, API keys,
// sessions, leads, idempotency keys), the interfaces their backends
// implement, and the errors those backends return. Backends live in
// store/sqlite and store/postgres; store/storetest is the conformance suite
// every backend must pass.
//
// Times are stored with microsecond precision and returned in UTC.
// Backends read time from an injected clock, never from a package-level one.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Errors returned, wrapped, by every backend. Test them with errors.Is.
var (
	// ErrNotFound means no such resource, or it belongs to another account:
	// the two cases are indistinguishable to the caller.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict means the write conflicts with stored state: a unique
	// value is taken (the error is then also a *ConflictError naming the
	// field), or the resource is in a state that forbids the operation.
	ErrConflict = errors.New("store: conflict")
	// ErrUnavailable means the database could not be reached or is
	// overloaded (connection refused, locked, timed out). The driver's error
	// is wrapped too. Callers answer 503 and may retry.
	ErrUnavailable = errors.New("store: unavailable")
	// ErrLimit means the write would take the account past a limit on
	// how many of a resource it may have (Keys.CreateKeyCapped).
	ErrLimit = errors.New("store: limit reached")
)

// ConflictError reports a unique value that is already taken. It matches
// ErrConflict with errors.Is.
type ConflictError struct {
	Resource string // "account", "key", "session", "lead"
	Field    string // the API field name: "name", "sessionExternalId", "phone", ...
}

// Error names the resource and field.
func (e *ConflictError) Error() string {
	return fmt.Sprintf("store: %s with this %s already exists", e.Resource, e.Field)
}

// Is reports whether target is ErrConflict.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// LimitError reports a write refused because the account already has
// Limit live records of Resource. It matches ErrLimit with errors.Is.
type LimitError struct {
	Resource string // "key"
	Limit    int
}

// Error names the resource and the limit.
func (e *LimitError) Error() string {
	return fmt.Sprintf("store: the account already has %d live %ss", e.Limit, e.Resource)
}

// Is reports whether target is ErrLimit.
func (e *LimitError) Is(target error) bool { return target == ErrLimit }

// Unavailable wraps err so that it matches both ErrUnavailable and err.
func Unavailable(err error) error {
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// Store is everything a backend provides. Implementations are safe for
// concurrent use.
type Store interface {
	Accounts
	Keys
	Sessions
	Leads
	Idempotency
	// Ping reports whether the database is reachable (ErrUnavailable if not).
	Ping(ctx context.Context) error
	// Close releases the database; the Store is unusable afterwards.
	Close() error
}

// Account owns keys, sessions and leads.
type Account struct {
	ID        string // "acc_<ulid>"
	Name      string // unique
	CreatedAt time.Time
}

// Accounts stores accounts.
type Accounts interface {
	// CreateAccount creates an account. A taken name is a *ConflictError
	// with Field "name".
	CreateAccount(ctx context.Context, name string) (Account, error)
	// AccountByID returns the account with id, or ErrNotFound.
	AccountByID(ctx context.Context, id string) (Account, error)
	// AccountByName returns the account named name, or ErrNotFound.
	AccountByName(ctx context.Context, name string) (Account, error)
	// EnsureAccount returns the account named name, creating it if needed;
	// created reports whether this call created it. Concurrent calls with
	// one name return the same account, and exactly one reports created.
	EnsureAccount(ctx context.Context, name string) (a Account, created bool, err error)
}

// APIKey is a stored key. The secret itself is never stored: only its
// SHA-256 Hash and its display Start.
type APIKey struct {
	ID        string // "key_<ulid>"
	AccountID string
	Name      string
	Start     string   // prefix and first 4 characters, e.g. "tg_live_a1B2"
	Hash      [32]byte // SHA-256 of the secret; unique
	Scopes    []string
	RatePlan  string // e.g. "600/1m"; empty means the default plan
	CreatedAt time.Time
	// LastUsedAt is nil until the key is first used (see Keys.TouchKeys).
	LastUsedAt *time.Time
	// ExpiresAt is nil when the key does not expire.
	ExpiresAt *time.Time
	// RevokedAt is nil unless the key was revoked.
	RevokedAt *time.Time
}

// Keys stores API keys.
type Keys interface {
	// CreateKey stores k and returns it with ID and CreatedAt set (any
	// given values are ignored, as are LastUsedAt and RevokedAt). An
	// unknown k.AccountID is ErrNotFound; a taken Hash is a *ConflictError
	// with Field "hash". An account's key IDs increase in commit order, as
	// for CreateSession (RotateKey's new keys too).
	CreateKey(ctx context.Context, k APIKey) (APIKey, error)
	// CreateKeyCapped is CreateKey refusing, with a *LimitError, to store k
	// when its account already has max live keys (neither revoked nor
	// expired at the store's clock); max ≤ 0 means no cap. The count and
	// the insert happen under the lock that serialises the account's key
	// inserts, so concurrent creates never take an account past max.
	CreateKeyCapped(ctx context.Context, k APIKey, max int) (APIKey, error)
	// KeyByID returns key id of accountID; ErrNotFound if there is none or
	// it belongs to another account.
	KeyByID(ctx context.Context, accountID, id string) (APIKey, error)
	// KeyByHash returns the key whose hash is hash, whatever its account,
	// state or expiry, or ErrNotFound.
	KeyByHash(ctx context.Context, hash [32]byte) (APIKey, error)
	// ListKeys returns every key of accountID, revoked ones included,
	// oldest first.
	ListKeys(ctx context.Context, accountID string) ([]APIKey, error)
	// ListKeysPage is ListKeys a page at a time: the keys of accountID
	// with IDs after page.After, at most page.EffectiveLimit() of them,
	// and the cursor of the next page ("" after the last). A key committed
	// after a page was read is on a later page, as for ListSessions.
	ListKeysPage(ctx context.Context, accountID string, page Page) (list []APIKey, next string, err error)
	// RevokeKey sets the key's RevokedAt to at and returns the key.
	// Revoking a revoked key keeps the first time and is not an error.
	RevokeKey(ctx context.Context, accountID, id string, at time.Time) (APIKey, error)
	// RotateKey, in one transaction, creates next as CreateKey would
	// (empty Name and RatePlan, nil Scopes and nil ExpiresAt are taken from
	// the old key as it was, AccountID is accountID: see RotatedKey) and
	// sets the old key's ExpiresAt to
	// now+overlap, unless it already expires earlier. Rotating a revoked
	// or expired key is ErrConflict. It returns the new key and the old key
	// as updated.
	RotateKey(ctx context.Context, accountID, id string, next APIKey, overlap time.Duration) (created, old APIKey, err error)
	// RotateKeyCapped is RotateKey refusing, with a *LimitError, an
	// overlap (overlap > 0, while the old key is still live) when the
	// account's other live keys, the old key aside, already number max:
	// a rotation that ends the old key at once is never refused, and one
	// with an overlap takes the account to at most max+1 live keys until
	// the overlap ends, never further by rotating again. max ≤ 0 means no
	// cap. As for CreateKeyCapped, the count is taken under the lock of
	// the account's key inserts.
	RotateKeyCapped(ctx context.Context, accountID, id string, next APIKey, overlap time.Duration, max int) (created, old APIKey, err error)
	// TouchKeys sets LastUsedAt of each key in used (ID → time), in one
	// batch, never moving it backwards. Unknown IDs are ignored.
	TouchKeys(ctx context.Context, used map[string]time.Time) error
}

// Session statuses.
const (
	SessionActive    = "active"
	SessionCompleted = "completed"
	SessionFailed    = "failed"
)

// Session is one tracked session.
type Session struct {
	ID         string // "ses_<ulid>"
	AccountID  string
	ExternalID string // sessionExternalId; empty or unique within the account
	Title      string
	Source     string
	Model      string
	Status     string // SessionActive, SessionCompleted or SessionFailed
	StartedAt  time.Time
	EndedAt    *time.Time
	Tokens     int64
	// Metadata is a JSON object, stored and returned byte for byte. Nil is
	// stored as {}.
	Metadata  json.RawMessage
	CreatedAt time.Time
	UpdatedAt time.Time
}

// SessionFilter selects sessions in ListSessions; empty fields match all.
type SessionFilter struct {
	Status string
	Source string
}

// Sessions stores sessions. Validation is the caller's job.
type Sessions interface {
	// CreateSession stores s and returns it with ID, CreatedAt and
	// UpdatedAt set. A taken ExternalID is a *ConflictError with Field
	// "sessionExternalId"; an unknown AccountID is ErrNotFound.
	//
	// An account's session IDs increase in commit order: the backend
	// mints the ID inside the insert's transaction, under a lock that
	// serialises the account's session inserts until commit, greater than
	// every ID the account has (see NextID). So once a session is visible,
	// no session with a smaller ID can still commit, and a ListSessions
	// cursor never passes a session that is yet to appear.
	CreateSession(ctx context.Context, s Session) (Session, error)
	// SessionByID returns session id of accountID, or ErrNotFound.
	SessionByID(ctx context.Context, accountID, id string) (Session, error)
	// ListSessions returns the sessions of accountID matching f, with IDs
	// after page.After, in ID (commit) order, and the cursor of the next
	// page ("" on the last page). A session committed after a page was
	// read has an ID above that page's cursor, so it is on a later page.
	ListSessions(ctx context.Context, accountID string, f SessionFilter, page Page) (list []Session, next string, err error)
	// UpdateSession changes session id of accountID with update, as one
	// atomic read-modify-write: in one transaction, and under a lock
	// covering the session (a row lock, or the database's write lock) held
	// until commit, it reads the session as stored,
	// passes it to update, then stores every field update leaves except
	// ID, AccountID and CreatedAt (any changes to those are ignored), sets
	// UpdatedAt, and returns the session as stored.
	//
	// So update always sees the latest committed session, and what it
	// decides from it (a state rule, say) still holds when the result is
	// written: updates of one session, from any number of callers or
	// processes, apply one after the other, each to the session the
	// previous one left, and none loses another's changes.
	//
	// update is called at most once, with the lock held: it must be quick
	// and must not use the store. If it returns an error, nothing is
	// written and UpdateSession returns that error as it is. No session
	// is ErrNotFound (update is not called); a taken ExternalID is a
	// *ConflictError, as for create.
	UpdateSession(ctx context.Context, accountID, id string, update func(*Session) error) (Session, error)
	// DeleteSession deletes session id of accountID, or returns ErrNotFound.
	DeleteSession(ctx context.Context, accountID, id string) error
}

// Lead statuses.
const (
	LeadNew       = "new"
	LeadContacted = "contacted"
	LeadQualified = "qualified"
	LeadLost      = "lost"
)

// Lead is one sales lead.
type Lead struct {
	ID        string // "lead_<ulid>"
	AccountID string
	Name      string
	Email     string
	Phone     string // E.164; empty or unique within the account
	Company   string
	Notes     string
	Status    string // LeadNew, LeadContacted, LeadQualified or LeadLost
	CreatedAt time.Time
	UpdatedAt time.Time
}

// LeadFilter selects leads in ListLeads; empty fields match all.
type LeadFilter struct {
	Status string
}

// Leads stores leads. Validation is the caller's job.
type Leads interface {
	// CreateLead stores l and returns it with ID, CreatedAt and UpdatedAt
	// set. A taken Phone is a *ConflictError with Field "phone"; an unknown
	// AccountID is ErrNotFound. An account's lead IDs increase in commit
	// order, as for CreateSession.
	CreateLead(ctx context.Context, l Lead) (Lead, error)
	// LeadByID returns lead id of accountID, or ErrNotFound.
	LeadByID(ctx context.Context, accountID, id string) (Lead, error)
	// ListLeads is ListSessions for leads.
	ListLeads(ctx context.Context, accountID string, f LeadFilter, page Page) (list []Lead, next string, err error)
	// UpdateLead is UpdateSession for leads: update changes the lead as
	// stored, under a lock held until the result is committed. A taken
	// Phone is a *ConflictError.
	UpdateLead(ctx context.Context, accountID, id string, update func(*Lead) error) (Lead, error)
	// DeleteLead deletes lead id of accountID, or returns ErrNotFound.
	DeleteLead(ctx context.Context, accountID, id string) error
}

// Page limits.
const (
	DefaultLimit = 20
	MaxLimit     = 100
)

// Page selects one page of a list: items with an ID greater than After (a
// cursor returned by the previous page, or "" for the first), at most Limit
// of them. A Limit ≤ 0 means DefaultLimit; above MaxLimit means MaxLimit.
type Page struct {
	After string
	Limit int
}

// EffectiveLimit returns the limit a backend applies for p.
func (p Page) EffectiveLimit() int {
	switch {
	case p.Limit <= 0:
		return DefaultLimit
	case p.Limit > MaxLimit:
		return MaxLimit
	}
	return p.Limit
}

// CutPage trims list, read with limit+1 rows, to a page of limit and
// returns the next page's cursor: the last item's ID when there was more,
// "" otherwise. It is a helper for backends.
func CutPage[T any](list []T, limit int, id func(T) string) ([]T, string) {
	if len(list) <= limit {
		return list, ""
	}
	list = list[:limit]
	return list, id(list[limit-1])
}

// RotationExpiry returns the expiry a backend sets on key old when rotating
// it at now with overlap: now+overlap (overlap < 0 counts as 0), or the
// key's own expiry when that is earlier. A revoked or expired key is
// ErrConflict. It is a helper for backends.
func RotationExpiry(old APIKey, now time.Time, overlap time.Duration) (time.Time, error) {
	if old.RevokedAt != nil {
		return time.Time{}, fmt.Errorf("key %s is revoked: %w", old.ID, ErrConflict)
	}
	if old.ExpiresAt != nil && !now.Before(*old.ExpiresAt) {
		return time.Time{}, fmt.Errorf("key %s is expired: %w", old.ID, ErrConflict)
	}
	exp := now.Add(max(overlap, 0)).UTC().Truncate(time.Microsecond)
	if old.ExpiresAt != nil && old.ExpiresAt.Before(exp) {
		exp = *old.ExpiresAt
	}
	return exp, nil
}

// RotatedKey returns the key a backend inserts when rotating old to next:
// next, with AccountID from old, and Name, Scopes (when nil), RatePlan and
// ExpiresAt (when nil) taken from old, so that a rotation never lengthens
// a key's life. old is the key as it was before the rotation shortened its
// expiry. It is a helper for backends.
func RotatedKey(old, next APIKey) APIKey {
	next.AccountID = old.AccountID
	if next.Name == "" {
		next.Name = old.Name
	}
	if next.Scopes == nil {
		next.Scopes = old.Scopes
	}
	if next.RatePlan == "" {
		next.RatePlan = old.RatePlan
	}
	if next.ExpiresAt == nil {
		next.ExpiresAt = old.ExpiresAt
	}
	return next
}
