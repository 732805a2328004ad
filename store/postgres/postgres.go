// Package postgres is the PostgreSQL backend of store, on pgx/v5 and its
// pool. Use it when several tollgate instances share one database.
//
// Commits are durable with PostgreSQL's default synchronous_commit=on.
// Migrations are applied at Open under a session advisory lock scoped to
// the connection's schema, so instances starting together migrate once.
//
// Every connection runs READ COMMITTED, whatever default_transaction_isolation
// the database, role or URL sets: the statements are written for it. A
// write the server refuses for now (a serialization failure or deadlock,
// lock_timeout, a read-only server such as a standby) is
// store.ErrUnavailable, like an unreachable one.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"net"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/jackc/puddle/v2"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"github.com/tollgate-dev/tollgate/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// DB is a store.Store on a PostgreSQL database. It is safe for concurrent
// use.
type DB struct {
	pool *pgxpool.Pool
	now  func() time.Time
	// ownClock is set by WithClock. Without it, idempotency leases and
	// retention are judged by the database's clock (idemNow), which every
	// instance shares.
	ownClock bool
}

var _ store.Store = (*DB)(nil)

// Option configures Open.
type Option func(*options)

type options struct {
	now func() time.Time
}

// WithClock sets the clock for created/updated times and IDs, and for
// idempotency leases and retention. Default: time.Now for the former, and
// the database's own clock for the latter, so that instances whose clocks
// disagree still judge a lease alike.
func WithClock(now func() time.Time) Option {
	return func(o *options) { o.now = now }
}

// Open connects to the database at url (postgres://…; pool settings such
// as pool_max_conns are read from it), checks that it answers, and applies
// any pending migrations. An unreachable server is store.ErrUnavailable.
func Open(ctx context.Context, url string, opts ...Option) (*DB, error) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err) // pgx redacts the password
	}
	// Every statement is written for READ COMMITTED: a write that waits
	// for a concurrent one's row lock then goes on with the row as it was
	// committed. Under a default of repeatable read or serializable (set
	// for the database, the role or in the URL) it would fail with a
	// serialization error instead, a 503 for a mere concurrent write. SET
	// on each new connection overrides those defaults; a startup
	// parameter would too, but PgBouncer refuses unknown ones.
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		_, err := c.Exec(ctx, `SET default_transaction_isolation = 'read committed'`)
		return err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", wrapErr(err))
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: open: %w", wrapErr(err))
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: open: %w", wrapErr(err))
	}
	return &DB{pool: pool, now: store.Clock(o.now), ownClock: o.now != nil}, nil
}

func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	var schema string
	if err := pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	h := fnv.New64a()
	io.WriteString(h, "tollgate migrations "+schema)
	locker, err := lock.NewPostgresSessionLocker(
		lock.WithLockID(int64(h.Sum64()>>1)),
		lock.WithLockTimeout(1, 300),
	)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	db := stdlib.OpenDBFromPool(pool) // closing it leaves the pool open
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, sub,
		goose.WithDisableGlobalRegistry(true),
		goose.WithSessionLocker(locker))
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// Pool returns the connection pool, for tools and tests that need raw
// access. Do not close it; Close the DB.
func (db *DB) Pool() *pgxpool.Pool { return db.pool }

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: ping: %w", wrapErr(err))
	}
	return nil
}

// Close closes the pool, waiting for connections in use to be returned.
// Closing twice is harmless.
func (db *DB) Close() error {
	db.pool.Close()
	return nil
}

// modify is the read-modify-write of one row, for the Update methods (see
// store.Sessions.UpdateSession): read reads the row and locks it (SELECT …
// FOR UPDATE), update changes it, write stores it, all in one transaction.
// The row lock is held until commit, so another modify of the row waits at
// its read until this one has committed. The transaction is READ
// COMMITTED, whatever the server's default: the waiting read then returns
// the row as that commit left it (under REPEATABLE READ or SERIALIZABLE it
// would fail with a serialization error instead). One row is locked per
// transaction, so two modifies cannot deadlock. An error of update is
// returned as it is; other errors are wrapped as op's.
func modify[T any](ctx context.Context, db *DB, op string, update func(*T) error,
	read func(tx pgx.Tx) (T, error), write func(tx pgx.Tx, v T) (T, error)) (T, error) {
	var (
		out     T
		refused error
	)
	err := db.inIDTx(ctx, func(tx pgx.Tx) error {
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
		return zero, fmt.Errorf("postgres: %s: %w", op, wrapErr(err))
	}
	return out, nil
}

// uniqueFields maps unique constraint names (see migrations) to the
// conflicting resource and API field.
var uniqueFields = map[string][2]string{
	"accounts_name_key":        {"account", "name"},
	"api_keys_hash_key":        {"key", "hash"},
	"sessions_external_id_key": {"session", "sessionExternalId"},
	"leads_phone_key":          {"lead", "phone"},
}

// wrapErr maps pgx errors to store's errors, keeping the original in the
// chain.
func wrapErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ErrNotFound
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "23505": // unique_violation
			if f, ok := uniqueFields[pe.ConstraintName]; ok {
				return fmt.Errorf("%w: %w", &store.ConflictError{Resource: f[0], Field: f[1]}, err)
			}
			return fmt.Errorf("%w: %w", store.ErrConflict, err)
		case pe.Code == "23503": // foreign_key_violation: the account does not exist
			return fmt.Errorf("account: %w: %w", store.ErrNotFound, err)
		case len(pe.Code) == 5 && (pe.Code[:2] == "08" || // connection exception
			pe.Code[:2] == "53" || // insufficient resources
			pe.Code[:2] == "57" || // operator intervention: shutdown, cannot connect now, statement timeout
			pe.Code[:2] == "40" || // serialization failure, deadlock: retry
			pe.Code == "55P03" || // lock_not_available: waited past lock_timeout
			pe.Code == "25006"): // read_only_sql_transaction: a standby, or writes turned off
			return store.Unavailable(err)
		}
		return err
	}
	var (
		ce *pgconn.ConnectError
		ne net.Error
	)
	switch {
	case errors.As(err, &ce), errors.As(err, &ne), pgconn.Timeout(err), pgconn.SafeToRetry(err),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, puddle.ErrClosedPool),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return store.Unavailable(err)
	}
	return err
}

// micro is t as stored: UTC, microseconds (PostgreSQL would round, not
// truncate).
func micro(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func microPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	m := micro(*t)
	return &m
}

// utcPtr converts a scanned time to UTC.
func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// nullString stores "" as NULL, for optional unique columns.
func nullString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func fromNull(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
