package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/tollgate-dev/tollgate/store"
)

const sessionCols = `id, account_id, external_id, title, source, model, status, started_at, ended_at, tokens, metadata, created_at, updated_at`

// CreateSession implements store.Sessions. The ID and times are taken
// inside the write transaction (see nextID), so an account's session IDs
// increase in commit order.
func (db *DB) CreateSession(ctx context.Context, s store.Session) (store.Session, error) {
	s = normSession(s)
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		id, now, err := db.nextID(ctx, tx, "sessions", store.PrefixSession, s.AccountID)
		if err != nil {
			return err
		}
		s.ID = id
		s.CreatedAt, s.UpdatedAt = now, now
		_, err = tx.ExecContext(ctx, `INSERT INTO sessions (`+sessionCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			s.ID, s.AccountID, nullString(s.ExternalID), s.Title, s.Source, s.Model, s.Status,
			toMicro(s.StartedAt), toNullMicro(s.EndedAt), s.Tokens, string(s.Metadata),
			toMicro(s.CreatedAt), toMicro(s.UpdatedAt))
		return err
	})
	if err != nil {
		return store.Session{}, fmt.Errorf("sqlite: create session: %w", wrapErr(err))
	}
	return s, nil
}

// nextID returns the ID for a new row of accountID in table (sessions,
// leads or api_keys), which must sort after every ID the account already
// has there: lists page by ID, so a row committed with an ID below one a
// reader was already handed as a cursor would never be listed to that
// reader. tx is a
// write transaction: BEGIN IMMEDIATE holds the database's write lock from
// before the read here to commit, so no other insert (from this process or
// another) can commit between the read and ours, and IDs increase in
// commit order. The (account_id, id) index makes the read one seek.
// It also returns the clock's reading, taken under the lock, for CreatedAt.
func (db *DB) nextID(ctx context.Context, tx *sql.Tx, table, prefix, accountID string) (string, time.Time, error) {
	var prev string
	err := tx.QueryRowContext(ctx, `SELECT coalesce((SELECT id FROM `+table+
		` WHERE account_id = ? ORDER BY id DESC LIMIT 1), '')`, accountID).Scan(&prev)
	if err != nil {
		return "", time.Time{}, err
	}
	now := db.now()
	id, err := store.NextID(prefix, now, prev)
	return id, now, err
}

// SessionByID implements store.Sessions.
func (db *DB) SessionByID(ctx context.Context, accountID, id string) (store.Session, error) {
	s, err := scanSession(db.r.QueryRowContext(ctx,
		`SELECT `+sessionCols+` FROM sessions WHERE account_id = ? AND id = ?`, accountID, id))
	if err != nil {
		return store.Session{}, fmt.Errorf("sqlite: session by id: %w", wrapErr(err))
	}
	return s, nil
}

// ListSessions implements store.Sessions.
func (db *DB) ListSessions(ctx context.Context, accountID string, f store.SessionFilter, page store.Page) ([]store.Session, string, error) {
	limit := page.EffectiveLimit()
	rows, err := db.r.QueryContext(ctx, `SELECT `+sessionCols+` FROM sessions
		WHERE account_id = ? AND id > ? AND (? = '' OR status = ?) AND (? = '' OR source = ?)
		ORDER BY id LIMIT ?`,
		accountID, page.After, f.Status, f.Status, f.Source, f.Source, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("sqlite: list sessions: %w", wrapErr(err))
	}
	defer rows.Close()
	list := []store.Session{}
	for rows.Next() {
		s, err := scanSession(rows)
		if err != nil {
			return nil, "", fmt.Errorf("sqlite: list sessions: %w", wrapErr(err))
		}
		list = append(list, s)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("sqlite: list sessions: %w", wrapErr(err))
	}
	list, next := store.CutPage(list, limit, func(x store.Session) string { return x.ID })
	return list, next, nil
}

// UpdateSession implements store.Sessions. The session is read on the
// writer's connection, inside the write transaction (see modify), not on
// a reader: a reader could see it as it was before a write still to come.
func (db *DB) UpdateSession(ctx context.Context, accountID, id string, update func(*store.Session) error) (store.Session, error) {
	return modify(ctx, db, "update session", update,
		func(tx *sql.Tx) (store.Session, error) {
			return scanSession(tx.QueryRowContext(ctx,
				`SELECT `+sessionCols+` FROM sessions WHERE account_id = ? AND id = ?`, accountID, id))
		},
		func(tx *sql.Tx, s store.Session) (store.Session, error) {
			s = normSession(s)
			return scanSession(tx.QueryRowContext(ctx, `UPDATE sessions SET
				external_id = ?, title = ?, source = ?, model = ?, status = ?, started_at = ?, ended_at = ?,
				tokens = ?, metadata = ?, updated_at = ?
				WHERE account_id = ? AND id = ? RETURNING `+sessionCols,
				nullString(s.ExternalID), s.Title, s.Source, s.Model, s.Status, toMicro(s.StartedAt), toNullMicro(s.EndedAt),
				s.Tokens, string(s.Metadata), toMicro(db.now()), accountID, id))
		})
}

// DeleteSession implements store.Sessions.
func (db *DB) DeleteSession(ctx context.Context, accountID, id string) error {
	if err := db.delete(ctx, `DELETE FROM sessions WHERE account_id = ? AND id = ?`, accountID, id); err != nil {
		return fmt.Errorf("sqlite: delete session: %w", wrapErr(err))
	}
	return nil
}

// delete runs a DELETE and reports sql.ErrNoRows when it removed nothing.
func (db *DB) delete(ctx context.Context, query string, args ...any) error {
	res, err := db.w.ExecContext(ctx, query, args...)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return sql.ErrNoRows
	}
	return nil
}

// normSession applies the storage rules: {} for nil metadata, microsecond
// UTC times.
func normSession(s store.Session) store.Session {
	if s.Metadata == nil {
		s.Metadata = json.RawMessage(`{}`)
	}
	s.StartedAt = s.StartedAt.UTC().Truncate(time.Microsecond)
	s.EndedAt = truncPtr(s.EndedAt)
	return s
}

func scanSession(row scanner) (store.Session, error) {
	var (
		s                         store.Session
		ext                       sql.NullString
		started, created, updated int64
		ended                     sql.NullInt64
		meta                      string
	)
	err := row.Scan(&s.ID, &s.AccountID, &ext, &s.Title, &s.Source, &s.Model, &s.Status,
		&started, &ended, &s.Tokens, &meta, &created, &updated)
	if err != nil {
		return store.Session{}, err
	}
	s.ExternalID = ext.String
	s.StartedAt = fromMicro(started)
	s.EndedAt = fromNullMicro(ended)
	s.Metadata = json.RawMessage(meta)
	s.CreatedAt = fromMicro(created)
	s.UpdatedAt = fromMicro(updated)
	return s, nil
}
