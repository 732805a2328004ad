package storetest

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/store"
)

// pagedKind is a resource listed a page at a time: sessions, leads or keys.
type pagedKind struct {
	name   string
	create func(ctx context.Context, s store.Store, accountID string, n int) (string, error)
	list   func(ctx context.Context, s store.Store, accountID, after string, limit int) (ids []string, next string, err error)
}

var pagedKinds = []pagedKind{
	{
		name: "sessions",
		create: func(ctx context.Context, s store.Store, accountID string, n int) (string, error) {
			out, err := s.CreateSession(ctx, store.Session{AccountID: accountID, Title: fmt.Sprint("s", n), Status: store.SessionActive})
			return out.ID, err
		},
		list: func(ctx context.Context, s store.Store, accountID, after string, limit int) ([]string, string, error) {
			list, next, err := s.ListSessions(ctx, accountID, store.SessionFilter{}, store.Page{After: after, Limit: limit})
			ids := make([]string, len(list))
			for i, x := range list {
				ids[i] = x.ID
			}
			return ids, next, err
		},
	},
	{
		name: "leads",
		create: func(ctx context.Context, s store.Store, accountID string, n int) (string, error) {
			out, err := s.CreateLead(ctx, store.Lead{AccountID: accountID, Name: fmt.Sprint("l", n), Status: store.LeadNew})
			return out.ID, err
		},
		list: func(ctx context.Context, s store.Store, accountID, after string, limit int) ([]string, string, error) {
			list, next, err := s.ListLeads(ctx, accountID, store.LeadFilter{}, store.Page{After: after, Limit: limit})
			ids := make([]string, len(list))
			for i, x := range list {
				ids[i] = x.ID
			}
			return ids, next, err
		},
	},
	{
		name: "keys",
		create: func(ctx context.Context, s store.Store, accountID string, n int) (string, error) {
			secret := fmt.Sprint("paging key ", accountID, " ", n)
			out, err := s.CreateKey(ctx, store.APIKey{AccountID: accountID, Name: fmt.Sprint("k", n), Start: "tg_live_page",
				Hash: sha256.Sum256([]byte(secret)), Scopes: []string{}})
			return out.ID, err
		},
		list: func(ctx context.Context, s store.Store, accountID, after string, limit int) ([]string, string, error) {
			list, next, err := s.ListKeysPage(ctx, accountID, store.Page{After: after, Limit: limit})
			ids := make([]string, len(list))
			for i, x := range list {
				ids[i] = x.ID
			}
			return ids, next, err
		},
	},
}

// testCreateWhilePaging checks the promise of the list routes: records
// created while a client pages appear on a later page. Writers create
// records of one account concurrently while a reader pages through them
// from the start, over and over, with a small limit. A record whose ID
// sorts below a cursor the reader was handed in a pass must have been on
// one of that pass's pages: the cursor has moved past it, so no later page
// of the pass can show it. That holds only if IDs increase in commit
// order, so that no ID below a cursor can still commit.
func testCreateWhilePaging(t *testing.T, h Harness) {
	const (
		rounds    = 20 // each on a new account, so that passes stay short
		writers   = 4
		perWriter = 6
		limit     = 2
	)
	e := newEnv(t, h)
	for _, k := range pagedKinds {
		// The guarantee must not rest on the clock: a writer whose clock
		// is behind (another instance's, or this one's after a step back)
		// still takes an ID after the account's last.
		t.Run(k.name+" clock behind", func(t *testing.T) {
			e := newEnv(t, h)
			acct := e.account(t, "acme").ID
			prev := ""
			for i := range 4 {
				id, err := k.create(e.ctx, e.s, acct, i)
				wantErr(t, "create "+k.name, err, nil)
				if id <= prev || len(id) != len(prev) && prev != "" {
					t.Fatalf("create %s with the clock %d h behind: ID %q, want one after %q", k.name, i, id, prev)
				}
				prev = id
				e.clock.Add(-time.Hour)
			}
		})
		t.Run(k.name, func(t *testing.T) {
			var skipped, bad, passes int
			for round := range rounds {
				acct := e.account(t, fmt.Sprintf("%s-%d", k.name, round))
				s, b, p := createWhilePaging(t, e, k, acct.ID, writers, perWriter, limit)
				skipped, bad, passes = skipped+s, bad+b, passes+p
			}
			if skipped > 0 {
				t.Errorf("%s: %d of %d records skipped, in %d of %d passes, by a reader paging with limit %d while %d writers created them: IDs do not increase in commit order",
					k.name, skipped, rounds*writers*perWriter, bad, passes, limit, writers)
			}
		})
	}
}

// createWhilePaging runs one round on account acct and returns how many
// records some pass of the reader skipped, how many of its passes skipped
// one, and how many passes it made.
func createWhilePaging(t *testing.T, e *env, k pagedKind, acct string, writers, perWriter, limit int) (skipped, badPasses, passes int) {
	t.Helper()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		created []string
		done    atomic.Bool
		errs    = make(chan error, writers+1)
	)
	start := make(chan struct{})
	for w := range writers {
		wg.Go(func() {
			<-start
			for i := range perWriter {
				id, err := k.create(e.ctx, e.s, acct, w*perWriter+i)
				if err != nil {
					errs <- fmt.Errorf("create %s: %w", k.name, err)
					return
				}
				mu.Lock()
				created = append(created, id)
				mu.Unlock()
			}
		})
	}
	// pass pages from the start to the end and returns what it saw and the
	// last cursor it was handed ("" if none).
	pass := func() (map[string]bool, string, error) {
		seen := map[string]bool{}
		after, cursor := "", ""
		for {
			ids, next, err := k.list(e.ctx, e.s, acct, after, limit)
			if err != nil {
				return nil, "", fmt.Errorf("list %s: %w", k.name, err)
			}
			for _, id := range ids {
				if id <= after {
					return nil, "", fmt.Errorf("list %s after %q returned %q", k.name, after, id)
				}
				seen[id] = true
			}
			if next == "" {
				return seen, cursor, nil
			}
			after, cursor = next, next
		}
	}
	type result struct {
		seen   map[string]bool
		cursor string
	}
	var results []result
	reader := make(chan struct{})
	go func() {
		defer close(reader)
		<-start
		for !done.Load() {
			seen, cursor, err := pass()
			if err != nil {
				errs <- err
				return
			}
			results = append(results, result{seen, cursor})
		}
	}()
	close(start)
	wg.Wait()
	done.Store(true)
	<-reader
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// Every record created is there at the end.
	final, _, err := pass()
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range created {
		if !final[id] {
			t.Fatalf("%s %s created but missing from a pass made after every create returned", k.name, id)
		}
	}
	missed := map[string]bool{}
	for _, r := range results {
		bad := false
		for _, id := range created {
			if id < r.cursor && !r.seen[id] {
				if len(missed) < 3 {
					t.Logf("%s %s skipped: the reader was handed cursor %s but never shown it", k.name, id, r.cursor)
				}
				missed[id], bad = true, true
			}
		}
		if bad {
			badPasses++
		}
	}
	return len(missed), badPasses, len(results)
}
