package sqlite

import "testing"

// Pragmas reads the connection settings of both pools, keyed "w.<name>"
// and "r.<name>", for tests.
func Pragmas(t *testing.T, db *DB) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, name := range []string{"journal_mode", "synchronous", "foreign_keys", "busy_timeout", "query_only"} {
		var v string
		if err := db.w.QueryRow("PRAGMA " + name).Scan(&v); err != nil {
			t.Fatalf("writer PRAGMA %s: %v", name, err)
		}
		out["w."+name] = v
		if err := db.r.QueryRow("PRAGMA " + name).Scan(&v); err != nil {
			t.Fatalf("reader PRAGMA %s: %v", name, err)
		}
		out["r."+name] = v
	}
	return out
}
