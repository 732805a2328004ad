package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/store"
)

const (
	testLease     = 30 * time.Second
	testRetention = 24 * time.Hour
)

func claimOf(accountID, key string, fp store.Fingerprint) store.IdempotencyClaim {
	return store.IdempotencyClaim{AccountID: accountID, Key: key, Fingerprint: fp, Lease: testLease, Retention: testRetention}
}

func (e *env) claim(t *testing.T, c store.IdempotencyClaim) (store.IdempotencyRecord, bool) {
	t.Helper()
	rec, claimed, err := e.s.ClaimIdempotencyKey(e.ctx, c)
	if err != nil {
		t.Fatalf("ClaimIdempotencyKey(%q): %v", c.Key, err)
	}
	return rec, claimed
}

// testIdempotency walks a key through its life: claim, in flight,
// complete, replay; release; scoping by account; and the refusals of a
// holder that lost its claim.
func testIdempotency(t *testing.T, h Harness) {
	e := newEnv(t, h)
	acme, other := e.account(t, "acme"), e.account(t, "other")
	fp := store.NewFingerprint("POST", "/v1/leads", []byte(`{"name":"Ada"}`))

	rec, claimed := e.claim(t, claimOf(acme.ID, "k1", fp))
	if !claimed || rec.Token == "" {
		t.Fatalf("first claim: claimed %v token %q, want true and a token", claimed, rec.Token)
	}
	want := store.IdempotencyRecord{
		AccountID: acme.ID, Key: "k1", Fingerprint: fp, State: store.IdempotencyInFlight, Token: rec.Token,
		LeaseExpiresAt: e.now().Add(testLease), CreatedAt: e.now(), ExpiresAt: e.now().Add(testRetention),
	}
	diff(t, "first claim", want, rec)
	token := rec.Token

	// A second claim sees the record in flight, without the token.
	got, claimed := e.claim(t, claimOf(acme.ID, "k1", fp))
	want.Token = ""
	if claimed {
		t.Fatal("second claim of an in-flight key: claimed")
	}
	diff(t, "second claim", want, got)

	// Another account's key of the same name is another record.
	if _, claimed := e.claim(t, claimOf(other.ID, "k1", fp)); !claimed {
		t.Error("claim of the same key by another account: not claimed")
	}

	resp := store.StoredResponse{
		Status: 201,
		Header: map[string][]string{"Content-Type": {"application/json; charset=utf-8"}, "Location": {"/v1/leads/lead_1"}},
		Body:   []byte("{\"id\":\"lead_1\"}\n\x00\xff"),
	}
	wantErr(t, "Complete(wrong token)", e.s.CompleteIdempotencyKey(e.ctx, acme.ID, "k1", "nope", resp), store.ErrConflict)
	wantErr(t, "Complete(other account)", e.s.CompleteIdempotencyKey(e.ctx, other.ID, "k1", token, resp), store.ErrConflict)
	wantErr(t, "Complete", e.s.CompleteIdempotencyKey(e.ctx, acme.ID, "k1", token, resp), nil)
	wantErr(t, "Complete twice", e.s.CompleteIdempotencyKey(e.ctx, acme.ID, "k1", token, resp), store.ErrConflict)
	wantErr(t, "Release after Complete", e.s.ReleaseIdempotencyKey(e.ctx, acme.ID, "k1", token), store.ErrConflict)
	wantErr(t, "Extend after Complete", e.s.ExtendIdempotencyLease(e.ctx, acme.ID, "k1", token, testLease), store.ErrConflict)

	got, claimed = e.claim(t, claimOf(acme.ID, "k1", fp))
	if claimed {
		t.Fatal("claim of a complete key: claimed")
	}
	want.State, want.Response = store.IdempotencyComplete, &resp
	diff(t, "claim of a complete key", want, got)

	// A complete record is returned whatever the fingerprint: the caller
	// compares it.
	other2 := store.NewFingerprint("PATCH", "/v1/leads", nil)
	got, claimed = e.claim(t, claimOf(acme.ID, "k1", other2))
	if claimed || got.Fingerprint != fp {
		t.Errorf("claim with another fingerprint: claimed %v fingerprint %v, want false and the first", claimed, got.Fingerprint)
	}

	// An empty response is stored as empty.
	rec, _ = e.claim(t, claimOf(acme.ID, "empty", fp))
	wantErr(t, "Complete(empty)", e.s.CompleteIdempotencyKey(e.ctx, acme.ID, "empty", rec.Token, store.StoredResponse{Status: 204}), nil)
	got, _ = e.claim(t, claimOf(acme.ID, "empty", fp))
	diff(t, "empty response", &store.StoredResponse{Status: 204, Header: map[string][]string{}, Body: []byte{}}, got.Response)

	// Release deletes the claim: the next claim wins.
	rec, _ = e.claim(t, claimOf(acme.ID, "k2", fp))
	wantErr(t, "Release(wrong token)", e.s.ReleaseIdempotencyKey(e.ctx, acme.ID, "k2", "nope"), store.ErrConflict)
	wantErr(t, "Release", e.s.ReleaseIdempotencyKey(e.ctx, acme.ID, "k2", rec.Token), nil)
	wantErr(t, "Release twice", e.s.ReleaseIdempotencyKey(e.ctx, acme.ID, "k2", rec.Token), store.ErrConflict)
	wantErr(t, "Complete after Release", e.s.CompleteIdempotencyKey(e.ctx, acme.ID, "k2", rec.Token, resp), store.ErrConflict)
	if _, claimed := e.claim(t, claimOf(acme.ID, "k2", fp)); !claimed {
		t.Error("claim after Release: not claimed")
	}

	bad := []struct {
		name string
		c    store.IdempotencyClaim
	}{
		{"empty key", claimOf(acme.ID, "", fp)},
		{"empty account", claimOf("", "k", fp)},
		{"zero lease", store.IdempotencyClaim{AccountID: acme.ID, Key: "k", Lease: 0, Retention: time.Hour}},
		{"zero retention", store.IdempotencyClaim{AccountID: acme.ID, Key: "k", Lease: time.Second}},
	}
	for _, b := range bad {
		t.Run(b.name, func(t *testing.T) {
			_, _, err := e.s.ClaimIdempotencyKey(e.ctx, b.c)
			wantErr(t, "Claim", err, store.ErrInvalidClaim)
		})
	}
	_, _, err := e.s.ClaimIdempotencyKey(e.ctx, claimOf("acc_01J00000000000000000000000", "k", fp))
	wantErr(t, "Claim(unknown account)", err, store.ErrNotFound)
}

