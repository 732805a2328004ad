package sqlite_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/store"
	"github.com/tollgate-dev/tollgate/store/sqlite"
	"github.com/tollgate-dev/tollgate/store/storetest"
)

func open(t *testing.T, now func() time.Time) store.Store {
	t.Helper()
	db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "test.db"), sqlite.WithClock(now))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// dump returns the database file and its WAL, as they are on disk.
func dump(t *testing.T, s store.Store) []byte {
	t.Helper()
	path := s.(*sqlite.DB).Path()
	var raw []byte
	for _, name := range []string{path, path + "-wal"} {
		b, err := os.ReadFile(name)
		if err != nil && !os.IsNotExist(err) {
			t.Fatalf("read %s: %v", name, err)
		}
		raw = append(raw, b...)
	}
	return raw
}

func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Harness{Open: open, Dump: dump})
}

func TestPragmas(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.db")
	db, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got := sqlite.Pragmas(t, db)
	want := map[string]string{
		"journal_mode": "wal",
		"synchronous":  "2", // FULL
		"foreign_keys": "1",
		"busy_timeout": "5000",
	}
	for k, v := range want {
		if got["w."+k] != v {
			t.Errorf("writer PRAGMA %s = %q, want %q", k, got["w."+k], v)
		}
		if got["r."+k] != v {
			t.Errorf("reader PRAGMA %s = %q, want %q", k, got["r."+k], v)
		}
	}
	if got["r.query_only"] != "1" {
		t.Errorf("reader PRAGMA query_only = %q, want 1", got["r.query_only"])
	}
}

func TestOpenRejects(t *testing.T) {
	for _, path := range []string{"", ":memory:", "file:x.db", "x.db?mode=ro"} {
		if db, err := sqlite.Open(context.Background(), path); err == nil {
			db.Close()
			t.Errorf("Open(%q) = nil error, want an error", path)
		}
	}
}

func TestReopenKeepsData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.db")
	db, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	a, err := db.CreateAccount(t.Context(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = sqlite.Open(t.Context(), path) // migrations already applied
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer db.Close()
	if _, err := db.AccountByID(t.Context(), a.ID); err != nil {
		t.Fatalf("AccountByID after reopen: %v", err)
	}
}

func TestOpenUnwritableDir(t *testing.T) {
	_, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "missing-dir", "x.db"))
	if err == nil {
		t.Fatal("Open in a missing directory: nil error")
	}
}

// TestTwoHandlesOneFile stands for two processes (server and CLI) writing
// one file: BEGIN IMMEDIATE and busy_timeout make them queue, not fail.
func TestTwoHandlesOneFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shared.db")
	var dbs [2]*sqlite.DB
	for i := range dbs {
		db, err := sqlite.Open(t.Context(), path)
		if err != nil {
			t.Fatalf("Open #%d: %v", i+1, err)
		}
		t.Cleanup(func() { db.Close() })
		dbs[i] = db
	}
	acct, _, err := dbs[0].EnsureAccount(t.Context(), "default")
	if err != nil {
		t.Fatal(err)
	}
	const perHandle = 50
	var wg sync.WaitGroup
	for i, db := range dbs {
		wg.Go(func() {
			for j := range perHandle {
				// Read-then-write transactions are the ones that fail
				// without BEGIN IMMEDIATE.
				if _, _, err := db.EnsureAccount(t.Context(), fmt.Sprintf("a-%d-%d", i, j)); err != nil {
					t.Errorf("handle %d EnsureAccount: %v", i, err)
					return
				}
				if _, err := db.CreateLead(t.Context(), store.Lead{AccountID: acct.ID, Status: store.LeadNew}); err != nil {
					t.Errorf("handle %d CreateLead: %v", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	list, _, err := dbs[1].ListLeads(t.Context(), acct.ID, store.LeadFilter{}, store.Page{Limit: store.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2*perHandle {
		t.Errorf("leads = %d, want %d", len(list), 2*perHandle)
	}
}

// TestConcurrentFirstOpen stands for processes (two serves, or serve and
// the keys CLI) that open one new file at the same moment: every Open must
// succeed and each handle must see the whole schema. The "processes" cases
// run Open in copies of the test binary (see TestOpenHelperProcess).
func TestConcurrentFirstOpen(t *testing.T) {
	tests := []struct {
		name      string
		handles   int
		rounds    int
		processes bool
	}{
		{"two handles", 2, 10, false},
		{"four handles", 4, 10, false},
		{"eight handles", 8, 3, false},
		{"four processes", 4, 3, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for round := range tt.rounds {
				path := filepath.Join(t.TempDir(), "fresh.db")
				errs := make([]error, tt.handles)
				var wg sync.WaitGroup
				for i := range tt.handles {
					wg.Go(func() {
						if tt.processes {
							errs[i] = openInProcess(t, path, fmt.Sprintf("a-%d", i))
						} else {
							errs[i] = openAndUse(t.Context(), path, fmt.Sprintf("a-%d", i))
						}
					})
				}
				wg.Wait()
				for i, err := range errs {
					if err != nil {
						t.Errorf("round %d: handle %d of a new file: %v", round, i+1, err)
					}
				}
				if t.Failed() {
					return
				}
			}
		})
	}
}

// openAndUse opens path, writes to it and closes it.
func openAndUse(ctx context.Context, path, account string) error {
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, _, err := db.EnsureAccount(ctx, account); err != nil {
		return fmt.Errorf("EnsureAccount: %w", err)
	}
	return nil
}

// openInProcess runs openAndUse in a copy of the test binary.
func openInProcess(t *testing.T, path, account string) error {
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestOpenHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "TOLLGATE_TEST_OPEN_PATH="+path, "TOLLGATE_TEST_OPEN_ACCOUNT="+account)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("helper process: %w\n%s", err, out)
	}
	return nil
}

// TestOpenHelperProcess is not a test: openInProcess runs it in a child
// process to open a database there.
func TestOpenHelperProcess(t *testing.T) {
	path := os.Getenv("TOLLGATE_TEST_OPEN_PATH")
	if path == "" {
		t.Skip("helper process for TestConcurrentFirstOpen")
	}
	if err := openAndUse(context.Background(), path, os.Getenv("TOLLGATE_TEST_OPEN_ACCOUNT")); err != nil {
		t.Fatal(err)
	}
}
