package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tollgate-dev/tollgate/store"
)

const idemCols = `account_id, key, method, path, body_hash, state, token, lease_expires_at,
	status, header, body, created_at, expires_at`

// ClaimIdempotencyKey implements store.Idempotency. The read and the write
// run in one BEGIN IMMEDIATE transaction, so claims of one key (from this
// process or another on the same file) are serialised.
func (db *DB) ClaimIdempotencyKey(ctx context.Context, c store.IdempotencyClaim) (store.IdempotencyRecord, bool, error) {
	if err := c.Check(); err != nil {
		return store.IdempotencyRecord{}, false, fmt.Errorf("sqlite: claim idempotency key: %w", err)
	}
	var (
		rec     store.IdempotencyRecord
		claimed bool
	)
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		now := db.now()
		cur, err := scanIdempotency(tx.QueryRowContext(ctx,
			`SELECT `+idemCols+` FROM idempotency_keys WHERE account_id = ? AND key = ?`, c.AccountID, c.Key))
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return err
		case expired(cur, now): // retention (and any live lease) over: a new request
		case cur.State == store.IdempotencyInFlight && !cur.LeaseExpiresAt.After(now) &&
			cur.Fingerprint == c.Fingerprint: // the holder is presumed dead
		default:
			rec = cur
			return nil
		}
		rec = c.Record(now)
		_, err = tx.ExecContext(ctx, `INSERT INTO idempotency_keys (`+idemCols+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL, ?, ?)
			ON CONFLICT (account_id, key) DO UPDATE SET
				method = excluded.method, path = excluded.path, body_hash = excluded.body_hash,
				state = excluded.state, token = excluded.token, lease_expires_at = excluded.lease_expires_at,
				status = NULL, header = NULL, body = NULL,
				created_at = excluded.created_at, expires_at = excluded.expires_at`,
			rec.AccountID, rec.Key, rec.Fingerprint.Method, rec.Fingerprint.Path, rec.Fingerprint.BodyHash[:],
			rec.State, rec.Token, toMicro(rec.LeaseExpiresAt), toMicro(rec.CreatedAt), toMicro(rec.ExpiresAt))
		claimed = err == nil
		return err
	})
	if err != nil {
		return store.IdempotencyRecord{}, false, fmt.Errorf("sqlite: claim idempotency key: %w", wrapErr(err))
	}
	if !claimed {
		rec.Token = ""
	}
	return rec, claimed, nil
}

// CompleteIdempotencyKey implements store.Idempotency.
func (db *DB) CompleteIdempotencyKey(ctx context.Context, accountID, key, token string, resp store.StoredResponse) error {
	header, err := json.Marshal(nonNilHeader(resp.Header))
	if err != nil {
		return fmt.Errorf("sqlite: complete idempotency key: %w", err)
	}
	body := resp.Body
	if body == nil {
		body = []byte{}
	}
	// An answer stored past the record's retention (a handler that ran
	// longer, renewing its lease) is kept for one retention from now, so
	// that the retry right after it replays it instead of running again.
	// One stored before then keeps its retention.
	now := toMicro(db.now())
	err = db.held(ctx, `UPDATE idempotency_keys SET state = ?, token = NULL, status = ?, header = ?, body = ?,
			expires_at = CASE WHEN expires_at <= ? THEN ? + (expires_at - created_at) ELSE expires_at END
		WHERE account_id = ? AND key = ? AND token = ? AND state = ?`,
		store.IdempotencyComplete, resp.Status, string(header), body, now, now,
		accountID, key, token, store.IdempotencyInFlight)
	if err != nil {
		return fmt.Errorf("sqlite: complete idempotency key: %w", err)
	}
	return nil
}

// ReleaseIdempotencyKey implements store.Idempotency.
func (db *DB) ReleaseIdempotencyKey(ctx context.Context, accountID, key, token string) error {
	err := db.held(ctx, `DELETE FROM idempotency_keys WHERE account_id = ? AND key = ? AND token = ? AND state = ?`,
		accountID, key, token, store.IdempotencyInFlight)
	if err != nil {
		return fmt.Errorf("sqlite: release idempotency key: %w", err)
	}
	return nil
}

// ExtendIdempotencyLease implements store.Idempotency.
func (db *DB) ExtendIdempotencyLease(ctx context.Context, accountID, key, token string, lease time.Duration) error {
	if lease <= 0 {
		return fmt.Errorf("sqlite: extend idempotency lease: %w", store.ErrInvalidClaim)
	}
	err := db.held(ctx, `UPDATE idempotency_keys SET lease_expires_at = ?
		WHERE account_id = ? AND key = ? AND token = ? AND state = ?`,
		toMicro(db.now().Add(lease)), accountID, key, token, store.IdempotencyInFlight)
	if err != nil {
		return fmt.Errorf("sqlite: extend idempotency lease: %w", err)
	}
	return nil
}

// PurgeIdempotencyKeys implements store.Idempotency. An in-flight record
// past its retention stays until its lease has run out too.
func (db *DB) PurgeIdempotencyKeys(ctx context.Context) (int64, error) {
	now := toMicro(db.now())
	res, err := db.w.ExecContext(ctx, `DELETE FROM idempotency_keys
		WHERE expires_at <= ? AND (state <> ? OR lease_expires_at <= ?)`,
		now, store.IdempotencyInFlight, now)
	if err != nil {
		return 0, fmt.Errorf("sqlite: purge idempotency keys: %w", wrapErr(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("sqlite: purge idempotency keys: %w", wrapErr(err))
	}
	return n, nil
}

// expired reports whether rec is over at now: its retention has ended and,
// when it is in flight, so has its lease. A request still holding a live
// lease keeps its record past retention.
func expired(rec store.IdempotencyRecord, now time.Time) bool {
	if rec.ExpiresAt.After(now) {
		return false
	}
	return rec.State != store.IdempotencyInFlight || !rec.LeaseExpiresAt.After(now)
}

// held runs a write that must touch the one record a claim token holds;
// touching none is store.ErrConflict.
func (db *DB) held(ctx context.Context, query string, args ...any) error {
	res, err := db.w.ExecContext(ctx, query, args...)
	if err != nil {
		return wrapErr(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return wrapErr(err)
	}
	if n == 0 {
		return fmt.Errorf("claim not held: %w", store.ErrConflict)
	}
	return nil
}

func nonNilHeader(h map[string][]string) map[string][]string {
	if h == nil {
		return map[string][]string{}
	}
	return h
}

func scanIdempotency(row scanner) (store.IdempotencyRecord, error) {
	var (
		r                         store.IdempotencyRecord
		hash, body                []byte
		token, header             sql.NullString
		status                    sql.NullInt64
		lease, created, expiresAt int64
	)
	err := row.Scan(&r.AccountID, &r.Key, &r.Fingerprint.Method, &r.Fingerprint.Path, &hash, &r.State, &token,
		&lease, &status, &header, &body, &created, &expiresAt)
	if err != nil {
		return store.IdempotencyRecord{}, err
	}
	copy(r.Fingerprint.BodyHash[:], hash)
	r.Token = token.String
	r.LeaseExpiresAt, r.CreatedAt, r.ExpiresAt = fromMicro(lease), fromMicro(created), fromMicro(expiresAt)
	if status.Valid {
		resp := &store.StoredResponse{Status: int(status.Int64), Body: append([]byte{}, body...)}
		if err := json.Unmarshal([]byte(header.String), &resp.Header); err != nil {
			return store.IdempotencyRecord{}, fmt.Errorf("stored header: %w", err)
		}
		resp.Header = nonNilHeader(resp.Header)
		r.Response = resp
	}
	return r, nil
}