// testIdempotencyLease checks that an expired lease can be taken over by
// the same request only, that the old holder then loses every right, and
// that Extend keeps a running request's claim.
func testIdempotencyLease(t *testing.T, h Harness) {
	e := newEnv(t, h)
	acme := e.account(t, "acme")
	fp := store.NewFingerprint("POST", "/v1/leads", []byte(`{}`))
	first, _ := e.claim(t, claimOf(acme.ID, "k", fp))

	e.clock.Add(testLease - time.Microsecond)
	if _, claimed := e.claim(t, claimOf(acme.ID, "k", fp)); claimed {
		t.Fatal("claim 1µs before the lease ends: claimed")
	}
	e.clock.Add(time.Microsecond)
	other := store.NewFingerprint("POST", "/v1/leads", []byte(`{"x":1}`))
	got, claimed := e.claim(t, claimOf(acme.ID, "k", other))
	if claimed || got.Fingerprint != fp || got.State != store.IdempotencyInFlight {
		t.Fatalf("takeover with another fingerprint: claimed %v, record %+v; want the first request's record", claimed, got)
	}
	second, claimed := e.claim(t, claimOf(acme.ID, "k", fp))
	if !claimed || second.Token == "" || second.Token == first.Token {
		t.Fatalf("takeover after the lease: claimed %v token %q (old %q), want a new token", claimed, second.Token, first.Token)
	}
	diff(t, "takeover lease", e.now().Add(testLease), second.LeaseExpiresAt)

	resp := store.StoredResponse{Status: 201, Body: []byte("{}")}
	wantErr(t, "Complete by the old holder", e.s.CompleteIdempotencyKey(e.ctx, acme.ID, "k", first.Token, resp), store.ErrConflict)
	wantErr(t, "Extend by the old holder", e.s.ExtendIdempotencyLease(e.ctx, acme.ID, "k", first.Token, testLease), store.ErrConflict)
	wantErr(t, "Release by the old holder", e.s.ReleaseIdempotencyKey(e.ctx, acme.ID, "k", first.Token), store.ErrConflict)

	// Extend: renewed before the end, the claim survives its first lease.
	e.clock.Add(testLease / 2)
	wantErr(t, "Extend", e.s.ExtendIdempotencyLease(e.ctx, acme.ID, "k", second.Token, testLease), nil)
	e.clock.Add(testLease/2 + time.Second)
	if _, claimed := e.claim(t, claimOf(acme.ID, "k", fp)); claimed {
		t.Fatal("claim after an extended lease's first end: claimed")
	}
	wantErr(t, "Extend(0)", e.s.ExtendIdempotencyLease(e.ctx, acme.ID, "k", second.Token, 0), store.ErrInvalidClaim)
	wantErr(t, "Complete by the new holder", e.s.CompleteIdempotencyKey(e.ctx, acme.ID, "k", second.Token, resp), nil)

	// A complete record is never taken over, however old its lease.
	e.clock.Add(10 * testLease)
	if got, claimed := e.claim(t, claimOf(acme.ID, "k", fp)); claimed || got.State != store.IdempotencyComplete {
		t.Errorf("claim of a complete key after its lease: claimed %v state %q", claimed, got.State)
	}
}

