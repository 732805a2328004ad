package postgres

import (
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/internal/testenv"
	"github.com/tollgate-dev/tollgate/store"
)

// TestIdempotencyJudgedByDatabaseClock: two instances on one database,
// the second's clock 25 s ahead. Without WithClock, leases are judged by
// the database's clock, so the second cannot take over the first's live
// claim of a 10 s lease (with its own clock it would, and both handlers
// would run).
func TestIdempotencyJudgedByDatabaseClock(t *testing.T) {
	ctx := t.Context()
	url := testenv.Postgres(t)
	a, err := Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.now = func() time.Time { return time.Now().Add(25 * time.Second) }
	acc, _, err := a.EnsureAccount(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	c := store.IdempotencyClaim{AccountID: acc.ID, Key: "k", Fingerprint: store.NewFingerprint("POST", "/v1/leads", []byte(`{}`)),
		Lease: 10 * time.Second, Retention: time.Hour}
	if _, claimed, err := a.ClaimIdempotencyKey(ctx, c); !claimed || err != nil {
		t.Fatalf("first claim: %v, %v", claimed, err)
	}
	if _, claimed, err := b.ClaimIdempotencyKey(ctx, c); claimed || err != nil {
		t.Errorf("the instance whose clock runs ahead: claimed %v, err %v; want the live claim kept", claimed, err)
	}
}
