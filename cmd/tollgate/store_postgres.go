package main

import (
	"context"
	"errors"

	"github.com/tollgate-dev/tollgate/store"
)

func openPostgres(ctx context.Context, dsn string) (store.Store, error) {
	return nil, errors.New("postgres: not built yet")
}
