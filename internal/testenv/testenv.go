// Package testenv finds the real services the tests run against:
// PostgreSQL and Redis on loopback.
//
// Tests find them through TOLLGATE_TEST_POSTGRES and TOLLGATE_TEST_REDIS
// (defaults: 127.0.0.1:5432 database test, 127.0.0.1:6379). When a service
// is unreachable the test is skipped with a message, unless
// TOLLGATE_REQUIRE_SERVICES=1, where it fails.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

// DefaultPostgres is the PostgreSQL URL used when TOLLGATE_TEST_POSTGRES is unset.
const DefaultPostgres = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// DefaultRedis is the Redis address used when TOLLGATE_TEST_REDIS is unset.
const DefaultRedis = "127.0.0.1:6379"

// unavailable skips t, or fails it when services are required.
func unavailable(t testing.TB, what string, err error) {
	t.Helper()
	if os.Getenv("TOLLGATE_REQUIRE_SERVICES") == "1" {
		t.Fatalf("testenv: %s unreachable and TOLLGATE_REQUIRE_SERVICES=1: %v", what, err)
	}
	t.Skipf("testenv: %s unreachable (set TOLLGATE_REQUIRE_SERVICES=1 to fail instead): %v", what, err)
}

// Postgres returns the URL of a fresh, empty schema in the test database;
// the URL's search_path points at it. The schema is dropped when t ends.
func Postgres(t testing.TB) string {
	t.Helper()
	base := os.Getenv("TOLLGATE_TEST_POSTGRES")
	if base == "" {
		base = DefaultPostgres
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		unavailable(t, "postgres", err)
	}
	defer conn.Close(context.Background())
	schema := "t_" + randomHex(8)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("testenv: create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("testenv: drop schema %s: %v", schema, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("testenv: drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("testenv: parse %q: %v", base, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Redis returns the address of the test Redis server and a key prefix
// unique to this test, so tests sharing the server do not collide.
func Redis(t testing.TB) (addr, prefix string) {
	t.Helper()
	addr = os.Getenv("TOLLGATE_TEST_REDIS")
	if addr == "" {
		addr = DefaultRedis
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	if err := c.Ping(ctx).Err(); err != nil {
		unavailable(t, "redis", err)
	}
	return addr, fmt.Sprintf("test:%s:", randomHex(8))
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
