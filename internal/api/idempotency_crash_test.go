package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate-dev/tollgate/apierror"
	"github.com/tollgate-dev/tollgate/internal/api"
	"github.com/tollgate-dev/tollgate/internal/testenv"
	"github.com/tollgate-dev/tollgate/store"
	"github.com/tollgate-dev/tollgate/store/sqlite"
)

// The crash tests run the real binary with a short lease, so that a key
// orphaned by a killed server is taken over within seconds.
const (
	crashLease    = 500 * time.Millisecond
	crashRuns     = 20
	crashParallel = 5
	// crashPatience bounds every wait for a child or the database.
	crashPatience = 20 * time.Second
)

// TestIdempotencyCrash kills tollgate servers that hold idempotency keys,
// on PostgreSQL and on SQLite, and checks that every key works again once
// its lease ended, with exactly one lead created.
// leaseFlags give the child servers the short crash-test lease.
var leaseFlags = []string{"--idempotency-lease", crashLease.String()}

func TestIdempotencyCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills servers: skipped with -short")
	}
	bin := buildTollgate(t, t.TempDir())
	t.Run("postgres", func(t *testing.T) { testIdempotencyCrashPostgres(t, bin) })
	t.Run("sqlite", func(t *testing.T) { testIdempotencyCrashSQLite(t, bin) })
}

// testIdempotencyCrashPostgres kills a server between the claim of a key
// and the creation of its lead, crashRuns times: a server A claims the
// key, its INSERT is held on a row lock the test owns (a lead with the
// same phone, uncommitted), A is SIGKILLed and its database sessions
// terminated (as when its machine dies), and the lock released. The
// survivor B answers 409 IDEMPOTENCY_KEY_IN_USE while A's lease lasts,
// then takes the key over: 201, then replays, and exactly one lead.
func testIdempotencyCrashPostgres(t *testing.T, bin string) {
	url := testenv.Postgres(t)
	b := startTollgate(t, bin, url+"&application_name=idem_b", leaseFlags...)
	admin := b.awaitKey(t)
	b.awaitReady(t)
	conn := pgConnect(t, url)
	var accountID string
	if err := conn.QueryRow(t.Context(), `SELECT id FROM accounts WHERE name = 'default'`).Scan(&accountID); err != nil {
		t.Fatal(err)
	}

	sem := make(chan struct{}, crashParallel)
	t.Run("runs", func(t *testing.T) {
		for run := range crashRuns {
			t.Run(fmt.Sprint(run), func(t *testing.T) {
				t.Parallel()
				sem <- struct{}{}
				defer func() { <-sem }()
				crashPostgresRun(t, bin, url, admin, accountID, b, run)
			})
		}
	})
}