// testIdempotencyRetention checks that a record past its retention is
// ignored by Claim and deleted by Purge, and that younger ones stay.
func testIdempotencyRetention(t *testing.T, h Harness) {
	e := newEnv(t, h)
	acme := e.account(t, "acme")
	fp := store.NewFingerprint("POST", "/v1/leads", []byte(`{}`))
	old, _ := e.claim(t, claimOf(acme.ID, "old", fp))
	wantErr(t, "Complete", e.s.CompleteIdempotencyKey(e.ctx, acme.ID, "old", old.Token, store.StoredResponse{Status: 201}), nil)
	e.claim(t, claimOf(acme.ID, "old-in-flight", fp))
	e.clock.Add(time.Hour)
	for _, k := range []string{"young", "replaced"} {
		rec, _ := e.claim(t, claimOf(acme.ID, k, fp))
		wantErr(t, "Complete", e.s.CompleteIdempotencyKey(e.ctx, acme.ID, k, rec.Token, store.StoredResponse{Status: 201}), nil)
	}

	e.clock.Add(testRetention - time.Hour)
	n, err := e.s.PurgeIdempotencyKeys(e.ctx)
	wantErr(t, "Purge", err, nil)
	if n != 2 {
		t.Errorf("Purge = %d, want 2 (old, old-in-flight)", n)
	}
	if got, _ := e.claim(t, claimOf(acme.ID, "young", fp)); got.State != store.IdempotencyComplete {
		t.Errorf("young record: state %q, want it kept complete", got.State)
	}
	if _, claimed := e.claim(t, claimOf(acme.ID, "old", fp)); !claimed {
		t.Error("purged record: not claimed anew")
	}

	// Past retention but not purged yet: ignored, whatever the request.
	e.clock.Add(time.Hour)
	other := store.NewFingerprint("PATCH", "/v1/x", nil)
	got, claimed := e.claim(t, claimOf(acme.ID, "replaced", other))
	if !claimed || got.Fingerprint != other {
		t.Errorf("claim of an expired record: claimed %v fingerprint %v, want a new claim", claimed, got.Fingerprint)
	}
	n, err = e.s.PurgeIdempotencyKeys(e.ctx)
	wantErr(t, "Purge", err, nil)
	if n != 1 {
		t.Errorf("second Purge = %d, want 1 (young)", n)
	}
}

