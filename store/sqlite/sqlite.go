// Package sqlite is the SQLite backend of store, on modernc.org/sqlite (no
// cgo). It is tollgate's default: one file, no other process.
//
// Durability: the database runs in WAL mode with synchronous=FULL, so the
// WAL is synced on every commit and a write acknowledged to a caller
// survives SIGKILL and power loss. (NORMAL would survive a process crash
// but may lose the last commits on power loss; we trade ≈5× write
// throughput for the stronger rule.)
//
// Concurrency: writes go through one connection, in BEGIN IMMEDIATE
// transactions, so writers queue in the pool instead of failing with
// SQLITE_BUSY; reads use a separate pool of read-only connections, which WAL
// lets run beside the writer. busy_timeout (5 s) covers other processes
// writing the same file, such as the tollgate CLI.
//
// Migrations: Open applies the embedded migrations with goose while it holds
// an exclusive lock on the file PATH-migrate.lock beside the database (see
// lockMigrations), so processes that open a new file at the same moment
// migrate it once, one after the other. The lock file is left in place.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/tollgate-dev/tollgate/store"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

//go:embed migrations/*.sql
var migrations embed.FS

// DB is a store.Store on one SQLite file. It is safe for concurrent use.
type DB struct {
	path string
	w    *sql.DB // one connection: every write
	r    *sql.DB // read-only connections
	now  func() time.Time
}

var _ store.Store = (*DB)(nil)

// Option configures Open.
type Option func(*options)

type options struct {
	now       func() time.Time
	readConns int
}

// WithClock sets the clock for created/updated times and IDs. Default
// time.Now.
func WithClock(now func() time.Time) Option {
	return func(o *options) { o.now = now }
}

// WithReadConns sets the size of the read pool. Default max(4, GOMAXPROCS).
func WithReadConns(n int) Option {
	return func(o *options) { o.readConns = n }
}

// dsn settings shared by both pools. modernc.org/sqlite runs busy_timeout
// first, then the other _pragma values.
const commonDSN = "_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)&_pragma=synchronous(FULL)"

// Open opens (creating if needed) the SQLite database file at path and
// applies any pending migrations. path is a file name, not a URI; ":memory:"
// is refused because the two pools would see two different databases.
func Open(ctx context.Context, path string, opts ...Option) (*DB, error) {
	o := options{readConns: max(4, runtime.GOMAXPROCS(0))}
	for _, f := range opts {
		f(&o)
	}
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") || strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("sqlite: open %q: want a plain file path", path)
	}
	w, err := sql.Open("sqlite", path+"?"+commonDSN+"&_pragma=journal_mode(WAL)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if err := migrateLocked(ctx, path, w); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, wrapErr(err))
	}
	r, err := sql.Open("sqlite", path+"?"+commonDSN+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	r.SetMaxOpenConns(o.readConns)
	r.SetMaxIdleConns(o.readConns)
	if err := r.PingContext(ctx); err != nil {
		w.Close()
		r.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, wrapErr(err))
	}
	return &DB{path: path, w: w, r: r, now: store.Clock(o.now)}, nil
}

// migrateLocked migrates db, the writer pool of the file at path, under the
// file's migration lock (see lockMigrations). Without it, processes opening
// a new file at once each find the schema missing and each create it: all
// but one fail with "table accounts already exists", or with SQLITE_BUSY
// while two connections turn the file to WAL. The writer's first
// connection is opened under the lock too, so its busy_timeout covers any
// process that already uses the file.
func migrateLocked(ctx context.Context, path string, db *sql.DB) (err error) {
	unlock, err := lockMigrations(ctx, path)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, unlock()) }()
	return migrate(ctx, db)
}

func migrate(ctx context.Context, db *sql.DB) error {
	p, err := goose.NewProvider(goose.DialectSQLite3, db, mustSub(migrations, "migrations"),
		goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// Path returns the database file's path. The WAL is Path()+"-wal".
func (db *DB) Path() string { return db.path }

// Ping checks that both pools can reach the file.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.w.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: ping: %w", wrapErr(err))
	}
	if err := db.r.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: ping: %w", wrapErr(err))
	}
	return nil
}

// Close closes both pools, readers first, so that the writer's connection
// is the last one and SQLite checkpoints the WAL into the file.
func (db *DB) Close() error {
	return errors.Join(db.r.Close(), db.w.Close())
}

// inTx runs f in a write (BEGIN IMMEDIATE) transaction and commits it if f
// returns nil. The transaction is rolled back if f fails or panics, so
// that the writer's one connection is never left inside it.
func (db *DB) inTx(ctx context.Context, f func(tx *sql.Tx) error) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }() // after Commit, ErrTxDone: nothing to do
	if err := f(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// modify is the read-modify-write of one row, for the Update methods
// (see store.Sessions.UpdateSession): read reads the row, update changes
// it, write stores it, all in one write transaction. BEGIN IMMEDIATE holds
// the database's write lock from before the read until commit, so no other
// write, from this process or another, can come between the read and the
// write. An error of update is returned as it is; other errors are wrapped
// as op's.
func modify[T any](ctx context.Context, db *DB, op string, update func(*T) error,
	read func(tx *sql.Tx) (T, error), write func(tx *sql.Tx, v T) (T, error)) (T, error) {
	var (
		out     T
		refused error
	)
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		v, err := read(tx)
		if err != nil {
			return err
		}
		if refused = update(&v); refused != nil {
			return refused
		}
		out, err = write(tx, v)
		return err
	})
	switch {
	case refused != nil:
		var zero T
		return zero, refused
	case err != nil:
		var zero T
		return zero, fmt.Errorf("sqlite: %s: %w", op, wrapErr(err))
	}
	return out, nil
}

// uniqueFields maps the columns of a UNIQUE constraint failure (as SQLite
// names them in its message) to the conflicting API field.
var uniqueFields = []struct {
	column, resource, field string
}{
	{"accounts.name", "account", "name"},
	{"api_keys.hash", "key", "hash"},
	{"sessions.external_id", "session", "sessionExternalId"},
	{"leads.phone", "lead", "phone"},
}

// wrapErr maps driver errors to store's errors, keeping the original in the
// chain.
func wrapErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch code := se.Code(); code {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			msg := se.Error()
			for _, u := range uniqueFields {
				if strings.Contains(msg, u.column) {
					return fmt.Errorf("%w: %w", &store.ConflictError{Resource: u.resource, Field: u.field}, err)
				}
			}
			return fmt.Errorf("%w: %w", store.ErrConflict, err)
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return fmt.Errorf("account: %w: %w", store.ErrNotFound, err)
		default:
			switch code & 0xFF {
			case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_CANTOPEN,
				sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL, sqlite3.SQLITE_NOMEM,
				sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PROTOCOL, sqlite3.SQLITE_NOLFS:
				return store.Unavailable(err)
			}
		}
		return err
	}
	if errors.Is(err, sql.ErrConnDone) || errors.Is(err, context.DeadlineExceeded) ||
		strings.Contains(err.Error(), "sql: database is closed") {
		return store.Unavailable(err)
	}
	return err
}

// Times are stored as microseconds since the epoch.

func toMicro(t time.Time) int64 { return t.UnixMicro() }

func fromMicro(us int64) time.Time { return time.UnixMicro(us).UTC() }

func toNullMicro(t *time.Time) sql.NullInt64 {
	if t == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMicro(), Valid: true}
}

func fromNullMicro(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMicro(v.Int64)
	return &t
}

// nullString stores "" as NULL, for optional unique columns.
func nullString(s string) sql.NullString {
	return sql.NullString{String: s, Valid: s != ""}
}

// scanner is *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }
