package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/tollgate-dev/tollgate/auth"
	"github.com/tollgate-dev/tollgate/store"
	"github.com/tollgate-dev/tollgate/store/sqlite"
)

func ExampleOpen() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "tollgate-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	db, err := sqlite.Open(ctx, filepath.Join(dir, "tollgate.db"))
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
	// Output:
	// true true <nil>
	// true
}
