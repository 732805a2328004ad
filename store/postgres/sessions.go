package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/tollgate-dev/tollgate/store"
)

const sessionCols = `id, account_id, external_id, title, source, model, status, started_at, ended_at, tokens, metadata::text, created_at, updated_at`

// CreateSession implements store.Sessions. The ID and times are taken
// inside the insert's transaction, under a lock (see nextID), so an
// account's session IDs increase in commit order.
func (db *DB) CreateSession(ctx context.Context, s store.Session) (store.Session, error) {
	s = normSession(s)
	err := db.inIDTx(ctx, func(tx pgx.Tx) error {
		id, now, err := db.nextID(ctx, tx, "sessions", store.PrefixSession, s.AccountID)
		if err != nil {
			return err
		}
		s.ID = id
		s.CreatedAt, s.UpdatedAt = now, now
		_, err = tx.Exec(ctx, `INSERT INTO sessions (id, account_id, external_id, title, source, model, status,
			started_at, ended_at, tokens, metadata, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::text::json, $12, $13)`,
			s.ID, s.AccountID, nullString(s.ExternalID), s.Title, s.Source, s.Model, s.Status,
			s.StartedAt, s.EndedAt, s.Tokens, string(s.Metadata), s.CreatedAt, s.UpdatedAt)
		return err
	})
	if err != nil {
		return store.Session{}, fmt.Errorf("postgres: create session: %w", wrapErr(err))
	}
	return s, nil
}

// inIDTx runs f in a READ COMMITTED transaction, whatever the server's
// default: nextID relies on each statement taking a new snapshot, so that
// its read, made after the lock is granted, sees every row committed by
// the lock's previous holders.
func (db *DB) inIDTx(ctx context.Context, f func(tx pgx.Tx) error) error {
	return pgx.BeginTxFunc(ctx, db.pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, f)
}

// nextID returns the ID for a new row of accountID in table (sessions,
// leads or api_keys), which must sort after every ID the account already
// has there: lists page by ID, so a row committed with an ID below one a
// reader was already handed as a cursor would never be listed to that
// reader. It
// first takes a transaction-level advisory lock on (table, accountID),
// held until tx ends, so the account's inserts into table commit one at a
// time, in the order they read here. PostgreSQL makes a commit visible
// before it releases the committer's locks, so the read (a new snapshot,
// tx being READ COMMITTED) sees the previous holder's row, and IDs
// increase in commit order. The (account_id, id) index makes the read one
// seek.
// It also returns the clock's reading, taken under the lock, for CreatedAt.
func (db *DB) nextID(ctx context.Context, tx pgx.Tx, table, prefix, accountID string) (string, time.Time, error) {
	h := fnv.New64a()
	io.WriteString(h, "tollgate ids "+table+" "+accountID)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(h.Sum64())); err != nil {
		return "", time.Time{}, err
	}
	var prev string
	err := tx.QueryRow(ctx, `SELECT coalesce((SELECT id FROM `+table+
		` WHERE account_id = $1 ORDER BY id DESC LIMIT 1), '')`, accountID).Scan(&prev)
	if err != nil {
		return "", time.Time{}, err
	}
	now := db.now()
	id, err := store.NextID(prefix, now, prev)
	return id, now, err
}

// SessionByID implements store.Sessions.
func (db *DB) SessionByID(ctx context.Context, accountID, id string) (store.Session, error) {
	s, err := scanSession(db.pool.QueryRow(ctx,
		`SELECT `+sessionCols+` FROM sessions WHERE account_id = $1 AND id = $2`, accountID, id))
	if err != nil {
		return store.Session{}, fmt.Errorf("postgres: session by id: %w", wrapErr(err))
	}
	return s, nil
}

// ListSessions implements store.Sessions.
func (db *DB) ListSessions(ctx context.Context, accountID string, f store.SessionFilter, page store.Page) ([]store.Session, string, error) {
	limit := page.EffectiveLimit()
	rows, err := db.pool.Query(ctx, `SELECT `+sessionCols+` FROM sessions
		WHERE account_id = $1 AND id > $2 AND ($3 = '' OR status = $3) AND ($4 = '' OR source = $4)
		ORDER BY id LIMIT $5`,
		accountID, page.After, f.Status, f.Source, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("postgres: list sessions: %w", wrapErr(err))
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Session, error) { return scanSession(r) })
	if err != nil {
		return nil, "", fmt.Errorf("postgres: list sessions: %w", wrapErr(err))
	}
	list, next := store.CutPage(list, limit, func(x store.Session) string { return x.ID })
	return list, next, nil
}

// UpdateSession implements store.Sessions (see modify).
func (db *DB) UpdateSession(ctx context.Context, accountID, id string, update func(*store.Session) error) (store.Session, error) {
	return modify(ctx, db, "update session", update,
		func(tx pgx.Tx) (store.Session, error) {
			return scanSession(tx.QueryRow(ctx,
				`SELECT `+sessionCols+` FROM sessions WHERE account_id = $1 AND id = $2 FOR UPDATE`, accountID, id))
		},
		func(tx pgx.Tx, s store.Session) (store.Session, error) {
			s = normSession(s)
			return scanSession(tx.QueryRow(ctx, `UPDATE sessions SET
				external_id = $1, title = $2, source = $3, model = $4, status = $5, started_at = $6, ended_at = $7,
				tokens = $8, metadata = $9::text::json, updated_at = $10
				WHERE account_id = $11 AND id = $12 RETURNING `+sessionCols,
				nullString(s.ExternalID), s.Title, s.Source, s.Model, s.Status, s.StartedAt, s.EndedAt,
				s.Tokens, string(s.Metadata), db.now(), accountID, id))
		})
}

// DeleteSession implements store.Sessions.
func (db *DB) DeleteSession(ctx context.Context, accountID, id string) error {
	if err := db.delete(ctx, `DELETE FROM sessions WHERE account_id = $1 AND id = $2`, accountID, id); err != nil {
		return fmt.Errorf("postgres: delete session: %w", wrapErr(err))
	}
	return nil
}

// delete runs a DELETE and reports pgx.ErrNoRows when it removed nothing.
func (db *DB) delete(ctx context.Context, query string, args ...any) error {
	tag, err := db.pool.Exec(ctx, query, args...)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return pgx.ErrNoRows
	}
	return nil
}

// normSession applies the storage rules: {} for nil metadata, microsecond
// UTC times.
func normSession(s store.Session) store.Session {
	if s.Metadata == nil {
		s.Metadata = json.RawMessage(`{}`)
	}
	s.StartedAt = micro(s.StartedAt)
	s.EndedAt = microPtr(s.EndedAt)
	return s
}

func scanSession(row pgx.Row) (store.Session, error) {
	var (
		s    store.Session
		ext  *string
		meta string
	)
	err := row.Scan(&s.ID, &s.AccountID, &ext, &s.Title, &s.Source, &s.Model, &s.Status,
		&s.StartedAt, &s.EndedAt, &s.Tokens, &meta, &s.CreatedAt, &s.UpdatedAt)
	if err != nil {
		return store.Session{}, err
	}
	s.ExternalID = fromNull(ext)
	s.StartedAt, s.EndedAt = s.StartedAt.UTC(), utcPtr(s.EndedAt)
	s.Metadata = json.RawMessage(meta)
	s.CreatedAt, s.UpdatedAt = s.CreatedAt.UTC(), s.UpdatedAt.UTC()
	return s, nil
}
