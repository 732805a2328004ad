package auth_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/tollgate-dev/tollgate/auth"
)

// memKeys is a KeyStore in memory: the hashes of the keys it knows, and
// when each key was last used.
type memKeys struct {
	mu       sync.Mutex
	keys     map[[32]byte]auth.KeyRecord
	lastUsed map[string]time.Time
	lookups  int
}

func (m *memKeys) LookupKeyByHash(_ context.Context, hash [32]byte) (auth.KeyRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lookups++
	k, ok := m.keys[hash]
	if !ok {
		return auth.KeyRecord{}, auth.ErrUnknown
	}
	return k, nil
}

func (m *memKeys) TouchKeys(_ context.Context, used map[string]time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, t := range used {
		m.lastUsed[id] = t
	}
	return nil
}

func ExampleNewVerifier() {
	ctx := context.Background()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	live, err := auth.NewKey(true)
	if err != nil {
		panic(err)
	}
	revoked, err := auth.NewKey(true)
	if err != nil {
		panic(err)
	}
	unknown, err := auth.NewKey(false)
	if err != nil {
		panic(err)
	}
	// The store keeps only hashes, never the secrets.
	ks := &memKeys{lastUsed: map[string]time.Time{}, keys: map[[32]byte]auth.KeyRecord{
		auth.Hash(live):    {ID: "key_1", AccountID: "acc_1", Scopes: []string{auth.ScopeLeadsRead}},
		auth.Hash(revoked): {ID: "key_2", AccountID: "acc_1", RevokedAt: &now},
	}}
	v := auth.NewVerifier(ks, auth.WithClock(func() time.Time { return now }))

	p, err := v.Verify(ctx, live)
	fmt.Println(p.AccountID, p.KeyID, p.Live, p.Scopes.Has(auth.ScopeLeadsRead), p.Scopes.Has(auth.ScopeLeadsWrite), err)
	_, err = v.Verify(ctx, live) // from the cache: no lookup
	fmt.Println(err, ks.lookups)

	_, err = v.Verify(ctx, revoked)
	fmt.Println(errors.Is(err, auth.ErrRevoked))
	_, err = v.Verify(ctx, unknown)
	fmt.Println(errors.Is(err, auth.ErrUnknown))
	_, err = v.Verify(ctx, live[:20]+"!"+live[21:]) // fails its checksum: no lookup
	fmt.Println(errors.Is(err, auth.ErrMalformed), ks.lookups)

	// Uses are written to the store in batches (Run flushes periodically).
	if err := v.Flush(ctx); err != nil {
		panic(err)
	}
	fmt.Println(ks.lastUsed["key_1"].Format(time.RFC3339), len(ks.lastUsed))
	// Output:
	// acc_1 key_1 true true false <nil>
	// <nil> 1
	// true
	// true
	// true 3
	// 2026-01-02T03:04:05Z 1
}
