package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/apierror"
	"github.com/tollgate-dev/tollgate/auth"
	"github.com/tollgate-dev/tollgate/internal/api"
	"github.com/tollgate-dev/tollgate/internal/server"
	"github.com/tollgate-dev/tollgate/internal/testenv"
	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/store"
	"github.com/tollgate-dev/tollgate/store/postgres"
)

// Sizes of TestIdempotencyTwoInstances: idemRounds rounds of idemClients
// identical requests. 1,000 rounds take about 20 s under -race on a
// 4-core machine; TOLLGATE_SOAK=1 runs idemSoakRounds.
const (
	idemRounds     = 1000
	idemSoakRounds = 10000
	idemClients    = 20
)

// idemAnswer is one client's answer in a round.
type idemAnswer struct {
	status   int
	replayed string
	code     apierror.Code
	body     []byte
	err      error
}

// TestIdempotencyTwoInstances is the check: rounds of idemClients
// concurrent, identical POST /v1/leads with one Idempotency-Key per
// round, spread over two server instances on one PostgreSQL schema.
// Exactly one lead is created per round; every other answer is a replay
// identical in status and body, or 409 IDEMPOTENCY_KEY_IN_USE.
func TestIdempotencyTwoInstances(t *testing.T) {
	if testing.Short() {
		t.Skip("runs thousands of requests against PostgreSQL: skipped with -short")
	}
	rounds := idemRounds
	if os.Getenv("TOLLGATE_SOAK") == "1" {
		rounds = idemSoakRounds
	}
	ctx := t.Context()
	url := testenv.Postgres(t)
	var (
		servers [2]*httptest.Server
		st      store.Store
	)
	for i := range servers {
		db, err := postgres.Open(ctx, url)
		if err != nil {
			t.Fatalf("instance %d: %v", i, err)
		}
		t.Cleanup(func() { db.Close() })
		if i == 0 {
			st = db
		}
		srv := server.New(server.Config{})
		api.New(api.Config{
			Store: db, Verifier: auth.NewVerifier(store.AuthKeys(db)),
			Idempotency: middleware.Idempotency(db, middleware.IdempotencyOptions{}),
		}).Routes(srv.Handle)
		servers[i] = httptest.NewServer(srv.Handler())
		t.Cleanup(servers[i].Close)
	}
	acc, _, err := st.EnsureAccount(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	admin, err := api.CreateKey(ctx, st, acc.ID, api.KeyRequest{Name: "admin", Scopes: []string{auth.ScopeAll}})
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: idemClients}, Timeout: 30 * time.Second}
	t.Cleanup(client.CloseIdleConnections)

	post := func(base, key, body string) idemAnswer {
		req, _ := http.NewRequestWithContext(ctx, "POST", base+"/v1/leads", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+admin.Secret)
		req.Header.Set("Idempotency-Key", key)
		resp, err := client.Do(req)
		if err != nil {
			return idemAnswer{err: err}
		}
		defer resp.Body.Close()
		a := idemAnswer{status: resp.StatusCode, replayed: resp.Header.Get("Idempotent-Replayed")}
		a.body, a.err = io.ReadAll(resp.Body)
		if resp.StatusCode >= 400 {
			resp.Body = io.NopCloser(bytes.NewReader(a.body))
			a.code = apierror.Decode(resp).Code
			if a.code == apierror.IdempotencyKeyInUse && resp.Header.Get("Retry-After") != "1" {
				a.err = fmt.Errorf("409 IDEMPOTENCY_KEY_IN_USE with Retry-After %q", resp.Header.Get("Retry-After"))
			}
		}
		return a
	}

	start := time.Now()
	created := map[string]bool{} // lead ids the winners got
	var replays, inUse int
	for round := range rounds {
		key := fmt.Sprintf("round-%d-%d", round, start.UnixNano())
		body := fmt.Sprintf(`{"name":"Lead %d","phone":"+1555%07d"}`, round, round)
		answers := make([]idemAnswer, idemClients)
		gate := make(chan struct{})
		var wg sync.WaitGroup
		for i := range answers {
			wg.Go(func() {
				<-gate
				answers[i] = post(servers[i%len(servers)].URL, key, body)
			})
		}
		close(gate)
		wg.Wait()
		r, u, id := checkRound(t, round, answers)
		replays, inUse = replays+r, inUse+u
		if t.Failed() {
			t.FailNow()
		}
		created[id] = true
	}
	elapsed := time.Since(start)

	// Exactly one lead per round, and it is the one the winner was told.
	var all []store.Lead
	page := store.Page{Limit: store.MaxLimit}
	for {
		list, next, err := st.ListLeads(ctx, acc.ID, store.LeadFilter{}, page)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, list...)
		if next == "" {
			break
		}
		page.After = next
	}
	if len(all) != rounds {
		t.Errorf("leads stored = %d, want %d (one per round)", len(all), rounds)
	}
	for _, l := range all {
		if !created[l.ID] {
			t.Errorf("lead %s stored but no client was told it was created", l.ID)
		}
	}
	t.Logf("%d rounds × %d clients over 2 instances in %v: %d replays, %d IDEMPOTENCY_KEY_IN_USE",
		rounds, idemClients, elapsed.Round(time.Millisecond), replays, inUse)
}

