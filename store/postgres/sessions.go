package postgres

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/tollgate-dev/tollgate/store"
)

const sessionCols = `id, account_id, external_id, title, source, model, status, started_at, ended_at, tokens, metadata::text, created_at, updated_at`

// CreateSession implements store.Sessions.
func (db *DB) CreateSession(ctx context.Context, s store.Session) (store.Session, error) {
	now := db.now()
	s.ID = store.NewID(store.PrefixSession, now)
	s.CreatedAt, s.UpdatedAt = now, now
	s = normSession(s)
	_, err := db.pool.Exec(ctx, `INSERT INTO sessions (id, account_id, external_id, title, source, model, status,
		started_at, ended_at, tokens, metadata, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::text::json, $12, $13)`,
		s.ID, s.AccountID, nullString(s.ExternalID), s.Title, s.Source, s.Model, s.Status,
		s.StartedAt, s.EndedAt, s.Tokens, string(s.Metadata), s.CreatedAt, s.UpdatedAt)
	if err != nil {
		return store.Session{}, fmt.Errorf("postgres: create session: %w", wrapErr(err))
	}
	return s, nil
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
	var next string
	if len(list) > limit {
		list = list[:limit]
		next = list[limit-1].ID
	}
	return list, next, nil
}

// UpdateSession implements store.Sessions.
func (db *DB) UpdateSession(ctx context.Context, s store.Session) (store.Session, error) {
	s = normSession(s)
	out, err := scanSession(db.pool.QueryRow(ctx, `UPDATE sessions SET
		external_id = $1, title = $2, source = $3, model = $4, status = $5, started_at = $6, ended_at = $7,
		tokens = $8, metadata = $9::text::json, updated_at = $10
		WHERE account_id = $11 AND id = $12 RETURNING `+sessionCols,
		nullString(s.ExternalID), s.Title, s.Source, s.Model, s.Status, s.StartedAt, s.EndedAt,
		s.Tokens, string(s.Metadata), db.now(), s.AccountID, s.ID))
	if err != nil {
		return store.Session{}, fmt.Errorf("postgres: update session: %w", wrapErr(err))
	}
	return out, nil
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
