package sqlite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// lockSuffix names the file beside the database that serializes
// migrations across processes.
const lockSuffix = "-migrate.lock"

// lockMigrations takes an exclusive lock on the lock file of the database
// at path (path+lockSuffix, created if needed and never removed) and
// returns the function that releases it. It waits until the lock is free
// or ctx is done.
//
// The lock is an advisory lock of the operating system on an open file
// (flock on Unix, LockFileEx on Windows): it is held per open file, so it
// also orders two Opens in one process, and it is released when its holder
// exits, even by a crash. SQLite's own locks cannot do this job: goose
// runs each migration in its own transaction, so a write lock held across
// the whole migration would block goose itself.
func lockMigrations(ctx context.Context, path string) (unlock func() error, err error) {
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real // SQLite also follows a symbolic link to the file
	}
	name := path + lockSuffix
	f, err := os.OpenFile(name, os.O_RDONLY|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("migration lock: %w", err)
	}
	locked := make(chan error, 1)
	go func() { locked <- lockFile(f) }()
	select {
	case err := <-locked:
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("migration lock %s: %w", name, err)
		}
		return func() error { return errors.Join(unlockFile(f), f.Close()) }, nil
	case <-ctx.Done():
		// The goroutine stays blocked until the holder lets go; then the
		// lock is released at once.
		go func() {
			if <-locked == nil {
				unlockFile(f)
			}
			f.Close()
		}()
		return nil, fmt.Errorf("migration lock %s: %w", name, ctx.Err())
	}
}
