package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

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
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		k, err = db.insertKey(ctx, tx, k, max)
		return err
	})
	if err != nil {
		return store.APIKey{}, fmt.Errorf("sqlite: create key: %w", wrapErr(err))
	}
	return k, nil
}

// insertKey inserts k in tx, a write transaction, with an ID and
// CreatedAt taken there (see nextID).
func (db *DB) insertKey(ctx context.Context, tx *sql.Tx, k store.APIKey, max int) (store.APIKey, error) {
	id, now, err := db.nextID(ctx, tx, "api_keys", store.PrefixKey, k.AccountID)
	if err != nil {
		return store.APIKey{}, err
	}
	if max > 0 {
		var live int
		err := tx.QueryRowContext(ctx, `SELECT count(*) FROM api_keys WHERE account_id = ?
			AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)`, k.AccountID, toMicro(now)).Scan(&live)
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
	k.ExpiresAt = truncPtr(k.ExpiresAt)
	if k.Scopes == nil {
		k.Scopes = []string{}
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO api_keys (`+keyCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, NULL)`,
		k.ID, k.AccountID, k.Name, k.Start, k.Hash[:], strings.Join(k.Scopes, " "), k.RatePlan,
		toMicro(k.CreatedAt), toNullMicro(k.ExpiresAt))
	return k, err
}

// KeyByID implements store.Keys.
func (db *DB) KeyByID(ctx context.Context, accountID, id string) (store.APIKey, error) {
	k, err := scanKey(db.r.QueryRowContext(ctx, `SELECT `+keyCols+` FROM api_keys WHERE account_id = ? AND id = ?`, accountID, id))
	if err != nil {
		return store.APIKey{}, fmt.Errorf("sqlite: key by id: %w", wrapErr(err))
	}
	return k, nil
}

// KeyByHash implements store.Keys.
func (db *DB) KeyByHash(ctx context.Context, hash [32]byte) (store.APIKey, error) {
	k, err := scanKey(db.r.QueryRowContext(ctx, `SELECT `+keyCols+` FROM api_keys WHERE hash = ?`, hash[:]))
	if err != nil {
		return store.APIKey{}, fmt.Errorf("sqlite: key by hash: %w", wrapErr(err))
	}
	return k, nil
}

// ListKeys implements store.Keys.
func (db *DB) ListKeys(ctx context.Context, accountID string) ([]store.APIKey, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+keyCols+` FROM api_keys WHERE account_id = ? ORDER BY id`, accountID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list keys: %w", wrapErr(err))
	}
	defer rows.Close()
	keys := []store.APIKey{}
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list keys: %w", wrapErr(err))
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list keys: %w", wrapErr(err))
	}
	return keys, nil
}

// ListKeysPage implements store.Keys.
func (db *DB) ListKeysPage(ctx context.Context, accountID string, page store.Page) ([]store.APIKey, string, error) {
	limit := page.EffectiveLimit()
	rows, err := db.r.QueryContext(ctx, `SELECT `+keyCols+` FROM api_keys WHERE account_id = ? AND id > ? ORDER BY id LIMIT ?`,
		accountID, page.After, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("sqlite: list keys: %w", wrapErr(err))
	}
	defer rows.Close()
	keys := []store.APIKey{}
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, "", fmt.Errorf("sqlite: list keys: %w", wrapErr(err))
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("sqlite: list keys: %w", wrapErr(err))
	}
	keys, next := store.CutPage(keys, limit, func(k store.APIKey) string { return k.ID })
	return keys, next, nil
}

// RevokeKey implements store.Keys.
func (db *DB) RevokeKey(ctx context.Context, accountID, id string, at time.Time) (store.APIKey, error) {
	k, err := scanKey(db.w.QueryRowContext(ctx,
		`UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?) WHERE account_id = ? AND id = ? RETURNING `+keyCols,
		toMicro(at), accountID, id))
	if err != nil {
		return store.APIKey{}, fmt.Errorf("sqlite: revoke key: %w", wrapErr(err))
	}
	return k, nil
}

// RotateKey implements store.Keys.
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
	err = db.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		old, err = scanKey(tx.QueryRowContext(ctx, `SELECT `+keyCols+` FROM api_keys WHERE account_id = ? AND id = ?`, accountID, id))
		if err != nil {
			return err
		}
		now := db.now()
		exp, err := store.RotationExpiry(old, now, overlap)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE api_keys SET expires_at = ? WHERE id = ?`, toMicro(exp), old.ID); err != nil {
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
		return store.APIKey{}, store.APIKey{}, fmt.Errorf("sqlite: rotate key: %w", wrapErr(err))
	}
	return created, old, nil
}

// TouchKeys implements store.Keys.
func (db *DB) TouchKeys(ctx context.Context, used map[string]time.Time) error {
	if len(used) == 0 {
		return nil
	}
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx,
			`UPDATE api_keys SET last_used_at = max(coalesce(last_used_at, 0), ?) WHERE id = ?`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for id, at := range used {
			if _, err := stmt.ExecContext(ctx, toMicro(at), id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: touch keys: %w", wrapErr(err))
	}
	return nil
}

func scanKey(row scanner) (store.APIKey, error) {
	var (
		k                  store.APIKey
		hash               []byte
		scopes             string
		created            int64
		used, exp, revoked sql.NullInt64
	)
	err := row.Scan(&k.ID, &k.AccountID, &k.Name, &k.Start, &hash, &scopes, &k.RatePlan,
		&created, &used, &exp, &revoked)
	if err != nil {
		return store.APIKey{}, err
	}
	if len(hash) != len(k.Hash) {
		return store.APIKey{}, fmt.Errorf("key %s: hash is %d bytes, want 32", k.ID, len(hash))
	}
	copy(k.Hash[:], hash)
	k.Scopes = strings.Fields(scopes)
	if k.Scopes == nil {
		k.Scopes = []string{}
	}
	k.CreatedAt = fromMicro(created)
	k.LastUsedAt = fromNullMicro(used)
	k.ExpiresAt = fromNullMicro(exp)
	k.RevokedAt = fromNullMicro(revoked)
	return k, nil
}

func truncPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC().Truncate(time.Microsecond)
	return &u
}
