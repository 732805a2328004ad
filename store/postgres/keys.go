package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/tollgate-dev/tollgate/store"
)

const keyCols = `id, account_id, name, start, hash, scopes, rate_plan, created_at, last_used_at, expires_at, revoked_at`

// CreateKey implements store.Keys. As for sessions, an account's key IDs
// increase in commit order (see nextID), so ListKeysPage never passes a
// key that is yet to appear.
func (db *DB) CreateKey(ctx context.Context, k store.APIKey) (store.APIKey, error) {
	return db.CreateKeyCapped(ctx, k, 0)
}

// CreateKeyCapped implements store.Keys.
func (db *DB) CreateKeyCapped(ctx context.Context, k store.APIKey, max int) (store.APIKey, error) {
	err := db.inIDTx(ctx, func(tx pgx.Tx) error {
		var err error
		k, err = db.insertKey(ctx, tx, k, max)
		return err
	})
	if err != nil {
		return store.APIKey{}, fmt.Errorf("postgres: create key: %w", wrapErr(err))
	}
	return k, nil
}

// insertKey inserts k in tx, a READ COMMITTED transaction (inIDTx), with
// an ID and CreatedAt taken there, under the account's lock (see nextID).
func (db *DB) insertKey(ctx context.Context, tx pgx.Tx, k store.APIKey, max int) (store.APIKey, error) {
	id, now, err := db.nextID(ctx, tx, "api_keys", store.PrefixKey, k.AccountID)
	if err != nil {
		return store.APIKey{}, err
	}
	if max > 0 {
		var live int
		err := tx.QueryRow(ctx, `SELECT count(*) FROM api_keys WHERE account_id = $1
			AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)`, k.AccountID, now).Scan(&live)
		if err != nil {
			return store.APIKey{}, err
		}
		if live >= max {
			return store.APIKey{}, &store.LimitError{Resource: "key", Limit: max}
		}
	}
	k.ID = id
	k.CreatedAt = now
	k.LastUsedAt, k.RevokedAt = nil, nil
	k.ExpiresAt = microPtr(k.ExpiresAt)
	if k.Scopes == nil {
		k.Scopes = []string{}
	}
	return scanKey(tx.QueryRow(ctx, `INSERT INTO api_keys (`+keyCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, $9, NULL) RETURNING `+keyCols,
		k.ID, k.AccountID, k.Name, k.Start, k.Hash[:], k.Scopes, k.RatePlan, k.CreatedAt, k.ExpiresAt))
}

// KeyByID implements store.Keys.
func (db *DB) KeyByID(ctx context.Context, accountID, id string) (store.APIKey, error) {
	k, err := scanKey(db.pool.QueryRow(ctx, `SELECT `+keyCols+` FROM api_keys WHERE account_id = $1 AND id = $2`, accountID, id))
	if err != nil {
		return store.APIKey{}, fmt.Errorf("postgres: key by id: %w", wrapErr(err))
	}
	return k, nil
}

// KeyByHash implements store.Keys.
func (db *DB) KeyByHash(ctx context.Context, hash [32]byte) (store.APIKey, error) {
	k, err := scanKey(db.pool.QueryRow(ctx, `SELECT `+keyCols+` FROM api_keys WHERE hash = $1`, hash[:]))
	if err != nil {
		return store.APIKey{}, fmt.Errorf("postgres: key by hash: %w", wrapErr(err))
	}
	return k, nil
}

// ListKeys implements store.Keys.
func (db *DB) ListKeys(ctx context.Context, accountID string) ([]store.APIKey, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+keyCols+` FROM api_keys WHERE account_id = $1 ORDER BY id`, accountID)
	if err != nil {
		return nil, fmt.Errorf("postgres: list keys: %w", wrapErr(err))
	}
	keys, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.APIKey, error) { return scanKey(r) })
	if err != nil {
		return nil, fmt.Errorf("postgres: list keys: %w", wrapErr(err))
	}
	if keys == nil {
		keys = []store.APIKey{}
	}
	return keys, nil
}

// ListKeysPage implements store.Keys.
func (db *DB) ListKeysPage(ctx context.Context, accountID string, page store.Page) ([]store.APIKey, string, error) {
	limit := page.EffectiveLimit()
	rows, err := db.pool.Query(ctx, `SELECT `+keyCols+` FROM api_keys WHERE account_id = $1 AND id > $2 ORDER BY id LIMIT $3`,
		accountID, page.After, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("postgres: list keys: %w", wrapErr(err))
	}
	keys, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.APIKey, error) { return scanKey(r) })
	if err != nil {
		return nil, "", fmt.Errorf("postgres: list keys: %w", wrapErr(err))
	}
	if keys == nil {
		keys = []store.APIKey{}
	}
	keys, next := store.CutPage(keys, limit, func(k store.APIKey) string { return k.ID })
	return keys, next, nil
}

// RevokeKey implements store.Keys.
func (db *DB) RevokeKey(ctx context.Context, accountID, id string, at time.Time) (store.APIKey, error) {
	k, err := scanKey(db.pool.QueryRow(ctx,
		`UPDATE api_keys SET revoked_at = coalesce(revoked_at, $1) WHERE account_id = $2 AND id = $3 RETURNING `+keyCols,
		micro(at), accountID, id))
	if err != nil {
		return store.APIKey{}, fmt.Errorf("postgres: revoke key: %w", wrapErr(err))
	}
	return k, nil
}

// RotateKey implements store.Keys. The old key's row is locked (FOR
// UPDATE) for the transaction, so concurrent rotations of one key queue.
// The transaction is READ COMMITTED for insertKey (see inIDTx).
func (db *DB) RotateKey(ctx context.Context, accountID, id string, next store.APIKey, overlap time.Duration) (created, old store.APIKey, err error) {
	return db.RotateKeyCapped(ctx, accountID, id, next, overlap, 0)
}

// RotateKeyCapped implements store.Keys.
func (db *DB) RotateKeyCapped(ctx context.Context, accountID, id string, next store.APIKey, overlap time.Duration, max int) (created, old store.APIKey, err error) {
	// The old key's expiry is set before the count: with an overlap it
	// is still live and counted, so max+1 live keys in all means the
	// other live keys already number max.
	capped := 0
	if max > 0 && overlap > 0 {
		capped = max + 1
	}
	err = db.inIDTx(ctx, func(tx pgx.Tx) error {
		var err error
		old, err = scanKey(tx.QueryRow(ctx,
			`SELECT `+keyCols+` FROM api_keys WHERE account_id = $1 AND id = $2 FOR UPDATE`, accountID, id))
		if err != nil {
			return err
		}
		exp, err := store.RotationExpiry(old, db.now(), overlap)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE api_keys SET expires_at = $1 WHERE id = $2`, exp, old.ID); err != nil {
			return err
		}
		rotated := store.RotatedKey(old, next) // before old's expiry changes: it inherits the original
		old.ExpiresAt = &exp
		created, err = db.insertKey(ctx, tx, rotated, capped)
		if le := (*store.LimitError)(nil); errors.As(err, &le) {
			le.Limit = max // the cap, not the count that enforces it
		}
		return err
	})
	if err != nil {
		return store.APIKey{}, store.APIKey{}, fmt.Errorf("postgres: rotate key: %w", wrapErr(err))
	}
	return created, old, nil
}