// testIdempotencyCompleteKeepsRetention checks that a record completed
// before its retention ended still expires at its retention (counted
// from the claim), and one completed after it, one retention after its
// completion.
func testIdempotencyCompleteKeepsRetention(t *testing.T, h Harness) {
	const (
		lease     = 30 * time.Second
		retention = 2 * time.Minute
	)
	for _, tt := range []struct {
		name       string
		completeAt time.Duration // from the claim
		expiresAt  time.Duration // from the claim
	}{
		{"completed inside the retention", 10 * time.Second, retention},
		{"completed past the retention", retention + 30*time.Second, 2*retention + 30*time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, h)
			acme := e.account(t, "acme")
			fp := store.NewFingerprint("POST", "/v1/leads", []byte(`{}`))
			c := store.IdempotencyClaim{AccountID: acme.ID, Key: "k", Fingerprint: fp, Lease: lease, Retention: retention}
			rec, _ := e.claim(t, c)
			var elapsed time.Duration
			for ; elapsed+lease/3 <= tt.completeAt; elapsed += lease / 3 { // the holder renews its lease
				e.clock.Add(lease / 3)
				wantErr(t, "Extend", e.s.ExtendIdempotencyLease(e.ctx, acme.ID, "k", rec.Token, lease), nil)
			}
			e.clock.Add(tt.completeAt - elapsed)
			wantErr(t, "Complete", e.s.CompleteIdempotencyKey(e.ctx, acme.ID, "k", rec.Token, store.StoredResponse{Status: 201}), nil)
			e.clock.Add(tt.expiresAt - tt.completeAt - time.Microsecond)
			if got, claimed := e.claim(t, c); claimed || got.State != store.IdempotencyComplete {
				t.Errorf("just before %v from the claim: claimed %v, state %q; want the complete record", tt.expiresAt, claimed, got.State)
			}
			e.clock.Add(time.Microsecond)
			if _, claimed := e.claim(t, c); !claimed {
				t.Errorf("at %v from the claim: not claimed anew; want the record expired", tt.expiresAt)
			}
		})
	}
}

// testIdempotencyLiveLeasePastRetention checks that an in-flight record
// whose retention ended while its lease is still live (a handler that runs
// longer than the retention, renewing its lease) is neither taken over nor
// purged, and that it expires once its lease has run out too; a complete
// record still expires at its retention.
func testIdempotencyLiveLeasePastRetention(t *testing.T, h Harness) {
	const (
		lease     = 2 * time.Minute
		retention = time.Minute
	)
	e := newEnv(t, h)
	acme := e.account(t, "acme")
	fp := store.NewFingerprint("POST", "/v1/leads", []byte(`{}`))
	other := store.NewFingerprint("POST", "/v1/leads", []byte(`{"other":1}`))
	claim := func(key string, fp store.Fingerprint) store.IdempotencyClaim {
		return store.IdempotencyClaim{AccountID: acme.ID, Key: key, Fingerprint: fp, Lease: lease, Retention: retention}
	}
	held, claimed := e.claim(t, claim("held", fp))
	if !claimed {
		t.Fatal("first claim of held: not claimed")
	}
	if _, claimed := e.claim(t, claim("idle", fp)); !claimed {
		t.Fatal("first claim of idle: not claimed")
	}
	done, _ := e.claim(t, claim("done", fp))
	wantErr(t, "Complete(done)", e.s.CompleteIdempotencyKey(e.ctx, acme.ID, "done", done.Token, store.StoredResponse{Status: 201}), nil)

	// Past retention, inside the lease: the in-flight records are live.
	e.clock.Add(retention + time.Second)
	for _, c := range []struct {
		name string
		fp   store.Fingerprint
	}{
		{"same fingerprint", fp},
		{"other fingerprint", other},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, claimed := e.claim(t, claim("held", c.fp))
			if claimed || got.State != store.IdempotencyInFlight || got.Fingerprint != fp || got.Token != "" {
				t.Errorf("claim of a live record past its retention: claimed %v, record %+v; want the holder's record", claimed, got)
			}
		})
	}
	n, err := e.s.PurgeIdempotencyKeys(e.ctx)
	wantErr(t, "Purge", err, nil)
	if n != 1 {
		t.Errorf("Purge past retention, inside the lease = %d, want 1 (done)", n)
	}
	// The holder renews its lease past the first one's end.
	wantErr(t, "Extend(held)", e.s.ExtendIdempotencyLease(e.ctx, acme.ID, "held", held.Token, lease), nil)

	// The first lease is over: idle is expired, held (renewed) is not.
	e.clock.Add(lease - retention - time.Second)
	if got, claimed := e.claim(t, claim("held", other)); claimed || got.Fingerprint != fp {
		t.Errorf("claim of a renewed record past its retention: claimed %v fingerprint %v, want the holder's", claimed, got.Fingerprint)
	}
	n, err = e.s.PurgeIdempotencyKeys(e.ctx)
	wantErr(t, "Purge", err, nil)
	if n != 1 {
		t.Errorf("Purge after the first lease = %d, want 1 (idle)", n)
	}

	// The renewed lease is over too: the record is expired, a new request
	// claims it and the old holder has lost it.
	e.clock.Add(retention + time.Second)
	got, claimed := e.claim(t, claim("held", other))
	if !claimed || got.Fingerprint != other {
		t.Errorf("claim after the lease and retention ended: claimed %v fingerprint %v, want a new claim", claimed, got.Fingerprint)
	}
	wantErr(t, "Complete by the old holder", e.s.CompleteIdempotencyKey(e.ctx, acme.ID, "held", held.Token, store.StoredResponse{Status: 201}), store.ErrConflict)

	// A holder that completes past its retention (its lease renewed all
	// along) stores an answer that is kept for a retention from then:
	// the retry right after gets the answer, not a new run.
	slow, claimed := e.claim(t, claim("slow", fp))
	if !claimed {
		t.Fatal("first claim of slow: not claimed")
	}
	e.clock.Add(retention + time.Second)
	wantErr(t, "Extend(slow)", e.s.ExtendIdempotencyLease(e.ctx, acme.ID, "slow", slow.Token, lease), nil)
	e.clock.Add(retention)
	wantErr(t, "Complete(slow) past its retention", e.s.CompleteIdempotencyKey(e.ctx, acme.ID, "slow", slow.Token, store.StoredResponse{Status: 201}), nil)
	e.clock.Add(retention - time.Second)
	if got, claimed := e.claim(t, claim("slow", fp)); claimed || got.State != store.IdempotencyComplete {
		t.Errorf("retry after a completion past retention: claimed %v, state %v; want the stored answer", claimed, got.State)
	}
	e.clock.Add(2 * time.Second)
	if _, claimed := e.claim(t, claim("slow", fp)); !claimed {
		t.Error("a retention after that completion: the record should have expired")
	}
}

