package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/tollgate-dev/tollgate/store"
)

const leadCols = `id, account_id, name, email, phone, company, notes, status, created_at, updated_at`

// CreateLead implements store.Leads. As for sessions, an account's lead
// IDs increase in commit order (see nextID).
func (db *DB) CreateLead(ctx context.Context, l store.Lead) (store.Lead, error) {
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		id, now, err := db.nextID(ctx, tx, "leads", store.PrefixLead, l.AccountID)
		if err != nil {
			return err
		}
		l.ID = id
		l.CreatedAt, l.UpdatedAt = now, now
		_, err = tx.ExecContext(ctx, `INSERT INTO leads (`+leadCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			l.ID, l.AccountID, l.Name, l.Email, nullString(l.Phone), l.Company, l.Notes, l.Status,
			toMicro(l.CreatedAt), toMicro(l.UpdatedAt))
		return err
	})
	if err != nil {
		return store.Lead{}, fmt.Errorf("sqlite: create lead: %w", wrapErr(err))
	}
	return l, nil
}

// LeadByID implements store.Leads.
func (db *DB) LeadByID(ctx context.Context, accountID, id string) (store.Lead, error) {
	l, err := scanLead(db.r.QueryRowContext(ctx,
		`SELECT `+leadCols+` FROM leads WHERE account_id = ? AND id = ?`, accountID, id))
	if err != nil {
		return store.Lead{}, fmt.Errorf("sqlite: lead by id: %w", wrapErr(err))
	}
	return l, nil
}

// ListLeads implements store.Leads.
func (db *DB) ListLeads(ctx context.Context, accountID string, f store.LeadFilter, page store.Page) ([]store.Lead, string, error) {
	limit := page.EffectiveLimit()
	rows, err := db.r.QueryContext(ctx, `SELECT `+leadCols+` FROM leads
		WHERE account_id = ? AND id > ? AND (? = '' OR status = ?)
		ORDER BY id LIMIT ?`,
		accountID, page.After, f.Status, f.Status, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("sqlite: list leads: %w", wrapErr(err))
	}
	defer rows.Close()
	list := []store.Lead{}
	for rows.Next() {
		l, err := scanLead(rows)
		if err != nil {
			return nil, "", fmt.Errorf("sqlite: list leads: %w", wrapErr(err))
		}
		list = append(list, l)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("sqlite: list leads: %w", wrapErr(err))
	}
	list, next := store.CutPage(list, limit, func(x store.Lead) string { return x.ID })
	return list, next, nil
}

// UpdateLead implements store.Leads, as UpdateSession does.
func (db *DB) UpdateLead(ctx context.Context, accountID, id string, update func(*store.Lead) error) (store.Lead, error) {
	return modify(ctx, db, "update lead", update,
		func(tx *sql.Tx) (store.Lead, error) {
			return scanLead(tx.QueryRowContext(ctx,
				`SELECT `+leadCols+` FROM leads WHERE account_id = ? AND id = ?`, accountID, id))
		},
		func(tx *sql.Tx, l store.Lead) (store.Lead, error) {
			return scanLead(tx.QueryRowContext(ctx, `UPDATE leads SET
				name = ?, email = ?, phone = ?, company = ?, notes = ?, status = ?, updated_at = ?
				WHERE account_id = ? AND id = ? RETURNING `+leadCols,
				l.Name, l.Email, nullString(l.Phone), l.Company, l.Notes, l.Status, toMicro(db.now()),
				accountID, id))
		})
}

// DeleteLead implements store.Leads.
func (db *DB) DeleteLead(ctx context.Context, accountID, id string) error {
	if err := db.delete(ctx, `DELETE FROM leads WHERE account_id = ? AND id = ?`, accountID, id); err != nil {
		return fmt.Errorf("sqlite: delete lead: %w", wrapErr(err))
	}
	return nil
}

func scanLead(row scanner) (store.Lead, error) {
	var (
		l                store.Lead
		phone            sql.NullString
		created, updated int64
	)
	err := row.Scan(&l.ID, &l.AccountID, &l.Name, &l.Email, &phone, &l.Company, &l.Notes, &l.Status,
		&created, &updated)
	if err != nil {
		return store.Lead{}, err
	}
	l.Phone = phone.String
	l.CreatedAt = fromMicro(created)
	l.UpdatedAt = fromMicro(updated)
	return l, nil
}
