package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/tollgate-dev/tollgate/internal/testenv"
	"github.com/tollgate-dev/tollgate/store"
	"github.com/tollgate-dev/tollgate/store/postgres"
	"github.com/tollgate-dev/tollgate/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Harness{
		Open: func(t *testing.T, now func() time.Time) store.Store {
			url := testenv.Postgres(t)
			db, err := postgres.Open(t.Context(), url, postgres.WithClock(now))
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			t.Cleanup(func() { db.Close() })
			return db
		},
		Dump: func(t *testing.T, s store.Store) []byte {
			return dump(t, s.(*postgres.DB))
		},
	})
}

// dump returns every row of every table in the store's schema, as JSON.
func dump(t *testing.T, db *postgres.DB) []byte {
	t.Helper()
	ctx := t.Context()
	pool := db.Pool()
	rows, err := pool.Query(ctx, `SELECT table_name FROM information_schema.tables
		WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name`)
	if err != nil {
		t.Fatalf("list tables: %v", err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("list tables: %v", err)
	}
	if len(tables) < 4 {
		t.Fatalf("found tables %q, want at least accounts, api_keys, sessions, leads", tables)
	}
	var raw []byte
	for _, table := range tables {
		var rowsJSON string
		err := pool.QueryRow(ctx, `SELECT coalesce(json_agg(row_to_json(t))::text, '[]') FROM `+
			pgx.Identifier{table}.Sanitize()+` t`).Scan(&rowsJSON)
		if err != nil {
			t.Fatalf("dump %s: %v", table, err)
		}
		raw = append(raw, table+": "+rowsJSON+"\n"...)
	}
	return raw
}

func TestOpenUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Port 1 on loopback: connection refused.
	_, err := postgres.Open(ctx, "postgres://postgres@127.0.0.1:1/test?sslmode=disable&connect_timeout=2")
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Open(unreachable) error = %v, want ErrUnavailable", err)
	}
}

func TestMigrateTwice(t *testing.T) {
	url := testenv.Postgres(t)
	for i := range 2 {
		db, err := postgres.Open(t.Context(), url)
		if err != nil {
			t.Fatalf("Open #%d: %v", i+1, err)
		}
		if _, _, err := db.EnsureAccount(t.Context(), "default"); err != nil {
			t.Fatalf("EnsureAccount #%d: %v", i+1, err)
		}
		db.Close()
	}
}