// testIdempotencyClaimRace claims one key from many goroutines, fresh and
// after its lease expired: exactly one wins each time.
func testIdempotencyClaimRace(t *testing.T, h Harness) {
	e := newEnv(t, h)
	acme := e.account(t, "acme")
	fp := store.NewFingerprint("POST", "/v1/leads", []byte(`{}`))
	const n = 16
	race := func(phase string) string {
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			winners []string
			start   = make(chan struct{})
		)
		for range n {
			wg.Go(func() {
				<-start
				rec, claimed, err := e.s.ClaimIdempotencyKey(e.ctx, claimOf(acme.ID, "race", fp))
				if err != nil {
					t.Errorf("%s: Claim: %v", phase, err)
					return
				}
				if !claimed && rec.State != store.IdempotencyInFlight {
					t.Errorf("%s: loser saw state %q, want in flight", phase, rec.State)
				}
				if claimed {
					mu.Lock()
					winners = append(winners, rec.Token)
					mu.Unlock()
				}
			})
		}
		close(start)
		wg.Wait()
		if len(winners) != 1 {
			t.Fatalf("%s: %d of %d concurrent claims won, want exactly 1", phase, len(winners), n)
		}
		return winners[0]
	}
	first := race("fresh")
	e.clock.Add(testLease)
	second := race("takeover")
	if first == second {
		t.Error("takeover kept the old token")
	}
}

// testIdempotencyClosed checks that a closed store reports every operation
// as unavailable.
func testIdempotencyClosed(t *testing.T, h Harness) {
	e := newEnv(t, h)
	a := e.account(t, "acme")
	fp := store.NewFingerprint("POST", "/", nil)
	if err := e.s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	_, _, err := e.s.ClaimIdempotencyKey(e.ctx, claimOf(a.ID, "k", fp))
	wantErr(t, "Claim after Close", err, store.ErrUnavailable)
	wantErr(t, "Complete after Close", e.s.CompleteIdempotencyKey(e.ctx, a.ID, "k", "t", store.StoredResponse{Status: 200}), store.ErrUnavailable)
	wantErr(t, "Release after Close", e.s.ReleaseIdempotencyKey(e.ctx, a.ID, "k", "t"), store.ErrUnavailable)
	wantErr(t, "Extend after Close", e.s.ExtendIdempotencyLease(e.ctx, a.ID, "k", "t", time.Second), store.ErrUnavailable)
	_, err = e.s.PurgeIdempotencyKeys(e.ctx)
	wantErr(t, "Purge after Close", err, store.ErrUnavailable)
}
