package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/tollgate-dev/tollgate/store"
)

const idemCols = `account_id, key, method, path, body_hash, state, token, lease_expires_at,
	status, header, body, created_at, expires_at`

// claimAttempts bounds the retries of a claim whose record vanished (was
// released or purged) between the upsert and the read.
const claimAttempts = 3

// ClaimIdempotencyKey implements store.Idempotency. The claim is one
// INSERT … ON CONFLICT DO UPDATE … WHERE: PostgreSQL locks the existing
// row and evaluates the takeover condition on its latest version, so of
// any number of concurrent claims (from any instance) exactly one wins.
// A record past its retention is replaced only when it is complete or its
// lease has also run out: a live holder keeps its claim.
func (db *DB) ClaimIdempotencyKey(ctx context.Context, c store.IdempotencyClaim) (store.IdempotencyRecord, bool, error) {
	if err := c.Check(); err != nil {
		return store.IdempotencyRecord{}, false, fmt.Errorf("postgres: claim idempotency key: %w", err)
	}
	for range claimAttempts {
		now, err := db.idemNow(ctx)
		if err != nil {
			return store.IdempotencyRecord{}, false, fmt.Errorf("postgres: claim idempotency key: %w", err)
		}
		rec := c.Record(now)
		tag, err := db.pool.Exec(ctx, `INSERT INTO idempotency_keys AS k (`+idemCols+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, NULL, NULL, $9, $10)
			ON CONFLICT (account_id, key) DO UPDATE SET
				method = excluded.method, path = excluded.path, body_hash = excluded.body_hash,
				state = excluded.state, token = excluded.token, lease_expires_at = excluded.lease_expires_at,
				status = NULL, header = NULL, body = NULL,
				created_at = excluded.created_at, expires_at = excluded.expires_at
			WHERE (k.expires_at <= $9 AND (k.state <> $6 OR k.lease_expires_at <= $9))
				OR (k.state = $6 AND k.lease_expires_at <= $9 AND k.method = excluded.method
					AND k.path = excluded.path AND k.body_hash = excluded.body_hash)`,
			rec.AccountID, rec.Key, rec.Fingerprint.Method, rec.Fingerprint.Path, rec.Fingerprint.BodyHash[:],
			rec.State, rec.Token, rec.LeaseExpiresAt, rec.CreatedAt, rec.ExpiresAt)
		if err != nil {
			return store.IdempotencyRecord{}, false, fmt.Errorf("postgres: claim idempotency key: %w", wrapErr(err))
		}
		if tag.RowsAffected() == 1 {
			return rec, true, nil
		}
		cur, err := scanIdempotency(db.pool.QueryRow(ctx,
			`SELECT `+idemCols+` FROM idempotency_keys WHERE account_id = $1 AND key = $2`, c.AccountID, c.Key))
		if errors.Is(err, pgx.ErrNoRows) {
			continue // released or purged meanwhile: claim again
		}
		if err != nil {
			return store.IdempotencyRecord{}, false, fmt.Errorf("postgres: claim idempotency key: %w", wrapErr(err))
		}
		cur.Token = ""
		return cur, false, nil
	}
	return store.IdempotencyRecord{}, false, fmt.Errorf("postgres: claim idempotency key: record changing under the claim: %w", store.ErrConflict)
}

// CompleteIdempotencyKey implements store.Idempotency.
func (db *DB) CompleteIdempotencyKey(ctx context.Context, accountID, key, token string, resp store.StoredResponse) error {
	header := resp.Header
	if header == nil {
		header = map[string][]string{}
	}
	hj, err := json.Marshal(header)
	if err != nil {
		return fmt.Errorf("postgres: complete idempotency key: %w", err)
	}
	body := resp.Body
	if body == nil {
		body = []byte{}
	}
	// An answer stored past the record's retention (a handler that ran
	// longer, renewing its lease) is kept for one retention from now, so
	// that the retry right after it replays it instead of running again.
	// One stored before then keeps its retention.
	err = db.held(ctx, `UPDATE idempotency_keys SET state = $1, token = NULL, status = $2, header = $3, body = $4,
			expires_at = CASE WHEN expires_at <= c.now THEN c.now + (expires_at - created_at) ELSE expires_at END
		FROM (SELECT `+idemNowSQL(9)+` AS now) AS c
		WHERE account_id = $5 AND key = $6 AND token = $7 AND state = $8`,
		store.IdempotencyComplete, resp.Status, string(hj), body, accountID, key, token, store.IdempotencyInFlight, db.idemNowArg())
	if err != nil {
		return fmt.Errorf("postgres: complete idempotency key: %w", err)
	}
	return nil
}

// ReleaseIdempotencyKey implements store.Idempotency.
func (db *DB) ReleaseIdempotencyKey(ctx context.Context, accountID, key, token string) error {
	err := db.held(ctx, `DELETE FROM idempotency_keys WHERE account_id = $1 AND key = $2 AND token = $3 AND state = $4`,
		accountID, key, token, store.IdempotencyInFlight)
	if err != nil {
		return fmt.Errorf("postgres: release idempotency key: %w", err)
	}
	return nil
}

// ExtendIdempotencyLease implements store.Idempotency.
func (db *DB) ExtendIdempotencyLease(ctx context.Context, accountID, key, token string, lease time.Duration) error {
	if lease <= 0 {
		return fmt.Errorf("postgres: extend idempotency lease: %w", store.ErrInvalidClaim)
	}
	err := db.held(ctx, `UPDATE idempotency_keys SET lease_expires_at = `+idemNowSQL(1)+` + $6::bigint * interval '1 microsecond'
		WHERE account_id = $2 AND key = $3 AND token = $4 AND state = $5`,
		db.idemNowArg(), accountID, key, token, store.IdempotencyInFlight, lease.Microseconds())
	if err != nil {
		return fmt.Errorf("postgres: extend idempotency lease: %w", err)
	}
	return nil
}

// PurgeIdempotencyKeys implements store.Idempotency. An in-flight record
// past its retention stays until its lease has run out too.
func (db *DB) PurgeIdempotencyKeys(ctx context.Context) (int64, error) {
	tag, err := db.pool.Exec(ctx, `DELETE FROM idempotency_keys
		WHERE expires_at <= `+idemNowSQL(1)+` AND (state <> $2 OR lease_expires_at <= `+idemNowSQL(1)+`)`,
		db.idemNowArg(), store.IdempotencyInFlight)
	if err != nil {
		return 0, fmt.Errorf("postgres: purge idempotency keys: %w", wrapErr(err))
	}
	return tag.RowsAffected(), nil
}

// idemNow is the time by which idempotency leases and retention are
// judged: the database's clock, shared by every instance (one round trip;
// statements that need no reading in Go use idemNowSQL instead), or the
// injected one (WithClock), to the microsecond PostgreSQL keeps.
// With each instance's own clock, one running ahead would see a live
// lease as run out and take the claim over.
func (db *DB) idemNow(ctx context.Context) (time.Time, error) {
	if db.ownClock {
		return micro(db.now()), nil
	}
	var t time.Time
	if err := db.pool.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&t); err != nil {
		return time.Time{}, wrapErr(err)
	}
	return micro(t), nil
}

// idemNowSQL is idemNow inside a statement, as parameter $n: the injected
// clock's reading when there is one (idemNowArg), else the database's
// clock, with no round trip of its own.
func idemNowSQL(n int) string {
	return fmt.Sprintf("COALESCE($%d::timestamptz, date_trunc('microseconds', clock_timestamp()))", n)
}

// idemNowArg is the parameter of idemNowSQL: the injected clock's
// reading, or nil for the database's clock.
func (db *DB) idemNowArg() any {
	if db.ownClock {
		return micro(db.now())
	}
	return nil
}

// held runs a write that must touch the one record a claim token holds;
// touching none is store.ErrConflict.
func (db *DB) held(ctx context.Context, query string, args ...any) error {
	tag, err := db.pool.Exec(ctx, query, args...)
	if err != nil {
		return wrapErr(err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("claim not held: %w", store.ErrConflict)
	}
	return nil
}

func scanIdempotency(row pgx.Row) (store.IdempotencyRecord, error) {
	var (
		r             store.IdempotencyRecord
		hash, body    []byte
		token, header *string
		status        *int32
	)
	err := row.Scan(&r.AccountID, &r.Key, &r.Fingerprint.Method, &r.Fingerprint.Path, &hash, &r.State, &token,
		&r.LeaseExpiresAt, &status, &header, &body, &r.CreatedAt, &r.ExpiresAt)
	if err != nil {
		return store.IdempotencyRecord{}, err
	}
	copy(r.Fingerprint.BodyHash[:], hash)
	r.Token = fromNull(token)
	r.LeaseExpiresAt, r.CreatedAt, r.ExpiresAt = r.LeaseExpiresAt.UTC(), r.CreatedAt.UTC(), r.ExpiresAt.UTC()
	if status != nil {
		resp := &store.StoredResponse{Status: int(*status), Body: append([]byte{}, body...)}
		if err := json.Unmarshal([]byte(fromNull(header)), &resp.Header); err != nil {
			return store.IdempotencyRecord{}, fmt.Errorf("stored header: %w", err)
		}
		if resp.Header == nil {
			resp.Header = map[string][]string{}
		}
		r.Response = resp
	}
	return r, nil
}
