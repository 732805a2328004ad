package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/tollgate-dev/tollgate/auth"
	"github.com/tollgate-dev/tollgate/store"
	"github.com/tollgate-dev/tollgate/store/postgres"
)

// This example needs a PostgreSQL server, so it has no Output line: go
// test compiles it but does not run it. Against an empty database it
// prints
//
//	true true <nil>
//	true
func ExampleOpen() {
	ctx := context.Background()
	url := os.Getenv("TOLLGATE_DATABASE") // e.g. postgres://tollgate@127.0.0.1:5432/tollgate?sslmode=disable
	// Open applies any pending migrations; pool settings come from the URL
	// (pool_max_conns=…). An unreachable server is store.ErrUnavailable.
	db, err := postgres.Open(ctx, url)
	if err != nil {
		panic(err)
	}
	defer db.Close()

	acct, created, err := db.EnsureAccount(ctx, "default")
	if err != nil {
		panic(err)
	}
	secret, err := auth.NewKey(true)
	if err != nil {
		panic(err)
	}
	key, err := db.CreateKey(ctx, store.APIKey{
		AccountID: acct.ID,
		Name:      "admin",
		Start:     auth.Start(secret),
		Hash:      auth.Hash(secret),
		Scopes:    []string{auth.ScopeAll},
	})
	if err != nil {
		panic(err)
	}

	// Keys are found by the hash of the presented secret.
	found, err := db.KeyByHash(ctx, auth.Hash(secret))
	fmt.Println(created, found.ID == key.ID, err)

	_, err = db.KeyByID(ctx, "acc_someone_else", key.ID)
	fmt.Println(errors.Is(err, store.ErrNotFound))
}
