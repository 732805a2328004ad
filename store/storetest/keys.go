package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/auth"
	"github.com/tollgate-dev/tollgate/store"
)

func testAccounts(t *testing.T, h Harness) {
	e := newEnv(t, h)
	a := e.account(t, "acme")
	if !strings.HasPrefix(a.ID, store.PrefixAccount) || len(a.ID) != len(store.PrefixAccount)+26 {
		t.Errorf("CreateAccount ID = %q, want acc_<ulid>", a.ID)
	}
	diff(t, "CreateAccount", store.Account{ID: a.ID, Name: "acme", CreatedAt: e.now()}, a)

	got, err := e.s.AccountByID(e.ctx, a.ID)
	wantErr(t, "AccountByID", err, nil)
	diff(t, "AccountByID", a, got)
	got, err = e.s.AccountByName(e.ctx, "acme")
	wantErr(t, "AccountByName", err, nil)
	diff(t, "AccountByName", a, got)

	_, err = e.s.CreateAccount(e.ctx, "acme")
	wantConflict(t, "CreateAccount(duplicate)", err, "name")

	tests := []struct {
		name string
		call func() error
	}{
		{"AccountByID unknown", func() error { _, err := e.s.AccountByID(e.ctx, "acc_01J00000000000000000000000"); return err }},
		{"AccountByName unknown", func() error { _, err := e.s.AccountByName(e.ctx, "nobody"); return err }},
		{"AccountByName is exact", func() error { _, err := e.s.AccountByName(e.ctx, "ACME"); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { wantErr(t, tt.name, tt.call(), store.ErrNotFound) })
	}

	e.clock.Add(time.Second)
	b, created, err := e.s.EnsureAccount(e.ctx, "default")
	wantErr(t, "EnsureAccount(new)", err, nil)
	if !created {
		t.Error("EnsureAccount(new) created = false, want true")
	}
	diff(t, "EnsureAccount(new)", store.Account{ID: b.ID, Name: "default", CreatedAt: e.now()}, b)
	b2, created, err := e.s.EnsureAccount(e.ctx, "default")
	wantErr(t, "EnsureAccount(existing)", err, nil)
	if created {
		t.Error("EnsureAccount(existing) created = true, want false")
	}
	diff(t, "EnsureAccount(existing)", b, b2)
}

func testEnsureAccountConcurrent(t *testing.T, h Harness) {
	e := newEnv(t, h)
	const n = 16
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		ids     = map[string]int{}
		created int
		start   = make(chan struct{})
	)
	for range n {
		wg.Go(func() {
			<-start // all at once
			a, c, err := e.s.EnsureAccount(e.ctx, "shared")
			if err != nil {
				t.Errorf("EnsureAccount: %v", err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			ids[a.ID]++
			if c {
				created++
			}
		})
	}
	close(start)
	wg.Wait()
	if len(ids) != 1 || created != 1 {
		t.Errorf("%d concurrent EnsureAccount: %d distinct IDs, %d created; want 1 and 1", n, len(ids), created)
	}
}

func testKeys(t *testing.T, h Harness) {
	e := newEnv(t, h)
	acme, other := e.account(t, "acme"), e.account(t, "other")

	_, in := newSecret(t, acme.ID)
	exp := e.clock.Now().Add(24 * time.Hour) // has nanoseconds
	in.ExpiresAt = &exp
	in.ID, in.CreatedAt = "key_ignored", time.Unix(1, 0) // set by the store
	in.LastUsedAt, in.RevokedAt = &exp, &exp             // ignored on create
	k, err := e.s.CreateKey(e.ctx, in)
	wantErr(t, "CreateKey", err, nil)
	if !strings.HasPrefix(k.ID, store.PrefixKey) || len(k.ID) != len(store.PrefixKey)+26 {
		t.Errorf("CreateKey ID = %q, want key_<ulid>", k.ID)
	}
	want := in
	want.ID, want.CreatedAt, want.ExpiresAt = k.ID, e.now(), microPtr(exp)
	want.LastUsedAt, want.RevokedAt = nil, nil
	diff(t, "CreateKey", want, k)

	got, err := e.s.KeyByID(e.ctx, acme.ID, k.ID)
	wantErr(t, "KeyByID", err, nil)
	diff(t, "KeyByID", want, got)
	got, err = e.s.KeyByHash(e.ctx, in.Hash)
	wantErr(t, "KeyByHash", err, nil)
	diff(t, "KeyByHash", want, got)

	// A second key, no expiry, created later; and one in another account.
	e.clock.Add(time.Millisecond)
	_, k2 := e.key(t, acme.ID)
	_, k3 := e.key(t, other.ID)

	notFound := []struct {
		name string
		call func() error
	}{
		{"KeyByID of another account", func() error { _, err := e.s.KeyByID(e.ctx, other.ID, k.ID); return err }},
		{"KeyByID unknown", func() error { _, err := e.s.KeyByID(e.ctx, acme.ID, "key_01J00000000000000000000000"); return err }},
		{"KeyByHash unknown", func() error { _, err := e.s.KeyByHash(e.ctx, auth.Hash("nope")); return err }},
		{"CreateKey unknown account", func() error {
			_, k := newSecret(t, "acc_01J00000000000000000000000")
			_, err := e.s.CreateKey(e.ctx, k)
			return err
		}},
	}
	for _, tt := range notFound {
		t.Run(tt.name, func(t *testing.T) { wantErr(t, tt.name, tt.call(), store.ErrNotFound) })
	}

	dup := in
	dup.AccountID = other.ID
	_, err = e.s.CreateKey(e.ctx, dup)
	wantConflict(t, "CreateKey(duplicate hash)", err, "hash")

	list, err := e.s.ListKeys(e.ctx, acme.ID)
	wantErr(t, "ListKeys", err, nil)
	diff(t, "ListKeys(acme)", []store.APIKey{want, k2}, list)
	list, err = e.s.ListKeys(e.ctx, other.ID)
	wantErr(t, "ListKeys", err, nil)
	diff(t, "ListKeys(other)", []store.APIKey{k3}, list)
	// A page at a time: acme's two keys in pages of one.
	page, next, err := e.s.ListKeysPage(e.ctx, acme.ID, store.Page{Limit: 1})
	wantErr(t, "ListKeysPage", err, nil)
	diff(t, "ListKeysPage(acme, first)", []store.APIKey{want}, page)
	if next != want.ID {
		t.Errorf("ListKeysPage(acme, first) next = %q, want %q", next, want.ID)
	}
	page, next, err = e.s.ListKeysPage(e.ctx, acme.ID, store.Page{Limit: 1, After: next})
	wantErr(t, "ListKeysPage", err, nil)
	diff(t, "ListKeysPage(acme, second)", []store.APIKey{k2}, page)
	if next != "" {
		t.Errorf("ListKeysPage(acme, last) next = %q, want none", next)
	}
	page, _, err = e.s.ListKeysPage(e.ctx, other.ID, store.Page{})
	wantErr(t, "ListKeysPage", err, nil)
	diff(t, "ListKeysPage(other)", []store.APIKey{k3}, page)
	empty := e.account(t, "empty")
	list, err = e.s.ListKeys(e.ctx, empty.ID)
	wantErr(t, "ListKeys", err, nil)
	if len(list) != 0 {
		t.Errorf("ListKeys(empty account) = %d keys, want 0", len(list))
	}

	// Scopes round-trip, including none and all.
	for _, scopes := range [][]string{{}, {auth.ScopeAll}, auth.KnownScopes()} {
		_, k := newSecret(t, acme.ID)
		k.Scopes = scopes
		k, err := e.s.CreateKey(e.ctx, k)
		wantErr(t, "CreateKey", err, nil)
		got, err := e.s.KeyByID(e.ctx, acme.ID, k.ID)
		wantErr(t, "KeyByID", err, nil)
		diff(t, "KeyByID scopes", scopes, got.Scopes)
	}
}

func testRevokeKey(t *testing.T, h Harness) {
	e := newEnv(t, h)
	acme, other := e.account(t, "acme"), e.account(t, "other")
	_, k := e.key(t, acme.ID)

	_, err := e.s.RevokeKey(e.ctx, other.ID, k.ID, e.clock.Now())
	wantErr(t, "RevokeKey(other account)", err, store.ErrNotFound)
	_, err = e.s.RevokeKey(e.ctx, acme.ID, "key_01J00000000000000000000000", e.clock.Now())
	wantErr(t, "RevokeKey(unknown)", err, store.ErrNotFound)
	kept, err := e.s.KeyByID(e.ctx, acme.ID, k.ID)
	wantErr(t, "KeyByID", err, nil)
	if kept.RevokedAt != nil {
		t.Fatal("RevokeKey from another account revoked the key")
	}

	at := e.clock.Now().Add(time.Minute)
	got, err := e.s.RevokeKey(e.ctx, acme.ID, k.ID, at)
	wantErr(t, "RevokeKey", err, nil)
	want := k
	want.RevokedAt = microPtr(at)
	diff(t, "RevokeKey", want, got)

	// Revoking again keeps the first time.
	got, err = e.s.RevokeKey(e.ctx, acme.ID, k.ID, at.Add(time.Hour))
	wantErr(t, "RevokeKey(again)", err, nil)
	diff(t, "RevokeKey(again)", want, got)
	got, err = e.s.KeyByHash(e.ctx, k.Hash)
	wantErr(t, "KeyByHash(revoked)", err, nil)
	diff(t, "KeyByHash(revoked)", want, got)
}

func testRotateKey(t *testing.T, h Harness) {
	e := newEnv(t, h)
	acme, other := e.account(t, "acme"), e.account(t, "other")
	_, old := e.key(t, acme.ID)
	e.clock.Add(time.Second)

	t.Run("inherits and sets overlap", func(t *testing.T) {
		_, next := newSecret(t, "ignored")
		next.Name, next.Scopes, next.RatePlan = "", nil, ""
		created, gotOld, err := e.s.RotateKey(e.ctx, acme.ID, old.ID, next, 24*time.Hour)
		wantErr(t, "RotateKey", err, nil)
		wantNew := next
		wantNew.ID, wantNew.AccountID, wantNew.CreatedAt = created.ID, acme.ID, e.now()
		wantNew.Name, wantNew.Scopes, wantNew.RatePlan = old.Name, old.Scopes, old.RatePlan
		diff(t, "RotateKey new key", wantNew, created)
		wantOld := old
		wantOld.ExpiresAt = microPtr(e.clock.Now().Add(24 * time.Hour))
		diff(t, "RotateKey old key", wantOld, gotOld)
		stored, err := e.s.KeyByID(e.ctx, acme.ID, old.ID)
		wantErr(t, "KeyByID(old)", err, nil)
		diff(t, "stored old key", wantOld, stored)
		stored, err = e.s.KeyByHash(e.ctx, next.Hash)
		wantErr(t, "KeyByHash(new)", err, nil)
		diff(t, "stored new key", wantNew, stored)

		// Rotating again with a longer overlap keeps the earlier expiry.
		_, next2 := newSecret(t, acme.ID)
		next2.Name, next2.Scopes, next2.RatePlan = "renamed", []string{auth.ScopeAll}, "10/1s"
		created2, gotOld, err := e.s.RotateKey(e.ctx, acme.ID, old.ID, next2, 48*time.Hour)
		wantErr(t, "RotateKey(again)", err, nil)
		diff(t, "RotateKey(again) old expiry", wantOld.ExpiresAt, gotOld.ExpiresAt)
		if created2.Name != "renamed" || created2.RatePlan != "10/1s" || len(created2.Scopes) != 1 {
			t.Errorf("RotateKey(again) new key = %+v, want the given name, scopes, plan", created2)
		}
	})

	t.Run("new key keeps the old key's expiry", func(t *testing.T) {
		for _, overlap := range []time.Duration{0, time.Hour, 48 * time.Hour} {
			_, k := newSecret(t, acme.ID)
			k.ExpiresAt = microPtr(e.clock.Now().Add(2 * time.Hour))
			k, err := e.s.CreateKey(e.ctx, k)
			wantErr(t, "CreateKey", err, nil)
			_, next := newSecret(t, acme.ID)
			created, gotOld, err := e.s.RotateKey(e.ctx, acme.ID, k.ID, next, overlap)
			wantErr(t, "RotateKey", err, nil)
			diff(t, fmt.Sprintf("overlap %v: new key's expiry", overlap), k.ExpiresAt, created.ExpiresAt)
			diff(t, fmt.Sprintf("overlap %v: old key's expiry", overlap), microPtr(e.clock.Now().Add(min(overlap, 2*time.Hour))), gotOld.ExpiresAt)
		}
	})

	// The new key's ID sorts after every key of the account, as
	// CreateKey's do (ListKeysPage pages by ID), even with the clock behind.
	t.Run("new key's ID is the account's greatest", func(t *testing.T) {
		_, k := e.key(t, acme.ID)
		e.clock.Add(-time.Hour)
		defer e.clock.Add(time.Hour)
		_, next := newSecret(t, acme.ID)
		created, _, err := e.s.RotateKey(e.ctx, acme.ID, k.ID, next, time.Hour)
		wantErr(t, "RotateKey", err, nil)
		all, err := e.s.ListKeys(e.ctx, acme.ID)
		wantErr(t, "ListKeys", err, nil)
		if last := all[len(all)-1].ID; last != created.ID {
			t.Errorf("RotateKey with the clock an hour behind: new key %s, but the account's greatest ID is %s", created.ID, last)
		}
	})

	t.Run("zero overlap expires now", func(t *testing.T) {
		_, k := e.key(t, acme.ID)
		_, next := newSecret(t, acme.ID)
		_, gotOld, err := e.s.RotateKey(e.ctx, acme.ID, k.ID, next, 0)
		wantErr(t, "RotateKey", err, nil)
		diff(t, "old expiry", microPtr(e.clock.Now()), gotOld.ExpiresAt)
	})

	t.Run("errors", func(t *testing.T) {
		_, revoked := e.key(t, acme.ID)
		if _, err := e.s.RevokeKey(e.ctx, acme.ID, revoked.ID, e.clock.Now()); err != nil {
			t.Fatal(err)
		}
		_, expired := newSecret(t, acme.ID)
		expired.ExpiresAt = microPtr(e.clock.Now())
		expired, err := e.s.CreateKey(e.ctx, expired)
		wantErr(t, "CreateKey", err, nil)
		_, live := e.key(t, acme.ID)
		_, taken := e.key(t, acme.ID)

		tests := []struct {
			name    string
			account string
			id      string
			hash    [32]byte // of next; zero = fresh
			want    error
		}{
			{name: "other account", account: other.ID, id: live.ID, want: store.ErrNotFound},
			{name: "unknown", account: acme.ID, id: "key_01J00000000000000000000000", want: store.ErrNotFound},
			{name: "revoked", account: acme.ID, id: revoked.ID, want: store.ErrConflict},
			{name: "expired", account: acme.ID, id: expired.ID, want: store.ErrConflict},
			{name: "next hash taken", account: acme.ID, id: live.ID, hash: taken.Hash, want: store.ErrConflict},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, next := newSecret(t, acme.ID)
				if tt.hash != [32]byte{} {
					next.Hash = tt.hash
				}
				before, _ := e.s.ListKeys(e.ctx, acme.ID)
				_, _, err := e.s.RotateKey(e.ctx, tt.account, tt.id, next, time.Hour)
				wantErr(t, "RotateKey", err, tt.want)
				// Nothing changed: the rotation is one transaction.
				after, err := e.s.ListKeys(e.ctx, acme.ID)
				wantErr(t, "ListKeys", err, nil)
				diff(t, "keys after failed RotateKey", before, after)
			})
		}
	})
}

