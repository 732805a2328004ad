package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/tollgate-dev/tollgate/store"
)

// CreateAccount implements store.Accounts.
func (db *DB) CreateAccount(ctx context.Context, name string) (store.Account, error) {
	now := db.now()
	a := store.Account{ID: store.NewID(store.PrefixAccount, now), Name: name, CreatedAt: now}
	_, err := db.w.ExecContext(ctx, `INSERT INTO accounts (id, name, created_at) VALUES (?, ?, ?)`,
		a.ID, a.Name, toMicro(a.CreatedAt))
	if err != nil {
		return store.Account{}, fmt.Errorf("sqlite: create account: %w", wrapErr(err))
	}
	return a, nil
}

// AccountByID implements store.Accounts.
func (db *DB) AccountByID(ctx context.Context, id string) (store.Account, error) {
	a, err := scanAccount(db.r.QueryRowContext(ctx, `SELECT id, name, created_at FROM accounts WHERE id = ?`, id))
	if err != nil {
		return store.Account{}, fmt.Errorf("sqlite: account by id: %w", wrapErr(err))
	}
	return a, nil
}

// AccountByName implements store.Accounts.
func (db *DB) AccountByName(ctx context.Context, name string) (store.Account, error) {
	a, err := scanAccount(db.r.QueryRowContext(ctx, `SELECT id, name, created_at FROM accounts WHERE name = ?`, name))
	if err != nil {
		return store.Account{}, fmt.Errorf("sqlite: account by name: %w", wrapErr(err))
	}
	return a, nil
}

// EnsureAccount implements store.Accounts.
func (db *DB) EnsureAccount(ctx context.Context, name string) (store.Account, bool, error) {
	var (
		a       store.Account
		created bool
	)
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		a, err = scanAccount(tx.QueryRowContext(ctx, `SELECT id, name, created_at FROM accounts WHERE name = ?`, name))
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		now := db.now()
		a = store.Account{ID: store.NewID(store.PrefixAccount, now), Name: name, CreatedAt: now}
		created = true
		_, err = tx.ExecContext(ctx, `INSERT INTO accounts (id, name, created_at) VALUES (?, ?, ?)`,
			a.ID, a.Name, toMicro(a.CreatedAt))
		return err
	})
	if err != nil {
		return store.Account{}, false, fmt.Errorf("sqlite: ensure account: %w", wrapErr(err))
	}
	return a, created, nil
}

func scanAccount(row scanner) (store.Account, error) {
	var (
		a  store.Account
		at int64
	)
	if err := row.Scan(&a.ID, &a.Name, &at); err != nil {
		return store.Account{}, err
	}
	a.CreatedAt = fromMicro(at)
	return a, nil
}
