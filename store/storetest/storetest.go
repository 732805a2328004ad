// Package storetest is the conformance suite for store backends: every
// backend runs the same Run from its own tests, against a real database.
package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/tollgate-dev/tollgate/auth"
	"github.com/tollgate-dev/tollgate/internal/testenv"
	"github.com/tollgate-dev/tollgate/store"
)

// Harness describes a backend to the suite.
type Harness struct {
	// Open returns a new, empty store that reads time from now. It must
	// arrange for the store to be closed when t ends (closing twice must
	// be harmless).
	Open func(t *testing.T, now func() time.Time) store.Store
	// Dump returns everything s holds at rest, as bytes: the database files
	// of an embedded engine, every row of every table of a server. The
	// suite searches it for key secrets.
	Dump func(t *testing.T, s store.Store) []byte
}

// Run runs the whole suite against h. Subtests run in parallel, each on
// its own store.
func Run(t *testing.T, h Harness) {
	t.Run("Accounts", func(t *testing.T) { t.Parallel(); testAccounts(t, h) })
	t.Run("EnsureAccountConcurrent", func(t *testing.T) { t.Parallel(); testEnsureAccountConcurrent(t, h) })
	t.Run("Keys", func(t *testing.T) { t.Parallel(); testKeys(t, h) })
	t.Run("RevokeKey", func(t *testing.T) { t.Parallel(); testRevokeKey(t, h) })
	t.Run("RotateKey", func(t *testing.T) { t.Parallel(); testRotateKey(t, h) })
	t.Run("CreateKeyCapped", func(t *testing.T) { t.Parallel(); testCreateKeyCapped(t, h) })
	t.Run("RotateKeyCapped", func(t *testing.T) { t.Parallel(); testRotateKeyCapped(t, h) })
	t.Run("TouchKeys", func(t *testing.T) { t.Parallel(); testTouchKeys(t, h) })
	t.Run("AuthKeys", func(t *testing.T) { t.Parallel(); testAuthKeys(t, h) })
	t.Run("NoSecretsAtRest", func(t *testing.T) { t.Parallel(); testNoSecretsAtRest(t, h) })
	t.Run("Sessions", func(t *testing.T) { t.Parallel(); testSessions(t, h) })
	t.Run("SessionConflicts", func(t *testing.T) { t.Parallel(); testSessionConflicts(t, h) })
	t.Run("ListSessions", func(t *testing.T) { t.Parallel(); testListSessions(t, h) })
	t.Run("CreateWhilePaging", func(t *testing.T) { t.Parallel(); testCreateWhilePaging(t, h) })
	t.Run("Leads", func(t *testing.T) { t.Parallel(); testLeads(t, h) })
	t.Run("ListLeads", func(t *testing.T) { t.Parallel(); testListLeads(t, h) })
	t.Run("LeadPhoneRace", func(t *testing.T) { t.Parallel(); testLeadPhoneRace(t, h) })
	t.Run("UpdateSession", func(t *testing.T) { t.Parallel(); testUpdate(t, h, sessionUpdates) })
	t.Run("UpdateLead", func(t *testing.T) { t.Parallel(); testUpdate(t, h, leadUpdates) })
	t.Run("Closed", func(t *testing.T) { t.Parallel(); testClosed(t, h) })
	t.Run("Idempotency", func(t *testing.T) { t.Parallel(); testIdempotency(t, h) })
	t.Run("IdempotencyLease", func(t *testing.T) { t.Parallel(); testIdempotencyLease(t, h) })
	t.Run("IdempotencyRetention", func(t *testing.T) { t.Parallel(); testIdempotencyRetention(t, h) })
	t.Run("IdempotencyCompleteKeepsRetention", func(t *testing.T) { t.Parallel(); testIdempotencyCompleteKeepsRetention(t, h) })
	t.Run("IdempotencyLiveLeasePastRetention", func(t *testing.T) { t.Parallel(); testIdempotencyLiveLeasePastRetention(t, h) })
	t.Run("IdempotencyClaimRace", func(t *testing.T) { t.Parallel(); testIdempotencyClaimRace(t, h) })
	t.Run("IdempotencyClosed", func(t *testing.T) { t.Parallel(); testIdempotencyClosed(t, h) })
}

// micro is what a backend returns for a time it was given.
func micro(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func microPtr(t time.Time) *time.Time { m := micro(t); return &m }

// env is one test's store and clock.
type env struct {
	s     store.Store
	clock *testenv.Clock
	ctx   context.Context
}

func newEnv(t *testing.T, h Harness) *env {
	t.Helper()
	// The readings carry nanoseconds, to check that backends store
	// microseconds.
	c := testenv.NewClock(time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.UTC))
	return &env{s: h.Open(t, c.Now), clock: c, ctx: t.Context()}
}

// now is the backend's view of the clock.
func (e *env) now() time.Time { return micro(e.clock.Now()) }

func (e *env) account(t *testing.T, name string) store.Account {
	t.Helper()
	a, err := e.s.CreateAccount(e.ctx, name)
	if err != nil {
		t.Fatalf("CreateAccount(%q): %v", name, err)
	}
	return a
}

// newSecret returns a new key secret and the APIKey to store for it.
func newSecret(t *testing.T, accountID string) (string, store.APIKey) {
	t.Helper()
	secret, err := auth.NewKey(true)
	if err != nil {
		t.Fatal(err)
	}
	return secret, store.APIKey{
		AccountID: accountID,
		Name:      "ci",
		Start:     auth.Start(secret),
		Hash:      auth.Hash(secret),
		Scopes:    []string{auth.ScopeLeadsRead, auth.ScopeLeadsWrite},
		RatePlan:  "600/1m",
	}
}

func (e *env) key(t *testing.T, accountID string) (string, store.APIKey) {
	t.Helper()
	secret, k := newSecret(t, accountID)
	k, err := e.s.CreateKey(e.ctx, k)
	if err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	return secret, k
}

// wantErr fails t unless err matches want (nil meaning no error).
func wantErr(t *testing.T, op string, err, want error) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("%s: unexpected error %v", op, err)
		}
		return
	}
	if !errors.Is(err, want) {
		t.Fatalf("%s error = %v, want %v", op, err, want)
	}
}

// wantConflict fails t unless err is a *store.ConflictError on field.
func wantConflict(t *testing.T, op string, err error, field string) {
	t.Helper()
	var ce *store.ConflictError
	if !errors.As(err, &ce) || !errors.Is(err, store.ErrConflict) {
		t.Fatalf("%s error = %v, want *store.ConflictError matching ErrConflict", op, err)
	}
	if ce.Field != field {
		t.Fatalf("%s conflict field = %q, want %q", op, ce.Field, field)
	}
}

func diff[T any](t *testing.T, op string, want, got T) {
	t.Helper()
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", op, d)
	}
}
