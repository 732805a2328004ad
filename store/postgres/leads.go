package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/tollgate-dev/tollgate/store"
)

const leadCols = `id, account_id, name, email, phone, company, notes, status, created_at, updated_at`

// CreateLead implements store.Leads. As for sessions, an account's lead
// IDs increase in commit order (see nextID).
func (db *DB) CreateLead(ctx context.Context, l store.Lead) (store.Lead, error) {
	err := db.inIDTx(ctx, func(tx pgx.Tx) error {
		id, now, err := db.nextID(ctx, tx, "leads", store.PrefixLead, l.AccountID)
		if err != nil {
			return err
		}
		l.ID = id
		l.CreatedAt, l.UpdatedAt = now, now
		_, err = tx.Exec(ctx, `INSERT INTO leads (`+leadCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			l.ID, l.AccountID, l.Name, l.Email, nullString(l.Phone), l.Company, l.Notes, l.Status,
			l.CreatedAt, l.UpdatedAt)
		return err
	})
	if err != nil {
		return store.Lead{}, fmt.Errorf("postgres: create lead: %w", wrapErr(err))
	}
	return l, nil
}

// LeadByID implements store.Leads.
func (db *DB) LeadByID(ctx context.Context, accountID, id string) (store.Lead, error) {
	l, err := scanLead(db.pool.QueryRow(ctx,
		`SELECT `+leadCols+` FROM leads WHERE account_id = $1 AND id = $2`, accountID, id))
	if err != nil {
		return store.Lead{}, fmt.Errorf("postgres: lead by id: %w", wrapErr(err))
	}
	return l, nil
}

// ListLeads implements store.Leads.
func (db *DB) ListLeads(ctx context.Context, accountID string, f store.LeadFilter, page store.Page) ([]store.Lead, string, error) {
	limit := page.EffectiveLimit()
	rows, err := db.pool.Query(ctx, `SELECT `+leadCols+` FROM leads
		WHERE account_id = $1 AND id > $2 AND ($3 = '' OR status = $3)
		ORDER BY id LIMIT $4`,
		accountID, page.After, f.Status, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("postgres: list leads: %w", wrapErr(err))
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Lead, error) { return scanLead(r) })
	if err != nil {
		return nil, "", fmt.Errorf("postgres: list leads: %w", wrapErr(err))
	}
	list, next := store.CutPage(list, limit, func(x store.Lead) string { return x.ID })
	return list, next, nil
}

// UpdateLead implements store.Leads (see modify).
func (db *DB) UpdateLead(ctx context.Context, accountID, id string, update func(*store.Lead) error) (store.Lead, error) {
	return modify(ctx, db, "update lead", update,
		func(tx pgx.Tx) (store.Lead, error) {
			return scanLead(tx.QueryRow(ctx,
				`SELECT `+leadCols+` FROM leads WHERE account_id = $1 AND id = $2 FOR UPDATE`, accountID, id))
		},
		func(tx pgx.Tx, l store.Lead) (store.Lead, error) {
			return scanLead(tx.QueryRow(ctx, `UPDATE leads SET
				name = $1, email = $2, phone = $3, company = $4, notes = $5, status = $6, updated_at = $7
				WHERE account_id = $8 AND id = $9 RETURNING `+leadCols,
				l.Name, l.Email, nullString(l.Phone), l.Company, l.Notes, l.Status, db.now(), accountID, id))
		})
}

// DeleteLead implements store.Leads.
func (db *DB) DeleteLead(ctx context.Context, accountID, id string) error {
	if err := db.delete(ctx, `DELETE FROM leads WHERE account_id = $1 AND id = $2`, accountID, id); err != nil {
		return fmt.Errorf("postgres: delete lead: %w", wrapErr(err))
	}
	return nil
}

func scanLead(row pgx.Row) (store.Lead, error) {
	var (
		l     store.Lead
		phone *string
	)
	err := row.Scan(&l.ID, &l.AccountID, &l.Name, &l.Email, &phone, &l.Company, &l.Notes, &l.Status,
		&l.CreatedAt, &l.UpdatedAt)
	if err != nil {
		return store.Lead{}, err
	}
	l.Phone = fromNull(phone)
	l.CreatedAt, l.UpdatedAt = l.CreatedAt.UTC(), l.UpdatedAt.UTC()
	return l, nil
}
