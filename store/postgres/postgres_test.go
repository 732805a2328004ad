package postgres_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/url"
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

// openWithAccount opens the database at url, closed when the test ends,
// with the account name in it, and returns the account.
func openWithAccount(t *testing.T, url, name string) (*postgres.DB, store.Account) {
	t.Helper()
	db, err := postgres.Open(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	acc, _, err := db.EnsureAccount(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	return db, acc
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
	db, acc := openWithAccount(t, testenv.Postgres(t), "acme")
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

// TestWritesUnderServerIsolationDefault: the store's statements are
// written for READ COMMITTED (a write that waited for a row lock goes on
// with the row as the other transaction committed it). An operator may set
// default_transaction_isolation to repeatable read or serializable for the
// database or role (here: in the URL, which does the same for a session);
// a write that waits for a concurrent one must still succeed, not fail
// with a serialization error (SQLSTATE 40001, a 503 to the client). Each
// case holds a row lock in another transaction, as a concurrent write
// would, starts the store call, waits until it waits for that lock,
// commits, and checks the call.
func TestWritesUnderServerIsolationDefault(t *testing.T) {
	levels := []string{"read committed", "repeatable read", "serializable"}
	cases := []struct {
		name string
		// lock is the concurrent write's statement, with $1 the account
		// and $2 the row's key.
		lock string
		call func(ctx context.Context, db *postgres.DB, acc, key string) error
		// setup makes the row and returns its key.
		setup func(t *testing.T, db *postgres.DB, clock *testenv.Clock, acc string) string
	}{
		{
			name: "idempotency takeover",
			lock: `UPDATE idempotency_keys SET lease_expires_at = lease_expires_at WHERE account_id = $1 AND key = $2`,
			setup: func(t *testing.T, db *postgres.DB, clock *testenv.Clock, acc string) string {
				c := isoClaim(acc)
				if _, claimed, err := db.ClaimIdempotencyKey(t.Context(), c); !claimed || err != nil {
					t.Fatalf("first claim: %v, %v", claimed, err)
				}
				clock.Add(c.Lease) // the holder is presumed dead
				return c.Key
			},
			call: func(ctx context.Context, db *postgres.DB, acc, key string) error {
				_, claimed, err := db.ClaimIdempotencyKey(ctx, isoClaim(acc))
				if err == nil && !claimed {
					err = errors.New("the expired claim was not taken over")
				}
				return err
			},
		},
		{
			name: "revoke a key being touched",
			lock: `UPDATE api_keys SET last_used_at = now() WHERE account_id = $1 AND id = $2`,
			setup: func(t *testing.T, db *postgres.DB, _ *testenv.Clock, acc string) string {
				k, err := db.CreateKey(t.Context(), store.APIKey{AccountID: acc, Name: "k", Start: "tg_test_abcd", Hash: sha256.Sum256([]byte(acc))})
				if err != nil {
					t.Fatal(err)
				}
				return k.ID
			},
			call: func(ctx context.Context, db *postgres.DB, acc, key string) error {
				_, err := db.RevokeKey(ctx, acc, key, time.Now())
				return err
			},
		},
	}
	for _, level := range levels {
		t.Run(level, func(t *testing.T) {
			ctx := t.Context()
			clock := testenv.NewClock(time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC))
			db, err := postgres.Open(ctx, testenv.Postgres(t)+"&default_transaction_isolation="+url.PathEscape(level),
				postgres.WithClock(clock.Now))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					acc, _, err := db.EnsureAccount(ctx, tc.name)
					if err != nil {
						t.Fatal(err)
					}
					key := tc.setup(t, db, clock, acc.ID)
					holder, err := db.Pool().Begin(ctx)
					if err != nil {
						t.Fatal(err)
					}
					defer holder.Rollback(context.Background())
					if _, err := holder.Exec(ctx, tc.lock, acc.ID, key); err != nil {
						t.Fatal(err)
					}
					done := make(chan error, 1)
					go func() { done <- tc.call(ctx, db, acc.ID, key) }()
					waitBlockedBy(t, db, holder.Conn().PgConn().PID(), done)
					if err := holder.Commit(ctx); err != nil {
						t.Fatal(err)
					}
					if err := <-done; err != nil {
						t.Errorf("with default_transaction_isolation %q, after waiting for a concurrent write: %v", level, err)
					}
				})
			}
		})
	}
}

func isoClaim(acc string) store.IdempotencyClaim {
	return store.IdempotencyClaim{AccountID: acc, Key: "k", Fingerprint: store.NewFingerprint("POST", "/v1/leads", nil),
		Lease: 10 * time.Second, Retention: time.Hour}
}

