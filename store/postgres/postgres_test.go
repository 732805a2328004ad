package postgres_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
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

// TestTouchKeysLocksInIDOrder: TouchKeys must lock the rows it updates in
// one order (by ID) whatever the order of its map, or two instances
// flushing the same keys at once can deadlock (each holding a key the
// other waits for; PostgreSQL then aborts one after deadlock_timeout).
// Another transaction holds the smallest of the keys, as a concurrent
// TouchKeys that got there first would; TouchKeys waits for it, and must
// hold none of the others while it waits. The table holds enough keys that
// the planner looks them up one by one in the order given, as it does in
// production, rather than scanning the whole table.
func TestTouchKeysLocksInIDOrder(t *testing.T) {
	ctx := t.Context()
	db, err := postgres.Open(ctx, testenv.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	acc, _, err := db.EnsureAccount(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	filler, _, err := db.EnsureAccount(ctx, "filler")
	if err != nil {
		t.Fatal(err)
	}
	pool := db.Pool()
	if _, err := pool.Exec(ctx, `INSERT INTO api_keys (id, account_id, name, start, hash, scopes, rate_plan, created_at)
		SELECT 'key_' || lpad(i::text, 26, '0'), $1, 'filler', 'tg_test_xxxx', sha256(i::text::bytea), '{}', '', now()
		FROM generate_series(1, 5000) AS i`, filler.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `ANALYZE api_keys`); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 8 {
		k, err := db.CreateKey(ctx, store.APIKey{AccountID: acc.ID, Name: "k", Start: "tg_test_abcd", Hash: sha256.Sum256(fmt.Append(nil, "key", i))})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, k.ID) // increasing
	}
	for round := range 5 {
		used := map[string]time.Time{}
		for _, id := range ids {
			used[id] = time.Now()
		}
		holder, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := holder.Exec(ctx, `SELECT 1 FROM api_keys WHERE id = $1 FOR UPDATE`, ids[0]); err != nil {
			t.Fatal(err)
		}
		touched := make(chan error, 1)
		go func() { touched <- db.TouchKeys(ctx, used) }()
		// Wait (polling a condition) until TouchKeys waits for the holder.
		holderPID := holder.Conn().PgConn().PID()
		for waiting := 0; waiting == 0; {
			if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))`,
				holderPID).Scan(&waiting); err != nil {
				t.Fatal(err)
			}
			if waiting == 0 {
				select {
				case err := <-touched:
					t.Fatalf("round %d: TouchKeys returned (%v) while another transaction held one of its keys", round, err)
				case <-time.After(time.Millisecond): // polling, not a timing claim
				}
			}
		}
		// The keys after the first must be free: NOWAIT fails at once if
		// TouchKeys took one of them before it waited for the first.
		_, lockErr := holder.Exec(ctx, `SELECT 1 FROM api_keys WHERE id = ANY($1) FOR UPDATE NOWAIT`, ids[1:])
		if err := holder.Rollback(ctx); err != nil && lockErr == nil {
			t.Fatal(err)
		}
		if err := <-touched; err != nil {
			t.Fatalf("round %d: TouchKeys: %v", round, err)
		}
		if lockErr != nil {
			t.Fatalf("round %d: while TouchKeys waited for key %s it held others (%v): it locks keys out of ID order, so two concurrent calls can deadlock", round, ids[0], lockErr)
		}
	}
}
