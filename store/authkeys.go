package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tollgate-dev/tollgate/auth"
)

// AuthKeys adapts k to the auth.KeyStore a Verifier reads: ErrNotFound
// becomes auth.ErrUnknown; other errors pass through for the Verifier to
// report as auth.ErrUnavailable.
func AuthKeys(k Keys) auth.KeyStore { return authKeys{k} }

type authKeys struct{ k Keys }

// LookupKeyByHash implements auth.KeyStore.
func (a authKeys) LookupKeyByHash(ctx context.Context, hash [32]byte) (auth.KeyRecord, error) {
	key, err := a.k.KeyByHash(ctx, hash)
	if errors.Is(err, ErrNotFound) {
		return auth.KeyRecord{}, fmt.Errorf("%w: %w", auth.ErrUnknown, err)
	}
	if err != nil {
		return auth.KeyRecord{}, err
	}
	return auth.KeyRecord{
		ID:        key.ID,
		AccountID: key.AccountID,
		Scopes:    key.Scopes,
		RatePlan:  key.RatePlan,
		ExpiresAt: key.ExpiresAt,
		RevokedAt: key.RevokedAt,
	}, nil
}

// TouchKeys implements auth.KeyStore.
func (a authKeys) TouchKeys(ctx context.Context, used map[string]time.Time) error {
	return a.k.TouchKeys(ctx, used)
}