// waitBlockedBy polls until some backend waits for a lock that backend
// pid holds; the call running meanwhile must not return first.
func waitBlockedBy(t *testing.T, db *postgres.DB, pid uint32, done <-chan error) {
	t.Helper()
	for {
		var waiting int
		if err := db.Pool().QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))`,
			pid).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			return
		}
		select {
		case err := <-done:
			t.Fatalf("the call returned (%v) while another transaction held its row", err)
		case <-time.After(time.Millisecond): // polling, not a timing claim
		}
	}
}

// TestLockTimeoutIsUnavailable: with lock_timeout set (an operator's
// guard against writes queueing behind a stuck transaction), a write that
// waits longer for a lock fails with SQLSTATE 55P03. That is the database
// refusing to wait, not a bug: store.ErrUnavailable (503, retry), not an
// unclassified error (500). Each case holds, in another transaction, the
// lock the call needs until the call has returned.
func TestLockTimeoutIsUnavailable(t *testing.T) {
	ctx := t.Context()
	db, acc := openWithAccount(t, testenv.Postgres(t)+"&lock_timeout=50ms", "acme")
	s, err := db.CreateSession(ctx, store.Session{AccountID: acc.ID, Status: store.SessionActive})
	if err != nil {
		t.Fatal(err)
	}
	k, err := db.CreateKey(ctx, store.APIKey{AccountID: acc.ID, Name: "k", Start: "tg_test_abcd", Hash: sha256.Sum256([]byte("k"))})
	if err != nil {
		t.Fatal(err)
	}
	// The advisory lock nextID takes for the account's lead inserts.
	h := fnv.New64a()
	io.WriteString(h, "tollgate ids leads "+acc.ID)
	cases := []struct {
		name string
		lock string // run in the holder's transaction with args
		args []any
		call func() error
	}{
		{"update a locked session", `SELECT 1 FROM sessions WHERE id = $1 FOR UPDATE`, []any{s.ID}, func() error {
			_, err := db.UpdateSession(ctx, acc.ID, s.ID, func(s *store.Session) error { s.Title = "t"; return nil })
			return err
		}},
		{"revoke a locked key", `SELECT 1 FROM api_keys WHERE id = $1 FOR UPDATE`, []any{k.ID}, func() error {
			_, err := db.RevokeKey(ctx, acc.ID, k.ID, time.Now())
			return err
		}},
		{"create a lead while another insert holds the account's lead lock", `SELECT pg_advisory_xact_lock($1)`, []any{int64(h.Sum64())}, func() error {
			_, err := db.CreateLead(ctx, store.Lead{AccountID: acc.ID, Name: "n", Status: store.LeadNew})
			return err
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			holder, err := db.Pool().Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer holder.Rollback(context.Background())
			if _, err := holder.Exec(ctx, tc.lock, tc.args...); err != nil {
				t.Fatal(err)
			}
			if err := tc.call(); !errors.Is(err, store.ErrUnavailable) {
				t.Errorf("a write past lock_timeout: error %v, want store.ErrUnavailable", err)
			}
		})
	}
}

// TestReadOnlyIsUnavailable: a server that refuses writes (a standby
// after a failover, or default_transaction_read_only set for
// maintenance) fails them with SQLSTATE 25006. Writes cannot be served
// until it is writable again: store.ErrUnavailable (503, retry), as for
// SQLite's SQLITE_READONLY, not an unclassified error (500). Reads still
// work.
func TestReadOnlyIsUnavailable(t *testing.T) {
	ctx := t.Context()
	url := testenv.Postgres(t)
	_, acc := openWithAccount(t, url, "acme")
	db, err := postgres.Open(ctx, url+"&default_transaction_read_only=on")
	if err != nil {
		t.Fatalf("Open of a migrated database, read-only: %v", err)
	}
	defer db.Close()
	if _, err := db.AccountByID(ctx, acc.ID); err != nil {
		t.Fatalf("read: %v", err)
	}
	writes := []struct {
		name string
		call func() error
	}{
		{"CreateLead", func() error {
			_, err := db.CreateLead(ctx, store.Lead{AccountID: acc.ID, Name: "n", Status: store.LeadNew})
			return err
		}},
		{"CreateAccount", func() error { _, err := db.CreateAccount(ctx, "other"); return err }},
		{"ClaimIdempotencyKey", func() error { _, _, err := db.ClaimIdempotencyKey(ctx, isoClaim(acc.ID)); return err }},
		{"TouchKeys", func() error { return db.TouchKeys(ctx, map[string]time.Time{"key_x": time.Now()}) }},
	}
	for _, w := range writes {
		t.Run(w.name, func(t *testing.T) {
			if err := w.call(); !errors.Is(err, store.ErrUnavailable) {
				t.Errorf("write to a read-only server: error %v, want store.ErrUnavailable", err)
			}
		})
	}
}