// reporter is the part of testing.TB checkRound uses.
type reporter interface {
	Helper()
	Errorf(format string, args ...any)
}

// failures is a reporter that records whether it was told of a failure.
type failures struct{ n int }

func (f *failures) Helper()               {}
func (f *failures) Errorf(string, ...any) { f.n++ }
func (f *failures) Failed() bool          { return f.n > 0 }

// checkRound checks one round's answers: one 201 that is not a replay,
// and the rest replays of it or 409 IDEMPOTENCY_KEY_IN_USE. It returns
// the counts of replays and 409s, and the created lead's id.
func checkRound(t reporter, round int, answers []idemAnswer) (replays, inUse int, id string) {
	t.Helper()
	var winner *idemAnswer
	for i := range answers {
		a := &answers[i]
		if a.err != nil {
			t.Errorf("round %d client %d: %v", round, i, a.err)
			continue
		}
		if a.status == http.StatusCreated && a.replayed == "" {
			if winner != nil {
				t.Errorf("round %d: two requests created a lead:\n%s\n%s", round, winner.body, a.body)
			}
			winner = a
		}
	}
	if winner == nil {
		t.Errorf("round %d: no request created the lead: %+v", round, answers)
		return 0, 0, ""
	}
	var lead api.Lead
	if err := json.Unmarshal(winner.body, &lead); err != nil || lead.ID == "" {
		t.Errorf("round %d: winner's body %s: %v", round, winner.body, err)
	}
	for i := range answers {
		a := &answers[i]
		switch {
		case a == winner || a.err != nil:
		case a.status == http.StatusConflict && a.code == apierror.IdempotencyKeyInUse:
			inUse++
		case a.replayed == "true" && a.status == winner.status && bytes.Equal(a.body, winner.body):
			replays++
		default:
			t.Errorf("round %d client %d: %d %s replayed=%q %s; want a replay of %s or 409 IDEMPOTENCY_KEY_IN_USE",
				round, i, a.status, a.code, a.replayed, a.body, winner.body)
		}
	}
	return replays, inUse, lead.ID
}

// TestIdempotencyCheckCanFail feeds checkRound rounds that break the rule:
// each must be reported.
func TestIdempotencyCheckCanFail(t *testing.T) {
	win := idemAnswer{status: 201, body: []byte(`{"id":"lead_1"}`)}
	replay := idemAnswer{status: 201, replayed: "true", body: win.body}
	tests := []struct {
		name    string
		answers []idemAnswer
	}{
		{"two creations", []idemAnswer{win, {status: 201, body: []byte(`{"id":"lead_2"}`)}}},
		{"no creation", []idemAnswer{replay, {status: 409, code: apierror.IdempotencyKeyInUse}}},
		{"replay with another body", []idemAnswer{win, {status: 201, replayed: "true", body: []byte(`{"id":"lead_2"}`)}}},
		{"replay with another status", []idemAnswer{win, {status: 200, replayed: "true", body: win.body}}},
		{"duplicate refused by the phone rule", []idemAnswer{win, {status: 409, code: apierror.AlreadyExists}}},
		{"transport error", []idemAnswer{win, {err: context.DeadlineExceeded}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ft := &failures{}
			checkRound(ft, 0, tt.answers)
			if !ft.Failed() {
				t.Errorf("checkRound(%s) passed", tt.name)
			}
		})
	}
	ok := &failures{}
	checkRound(ok, 0, []idemAnswer{win, replay, {status: 409, code: apierror.IdempotencyKeyInUse}})
	if ok.Failed() {
		t.Error("checkRound failed a good round")
	}
}
