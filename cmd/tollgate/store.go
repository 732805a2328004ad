package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/tollgate-dev/tollgate/store"
	"github.com/tollgate-dev/tollgate/store/postgres"
	"github.com/tollgate-dev/tollgate/store/sqlite"
)

// openStore opens the database named by dsn: a postgres:// or
// postgresql:// URL is PostgreSQL, anything else a SQLite file path.
func openStore(ctx context.Context, dsn string) (store.Store, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		db, err := postgres.Open(ctx, dsn)
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", redactDSN(dsn), err)
		}
		return db, nil
	}
	db, err := sqlite.Open(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dsn, err)
	}
	return db, nil
}

// redacted replaces a password in redactDSN's output.
const redacted = "xxxxx"

// redactDSN returns dsn, a database or Redis URL or a file path, fit for
// messages and logs: without the password of its user information and
// without the values of query parameters whose name contains "password"
// (PostgreSQL's password and sslpassword). A URL that does not parse loses
// everything between "://" and its last "@", since its password cannot be
// told from the rest. Anything without "://" that does not parse is a path
// and kept.
func redactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	// A password holding "/", "#" or "?" after digits parses as a port and
	// a path ("postgres://u:1234/x@h/db"): no user info is found. So text
	// that has an "@" before any query but no user info is redacted as text
	// too, and so is a query holding an "@" right after a port
	// ("postgres://u:1234?x@h/db"; a real URL has a path there).
	if err != nil || u.User == nil && (strings.Contains(strings.SplitN(dsn, "?", 2)[0], "@") ||
		u.Port() != "" && u.Path == "" && strings.Contains(u.RawQuery, "@")) {
		scheme, rest, ok := strings.Cut(dsn, "://")
		if !ok {
			return dsn
		}
		if i := strings.LastIndex(rest, "@"); i >= 0 {
			rest = redacted + rest[i:]
		}
		if before, query, ok := strings.Cut(rest, "?"); ok {
			rest = before + "?" + redactQuery(query)
		}
		return scheme + "://" + rest
	}
	query := redactQuery(u.RawQuery)
	if u.User == nil && query == u.RawQuery {
		return dsn
	}
	u.RawQuery = query
	return u.Redacted()
}

// redactQuery replaces the values of the password parameters of a raw
// query, keeping the order and the encoding of the others.
func redactQuery(query string) string {
	if query == "" {
		return query
	}
	params := strings.Split(query, "&")
	for i, p := range params {
		k, _, ok := strings.Cut(p, "=")
		name, err := url.QueryUnescape(k)
		if err != nil {
			name = k
		}
		if ok && strings.Contains(strings.ToLower(name), "password") {
			params[i] = k + "=" + redacted
		}
	}
	return strings.Join(params, "&")
}

// withoutURL returns err without the URL that url.Parse quotes in its
// errors, which may hold a password.
func withoutURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