// TouchKeys implements store.Keys, in one statement. It locks the rows in
// ID order (the sub-select's ORDER BY … FOR UPDATE) before it updates
// them: in the order of the map, or of whatever plan the planner picks,
// two instances flushing the same keys at once would deadlock.
func (db *DB) TouchKeys(ctx context.Context, used map[string]time.Time) error {
	if len(used) == 0 {
		return nil
	}
	ids := make([]string, 0, len(used))
	ats := make([]time.Time, 0, len(used))
	for id, at := range used {
		ids = append(ids, id)
		ats = append(ats, micro(at))
	}
	_, err := db.pool.Exec(ctx, `UPDATE api_keys k SET last_used_at = greatest(k.last_used_at, u.at)
		FROM (SELECT l.id, v.at FROM api_keys l JOIN unnest($1::text[], $2::timestamptz[]) AS v(id, at) ON l.id = v.id
			ORDER BY l.id FOR UPDATE OF l) AS u
		WHERE k.id = u.id`, ids, ats)
	if err != nil {
		return fmt.Errorf("postgres: touch keys: %w", wrapErr(err))
	}
	return nil
}

func scanKey(row pgx.Row) (store.APIKey, error) {
	var (
		k    store.APIKey
		hash []byte
	)
	err := row.Scan(&k.ID, &k.AccountID, &k.Name, &k.Start, &hash, &k.Scopes, &k.RatePlan,
		&k.CreatedAt, &k.LastUsedAt, &k.ExpiresAt, &k.RevokedAt)
	if err != nil {
		return store.APIKey{}, err
	}
	if len(hash) != len(k.Hash) {
		return store.APIKey{}, fmt.Errorf("key %s: hash is %d bytes, want 32", k.ID, len(hash))
	}
	copy(k.Hash[:], hash)
	if k.Scopes == nil {
		k.Scopes = []string{}
	}
	k.CreatedAt = k.CreatedAt.UTC()
	k.LastUsedAt, k.ExpiresAt, k.RevokedAt = utcPtr(k.LastUsedAt), utcPtr(k.ExpiresAt), utcPtr(k.RevokedAt)
	return k, nil
}