func testTouchKeys(t *testing.T, h Harness) {
	e := newEnv(t, h)
	acme := e.account(t, "acme")
	_, k1 := e.key(t, acme.ID)
	_, k2 := e.key(t, acme.ID)
	_, k3 := e.key(t, acme.ID)

	wantErr(t, "TouchKeys(empty)", e.s.TouchKeys(e.ctx, nil), nil)
	t1 := e.clock.Now().Add(time.Minute)
	t2 := e.clock.Now().Add(2 * time.Minute)
	err := e.s.TouchKeys(e.ctx, map[string]time.Time{k1.ID: t1, k2.ID: t2, "key_01J00000000000000000000000": t2})
	wantErr(t, "TouchKeys", err, nil)
	// An older use does not move last_used_at back.
	err = e.s.TouchKeys(e.ctx, map[string]time.Time{k1.ID: t1.Add(-time.Hour), k2.ID: t2.Add(time.Second)})
	wantErr(t, "TouchKeys", err, nil)

	tests := []struct {
		name string
		id   string
		want *time.Time
	}{
		{name: "touched", id: k1.ID, want: microPtr(t1)},
		{name: "touched twice", id: k2.ID, want: microPtr(t2.Add(time.Second))},
		{name: "untouched", id: k3.ID, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := e.s.KeyByID(e.ctx, acme.ID, tt.id)
			wantErr(t, "KeyByID", err, nil)
			diff(t, "LastUsedAt", tt.want, k.LastUsedAt)
		})
	}
}