func crashPostgresRun(t *testing.T, bin, url, admin, accountID string, b *child, run int) {
	ctx := t.Context()
	app := fmt.Sprintf("idem_a_%d_%d", run, time.Now().UnixNano())
	key := fmt.Sprintf("crash-pg-%d-%d", run, time.Now().UnixNano())
	phone := fmt.Sprintf("+1666%07d", run)
	body := fmt.Sprintf(`{"name":"Crash %d","phone":"%s"}`, run, phone)

	// The lock: an uncommitted lead with the phone A will insert. The
	// observations go through another connection: inside a transaction,
	// pg_stat_activity would show one snapshot.
	conn := pgConnect(t, url)
	tx, err := pgConnect(t, url).Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	_, err = tx.Exec(ctx, `INSERT INTO leads (id, account_id, name, email, phone, company, notes, status, created_at, updated_at)
		VALUES ($1, $2, 'blocker', '', $3, '', '', 'new', now(), now())`, fmt.Sprintf("lead_blocker_%d", run), accountID, phone)
	if err != nil {
		t.Fatal(err)
	}

	a := startTollgate(t, bin, url+"&application_name="+app, leaseFlags...)
	a.awaitReady(t)
	sent := make(chan struct{})
	go func() { defer close(sent); _ = idemPost(a.base, admin, key, body) }() // dies with A
	defer func() { <-sent }()

	// A claimed the key and its handler waits on the lock.
	poll(t, "A's claim and its INSERT waiting on the lock", func() bool {
		var claims, waiting int
		err := conn.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM idempotency_keys WHERE key = $1 AND state = 'in_flight'),
			(SELECT count(*) FROM pg_stat_activity WHERE application_name = $2 AND wait_event_type = 'Lock')`,
			key, app).Scan(&claims, &waiting)
		if err != nil {
			t.Fatal(err)
		}
		return claims == 1 && waiting == 1
	})
	a.kill()
	if _, err := conn.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`, app); err != nil {
		t.Fatal(err)
	}
	poll(t, "A's sessions to end", func() bool {
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 0
	})
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	var leftMicros int64
	asked := time.Now() // the lease lasts at least leftMicros after this
	if err := conn.QueryRow(ctx, `SELECT (extract(epoch FROM lease_expires_at - now()) * 1e6)::bigint
		FROM idempotency_keys WHERE key = $1`, key).Scan(&leftMicros); err != nil {
		t.Fatalf("the claim A left: %v", err)
	}
	leaseEnds := asked.Add(time.Duration(leftMicros) * time.Microsecond)
	countLeads := func() int {
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM leads WHERE phone = $1`, phone).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := countLeads(); n != 0 {
		t.Fatalf("leads with the phone after the crash = %d, want 0 (the crash came before the insert)", n)
	}
	takeOver(t, b.base, admin, key, body, leaseEnds)
	if n := countLeads(); n != 1 {
		t.Errorf("leads with the phone = %d, want exactly 1", n)
	}
}

// testIdempotencyCrashSQLite leaves in-flight claims in the SQLite file
// exactly as a server killed after claiming them would (the claim is made
// by the store itself, with the fingerprint the middleware computes), on
// a server SIGKILLed meanwhile; the restarted server answers 409 while
// the lease lasts, then takes each key over: 201, replays, one lead.
// crashRuns keys in all, over crashRuns/crashParallel restarts.
func testIdempotencyCrashSQLite(t *testing.T, bin string) {
	db := filepath.Join(t.TempDir(), "crash.db")
	srv := startTollgate(t, bin, db, leaseFlags...)
	admin := srv.awaitKey(t)
	srv.awaitReady(t)
	for restart := range crashRuns / crashParallel {
		srv.kill()
		type seeded struct {
			key, body, phone string
			leaseEnds        time.Time // the claim's lease, on this process's clock
		}
		seeds := make([]seeded, crashParallel)
		st, err := sqlite.Open(t.Context(), db)
		if err != nil {
			t.Fatal(err)
		}
		acc, err := st.AccountByName(t.Context(), "default")
		if err != nil {
			t.Fatal(err)
		}
		for i := range seeds {
			n := restart*crashParallel + i
			s := seeded{key: fmt.Sprintf("crash-sqlite-%d", n), phone: fmt.Sprintf("+1777%07d", n)}
			s.body = fmt.Sprintf(`{"name":"Crash %d","phone":"%s"}`, n, s.phone)
			rec, claimed, err := st.ClaimIdempotencyKey(t.Context(), store.IdempotencyClaim{
				AccountID: acc.ID, Key: s.key, Fingerprint: store.NewFingerprint("POST", "/v1/leads", []byte(s.body)),
				Lease: crashLease, Retention: time.Hour,
			})
			if err != nil || !claimed {
				t.Fatalf("seed claim %s: claimed %v, %v", s.key, claimed, err)
			}
			s.leaseEnds = rec.LeaseExpiresAt
			seeds[i] = s
		}
		st.Close()
		srv = startTollgate(t, bin, db, leaseFlags...)
		srv.awaitReady(t)
		// Every orphaned key is still held: 409 for each at once, before
		// the parallel takeovers below wait for the lease.
		for _, s := range seeds {
			a := idemPost(srv.base, admin, s.key, s.body)
			if left := time.Until(s.leaseEnds); left > 0 && (a.status != 409 || a.code != apierror.IdempotencyKeyInUse) {
				t.Errorf("%s answered with %v of lease left: %d %s %s, want 409 IDEMPOTENCY_KEY_IN_USE", s.key, left, a.status, a.code, a.body)
			}
		}
		t.Run(fmt.Sprintf("restart %d", restart), func(t *testing.T) {
			for _, s := range seeds {
				t.Run(s.key, func(t *testing.T) {
					t.Parallel()
					takeOver(t, srv.base, admin, s.key, s.body, s.leaseEnds)
					leads, err := listLeadsByPhone(srv.base, admin, s.phone)
					if err != nil || leads != 1 {
						t.Errorf("leads with the phone = %d (%v), want exactly 1", leads, err)
					}
				})
			}
		})
	}
}

// takeOver retries key on base until the orphaned claim's lease ends: 409
// IDEMPOTENCY_KEY_IN_USE until then (the first answer must be one if the
// lease, ending at leaseEnds, still runs when it arrives), then 201, then
// identical replays.
func takeOver(t *testing.T, base, admin, key, body string, leaseEnds time.Time) {
	t.Helper()
	first := idemPost(base, admin, key, body)
	if first.err != nil {
		t.Fatal(first.err)
	}
	// The server answered before now: if the lease was still running now,
	// it was when the server judged the key.
	if left := time.Until(leaseEnds); left > 0 && (first.status != 409 || first.code != apierror.IdempotencyKeyInUse) {
		t.Errorf("first retry answered with %v of lease left: %d %s %s, want 409 IDEMPOTENCY_KEY_IN_USE", left, first.status, first.code, first.body)
	}
	a := first
	deadline := time.Now().Add(crashLease + crashPatience)
	for a.status == 409 && a.code == apierror.IdempotencyKeyInUse {
		if a.retryAfter != "1" {
			t.Errorf("409 IDEMPOTENCY_KEY_IN_USE with Retry-After %q, want 1", a.retryAfter)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still in use %v after the crash", key, crashLease+crashPatience)
		}
		time.Sleep(crashLease / 10) // polling interval, not a timing claim
		if a = idemPost(base, admin, key, body); a.err != nil {
			t.Fatal(a.err)
		}
	}
	if a.status != 201 || a.replayed != "" {
		t.Fatalf("after the lease: %d replayed %q %s, want a new 201", a.status, a.replayed, a.body)
	}
	again := idemPost(base, admin, key, body)
	if again.status != 201 || again.replayed != "true" || !bytes.Equal(again.body, a.body) {
		t.Errorf("retry after the takeover: %d replayed %q %s, want a replay of %s", again.status, again.replayed, again.body, a.body)
	}
}

// crashAnswer is one answer of a child server.
type crashAnswer struct {
	status     int
	code       apierror.Code
	replayed   string
	retryAfter string
	body       []byte
	err        error
}

var crashClient = &http.Client{Timeout: crashPatience}

func idemPost(base, admin, key, body string) crashAnswer {
	req, _ := http.NewRequest("POST", base+"/v1/leads", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+admin)
	req.Header.Set("Idempotency-Key", key)
	resp, err := crashClient.Do(req)
	if err != nil {
		return crashAnswer{err: err}
	}
	defer resp.Body.Close()
	a := crashAnswer{status: resp.StatusCode, replayed: resp.Header.Get("Idempotent-Replayed"), retryAfter: resp.Header.Get("Retry-After")}
	if a.body, a.err = io.ReadAll(resp.Body); a.err == nil && resp.StatusCode >= 400 {
		resp.Body = io.NopCloser(bytes.NewReader(a.body))
		a.code = apierror.Decode(resp).Code
	}
	return a
}

// listLeadsByPhone counts the account's leads with phone, through the API.
func listLeadsByPhone(base, admin, phone string) (int, error) {
	n, after := 0, ""
	for {
		req, _ := http.NewRequest("GET", base+"/v1/leads?limit=100"+after, nil)
		req.Header.Set("Authorization", "Bearer "+admin)
		resp, err := crashClient.Do(req)
		if err != nil {
			return 0, err
		}
		var page struct {
			Data       []api.Lead `json:"data"`
			NextCursor *string    `json:"next_cursor"`
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			return 0, fmt.Errorf("list leads: %d %v", resp.StatusCode, err)
		}
		for _, l := range page.Data {
			if l.Phone == phone {
				n++
			}
		}
		if page.NextCursor == nil {
			return n, nil
		}
		after = "&after=" + *page.NextCursor
	}
}

// poll calls ok until it reports true, for at most crashPatience.
func poll(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(crashPatience)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", crashPatience, what)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not a timing claim
	}
}

func pgConnect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}
