package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/tollgate-dev/tollgate/store"
)

// CreateAccount implements store.Accounts.
func (db *DB) CreateAccount(ctx context.Context, name string) (store.Account, error) {
	now := db.now()
	a := store.Account{ID: store.NewID(store.PrefixAccount, now), Name: name, CreatedAt: now}
	_, err := db.pool.Exec(ctx, `INSERT INTO accounts (id, name, created_at) VALUES ($1, $2, $3)`,
		a.ID, a.Name, a.CreatedAt)
	if err != nil {
		return store.Account{}, fmt.Errorf("postgres: create account: %w", wrapErr(err))
	}
	return a, nil
}

// AccountByID implements store.Accounts.
func (db *DB) AccountByID(ctx context.Context, id string) (store.Account, error) {
	a, err := scanAccount(db.pool.QueryRow(ctx, `SELECT id, name, created_at FROM accounts WHERE id = $1`, id))
	if err != nil {
		return store.Account{}, fmt.Errorf("postgres: account by id: %w", wrapErr(err))
	}
	return a, nil
}

// AccountByName implements store.Accounts.
func (db *DB) AccountByName(ctx context.Context, name string) (store.Account, error) {
	a, err := scanAccount(db.pool.QueryRow(ctx, `SELECT id, name, created_at FROM accounts WHERE name = $1`, name))
	if err != nil {
		return store.Account{}, fmt.Errorf("postgres: account by name: %w", wrapErr(err))
	}
	return a, nil
}

// EnsureAccount implements store.Accounts. It inserts with ON CONFLICT DO
// NOTHING, so concurrent callers never see a unique violation.
func (db *DB) EnsureAccount(ctx context.Context, name string) (store.Account, bool, error) {
	now := db.now()
	a, err := scanAccount(db.pool.QueryRow(ctx, `INSERT INTO accounts (id, name, created_at) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO NOTHING RETURNING id, name, created_at`,
		store.NewID(store.PrefixAccount, now), name, now))
	if err == nil {
		return a, true, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return store.Account{}, false, fmt.Errorf("postgres: ensure account: %w", wrapErr(err))
	}
	a, err = scanAccount(db.pool.QueryRow(ctx, `SELECT id, name, created_at FROM accounts WHERE name = $1`, name))
	if err != nil {
		return store.Account{}, false, fmt.Errorf("postgres: ensure account: %w", wrapErr(err))
	}
	return a, false, nil
}

func scanAccount(row pgx.Row) (store.Account, error) {
	var a store.Account
	if err := row.Scan(&a.ID, &a.Name, &a.CreatedAt); err != nil {
		return store.Account{}, err
	}
	a.CreatedAt = a.CreatedAt.UTC()
	return a, nil
}