// testAuthKeys runs an auth.Verifier on the store, through store.AuthKeys.
func testAuthKeys(t *testing.T, h Harness) {
	e := newEnv(t, h)
	acme := e.account(t, "acme")
	secret, k := e.key(t, acme.ID)
	v := auth.NewVerifier(store.AuthKeys(e.s), auth.WithClock(e.clock.Now), auth.WithTTL(0), auth.WithNegativeTTL(0))

	p, err := v.Verify(e.ctx, secret)
	wantErr(t, "Verify", err, nil)
	diff(t, "Verify", auth.Principal{AccountID: acme.ID, KeyID: k.ID, Scopes: auth.Scopes(k.Scopes), RatePlan: k.RatePlan, Live: true}, p)

	unknown, err := auth.NewKey(true)
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(e.ctx, unknown)
	wantErr(t, "Verify(unknown)", err, auth.ErrUnknown)
	if errors.Is(err, auth.ErrUnavailable) {
		t.Errorf("Verify(unknown) error %v matches ErrUnavailable", err)
	}

	e.clock.Add(time.Second)
	if err := v.Flush(e.ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	got, err := e.s.KeyByID(e.ctx, acme.ID, k.ID)
	wantErr(t, "KeyByID", err, nil)
	if got.LastUsedAt == nil || !got.LastUsedAt.Equal(e.now().Add(-time.Second)) {
		t.Errorf("LastUsedAt after Flush = %v, want %v", got.LastUsedAt, e.now().Add(-time.Second))
	}

	if _, err := e.s.RevokeKey(e.ctx, acme.ID, k.ID, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(e.ctx, secret)
	wantErr(t, "Verify(revoked)", err, auth.ErrRevoked)
}

// testNoSecretsAtRest creates keys, sessions and leads, then searches
// everything the backend holds at rest for any key's secret part.
func testNoSecretsAtRest(t *testing.T, h Harness) {
	if h.Dump == nil {
		t.Skip("backend has no Dump")
	}
	e := newEnv(t, h)
	acme := e.account(t, "acme-secrets-check")
	var secrets []string
	for i := range 200 {
		secret, k := e.key(t, acme.ID)
		secrets = append(secrets, secret)
		if i%2 == 0 {
			nextSecret, next := newSecret(t, acme.ID)
			secrets = append(secrets, nextSecret)
			if _, _, err := e.s.RotateKey(e.ctx, acme.ID, k.ID, next, time.Hour); err != nil {
				t.Fatalf("RotateKey: %v", err)
			}
		}
	}
	raw := h.Dump(t, e.s)
	// The dump must hold the data, or finding nothing proves nothing.
	for _, must := range []string{"acme-secrets-check", auth.Start(secrets[0])} {
		if !bytes.Contains(raw, []byte(must)) {
			t.Fatalf("Dump (%d bytes) does not contain %q: it does not show the stored data", len(raw), must)
		}
	}
	for _, s := range secrets {
		// Start (prefix + 4) is stored by design; nothing after it may be.
		for _, part := range []string{s, s[len(auth.Start(s)):], s[auth.KeyLen-auth.ChecksumLen-12 : auth.KeyLen-auth.ChecksumLen]} {
			if bytes.Contains(raw, []byte(part)) {
				t.Fatalf("secret material %q of key %s… found at rest", part, auth.Start(s))
			}
		}
	}
}

func testClosed(t *testing.T, h Harness) {
	e := newEnv(t, h)
	a := e.account(t, "acme")
	if err := e.s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	_, err := e.s.AccountByID(e.ctx, a.ID)
	wantErr(t, "AccountByID after Close", err, store.ErrUnavailable)
	_, err = e.s.CreateAccount(e.ctx, "b")
	wantErr(t, "CreateAccount after Close", err, store.ErrUnavailable)
	wantErr(t, "Ping after Close", e.s.Ping(e.ctx), store.ErrUnavailable)
}

// testCreateKeyCapped checks the cap on an account's live keys: revoked
// and expired keys do not count, other accounts' keys do not count, and
// concurrent creates never take an account past it.
func testCreateKeyCapped(t *testing.T, h Harness) {
	e := newEnv(t, h)
	acme, other := e.account(t, "acme"), e.account(t, "other")
	const max = 3
	create := func(account string) error {
		_, k := newSecret(t, account)
		_, err := e.s.CreateKeyCapped(e.ctx, k, max)
		return err
	}
	var ids []string
	for i := range max {
		_, k := newSecret(t, acme.ID)
		if i == 0 { // expires in an hour: live until then
			k.ExpiresAt = microPtr(e.clock.Now().Add(time.Hour))
		}
		k, err := e.s.CreateKeyCapped(e.ctx, k, max)
		wantErr(t, fmt.Sprint("CreateKeyCapped #", i+1), err, nil)
		ids = append(ids, k.ID)
	}
	steps := []struct {
		name    string
		before  func()
		account string
		want    error
	}{
		{name: "at the cap", account: acme.ID, want: store.ErrLimit},
		{name: "another account is not counted", account: other.ID},
		{name: "no cap", account: acme.ID, before: func() {
			_, k := newSecret(t, acme.ID)
			k, err := e.s.CreateKeyCapped(e.ctx, k, 0)
			wantErr(t, "CreateKeyCapped(max 0)", err, nil)
			ids = append(ids, k.ID) // 4 live keys now
		}, want: store.ErrLimit},
		{name: "one revoked, still at the cap", account: acme.ID, before: func() {
			_, err := e.s.RevokeKey(e.ctx, acme.ID, ids[3], e.clock.Now())
			wantErr(t, "RevokeKey", err, nil)
		}, want: store.ErrLimit},
		{name: "two revoked, room for one", account: acme.ID, before: func() {
			_, err := e.s.RevokeKey(e.ctx, acme.ID, ids[2], e.clock.Now())
			wantErr(t, "RevokeKey", err, nil)
		}},
		{name: "full again", account: acme.ID, want: store.ErrLimit},
		{name: "the first key expired, room for one", account: acme.ID, before: func() { e.clock.Add(time.Hour) }},
		{name: "full at last", account: acme.ID, want: store.ErrLimit},
	}
	for _, s := range steps {
		if s.before != nil {
			s.before()
		}
		wantErr(t, s.name, create(s.account), s.want)
	}

	t.Run("concurrent", func(t *testing.T) {
		fresh := e.account(t, "fresh")
		const n = 16
		errs := make(chan error, n)
		for range n {
			go func() { errs <- create(fresh.ID) }()
		}
		made := 0
		for range n {
			switch err := <-errs; {
			case err == nil:
				made++
			case !errors.Is(err, store.ErrLimit):
				t.Errorf("concurrent CreateKeyCapped: %v, want nil or ErrLimit", err)
			}
		}
		if made != max {
			t.Errorf("%d concurrent creates with a cap of %d made %d keys, want %d", n, max, made, max)
		}
	})
}

// testRotateKeyCapped checks that a rotation with an overlap counts
// against the cap (the account's other live keys must be fewer than
// max), so that rotating again and again cannot pile up live keys, while
// a rotation that ends the old key at once is never refused.
func testRotateKeyCapped(t *testing.T, h Harness) {
	e := newEnv(t, h)
	acme := e.account(t, "acme")
	const max = 3
	var ids []string
	for range max {
		_, k := e.key(t, acme.ID)
		ids = append(ids, k.ID)
	}
	rotate := func(id string, overlap time.Duration) (store.APIKey, error) {
		_, next := newSecret(t, acme.ID)
		created, _, err := e.s.RotateKeyCapped(e.ctx, acme.ID, id, next, overlap, max)
		return created, err
	}
	// At the cap, one rotation with an overlap: two other live keys.
	first, err := rotate(ids[0], time.Hour)
	wantErr(t, "RotateKeyCapped at the cap, with an overlap", err, nil)
	// Again, on its successor: the other live keys are now three.
	_, err = rotate(first.ID, time.Hour)
	wantErr(t, "RotateKeyCapped again, with an overlap", err, store.ErrLimit)
	var le *store.LimitError
	if !errors.As(err, &le) || le.Limit != max || le.Resource != "key" {
		t.Errorf("RotateKeyCapped past the cap: %#v, want a *LimitError for %d keys", err, max)
	}
	// Ending the old key at once is never refused.
	second, err := rotate(first.ID, 0)
	wantErr(t, "RotateKeyCapped past the cap, no overlap", err, nil)
	// Its successor, with an overlap: still past the cap.
	_, err = rotate(second.ID, time.Hour)
	wantErr(t, "RotateKeyCapped of the successor, with an overlap", err, store.ErrLimit)
	// No cap.
	_, next := newSecret(t, acme.ID)
	_, _, err = e.s.RotateKeyCapped(e.ctx, acme.ID, second.ID, next, time.Hour, 0)
	wantErr(t, "RotateKeyCapped(max 0)", err, nil)
	// Once the first overlap ends, room again.
	e.clock.Add(time.Hour)
	if _, err := e.s.RevokeKey(e.ctx, acme.ID, second.ID, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	_, err = rotate(ids[1], time.Hour)
	wantErr(t, "RotateKeyCapped after the overlap ended", err, nil)
}
