package api_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// raceField is a member that one writer of TestConcurrentPatches owns: its
// k-th PATCH (k from 1) sets value k, and value reads which k a record
// holds (0 for the value the record was created with).
type raceField struct {
	name  string
	patch func(k int) string
	value func(rec map[string]any) int
}

// numbered reads k from a text member written as prefix + k + suffix; any
// other text (the initial value) is 0.
func numbered(member, prefix, suffix string) func(map[string]any) int {
	return func(rec map[string]any) int {
		s, _ := rec[member].(string)
		rest, ok := strings.CutPrefix(s, prefix)
		if !ok {
			return 0
		}
		n, err := strconv.Atoi(strings.TrimSuffix(rest, suffix))
		if err != nil {
			return 0
		}
		return n
	}
}

func textField(member, prefix, suffix string) raceField {
	return raceField{
		name:  member,
		patch: func(k int) string { return fmt.Sprintf(`{%q:"%s%02d%s"}`, member, prefix, k, suffix) },
		value: numbered(member, prefix, suffix),
	}
}

// TestConcurrentPatches sends PATCHes of one record from parallel
// goroutines, one per member, each setting its member to 1, 2, … in turn
// (and, for a session, one more trying to make it active again while
// another completes it). The answers must be those of the PATCHes applied
// one at a time, each to the record as the previous one left it: every
// answer shows each member at least at the value its writer had been told
// was stored before the request was sent (or the sender had seen), so no
// acknowledged change is ever lost; the record ends with every member's
// last value; once a completion is acknowledged, the session is never
// active again. It holds for any interleaving: nothing waits on timing.
func TestConcurrentPatches(t *testing.T) {
	const rounds = 10
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	sessionFields := []raceField{
		textField("title", "t", ""),
		textField("source", "s", ""),
		textField("model", "m", ""),
		textField("sessionExternalId", "race-", ""),
		{name: "tokens",
			patch: func(k int) string { return fmt.Sprintf(`{"tokens":%d}`, k) },
			value: func(rec map[string]any) int { n, _ := rec["tokens"].(float64); return int(n) }},
		{name: "metadata",
			patch: func(k int) string { return fmt.Sprintf(`{"metadata":{"n":%d}}`, k) },
			value: func(rec map[string]any) int {
				m, _ := rec["metadata"].(map[string]any)
				n, _ := m["n"].(float64)
				return int(n)
			}},
		// The completer: every PATCH completes the session, with a later end.
		{name: "endedAt",
			patch: func(k int) string {
				return fmt.Sprintf(`{"status":"completed","endedAt":%q}`, start.Add(time.Duration(k)*time.Minute).Format(time.RFC3339))
			},
			value: func(rec map[string]any) int {
				s, _ := rec["endedAt"].(string)
				end, err := time.Parse(time.RFC3339, s)
				if err != nil {
					return 0
				}
				return int(end.Sub(start) / time.Minute)
			}},
	}
	leadFields := []raceField{
		textField("name", "n", ""),
		textField("email", "e", "@example.com"),
		textField("phone", "+1415666", ""),
		textField("company", "c", ""),
		textField("notes", "x", ""),
	}
	tests := []struct {
		name         string
		create, body string // POST path and body
		fields       []raceField
		// done reports a record that must stay so once a PATCH making it
		// so was acknowledged; revive, a PATCH then refused with 422.
		done   func(rec map[string]any) bool
		revive string
	}{
		{name: "session", create: "/v1/sessions",
			body:   fmt.Sprintf(`{"sessionExternalId":"race","startedAt":%q}`, start.Format(time.RFC3339)),
			fields: sessionFields,
			done:   func(rec map[string]any) bool { return rec["status"] == "completed" },
			revive: `{"status":"active"}`},
		{name: "lead", create: "/v1/leads", body: `{"name":"Lead","phone":"+14155550100"}`, fields: leadFields},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			l := startLive(t, b.open(t), liveOptions{})
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					created := l.as("POST", tt.create, tt.body)
					if created.status != 201 {
						t.Fatalf("POST %s = %d: %s", tt.create, created.status, created.body)
					}
					path := tt.create + "/" + into[map[string]any](t, created)["id"].(string)

					n := len(tt.fields)
					acked := make([]atomic.Int64, n) // the last value each writer was told is stored
					var doneAcked atomic.Bool
					var mu sync.Mutex
					var sent []sentPatch
					// check checks answer rec to a request sent when the
					// writers had been told acked (floor) and done was
					// acknowledged (wasDone); seen and sawDone are what the
					// sender had seen, updated. It reports whether rec passed.
					check := func(who string, k int, rec map[string]any, floor, seen []int, wasDone bool, sawDone *bool) bool {
						ok := true
						for j, f := range tt.fields {
							v := f.value(rec)
							if v < floor[j] || v < seen[j] {
								t.Errorf("%s, PATCH %d: %s = %d, but %d was acknowledged before it was sent and the sender had seen %d: an update was lost",
									who, k, f.name, v, floor[j], seen[j])
								ok = false
							}
							seen[j] = max(seen[j], v)
						}
						if tt.done != nil {
							if (wasDone || *sawDone) && !tt.done(rec) {
								t.Errorf("%s, PATCH %d: status %v after the session was completed", who, k, rec["status"])
								ok = false
							}
							*sawDone = *sawDone || tt.done(rec)
						}
						return ok
					}
					var wg sync.WaitGroup
					// patcher sends rounds PATCHes from a goroutine of its
					// own; it stops at the first answer that answered
					// refuses, so that a failure is reported once.
					patcher := func(who string, body func(k int) string, answered func(k int, r reply, floor, seen []int, wasDone bool, sawDone *bool) bool) {
						wg.Go(func() {
							seen := make([]int, n)
							sawDone := false
							for k := 1; k <= rounds; k++ {
								floor := make([]int, n)
								for j := range acked {
									floor[j] = int(acked[j].Load())
								}
								wasDone := doneAcked.Load()
								req, r, err := l.send("PATCH", path, body(k))
								if err != nil {
									t.Errorf("%s, PATCH %d: %v", who, k, err)
									return
								}
								mu.Lock()
								sent = append(sent, sentPatch{req, r})
								mu.Unlock()
								if !answered(k, r, floor, seen, wasDone, &sawDone) {
									return
								}
							}
						})
					}
					for i, f := range tt.fields {
						patcher(f.name, f.patch, func(k int, r reply, floor, seen []int, wasDone bool, sawDone *bool) bool {
							if r.status != 200 {
								t.Errorf("%s, PATCH %d = %d, want 200: %s", f.name, k, r.status, r.body)
								return false
							}
							var rec map[string]any
							if err := json.Unmarshal(r.body, &rec); err != nil {
								t.Errorf("%s, PATCH %d: %v", f.name, k, err)
								return false
							}
							if v := f.value(rec); v != k {
								t.Errorf("%s, PATCH %d: answered with %s = %d, want %d", f.name, k, f.name, v, k)
								return false
							}
							acked[i].Store(int64(k))
							if tt.done != nil && tt.done(rec) {
								doneAcked.Store(true)
							}
							return check(f.name, k, rec, floor, seen, wasDone, sawDone)
						})
					}
					if tt.revive != "" {
						patcher("reviver", func(int) string { return tt.revive }, func(k int, r reply, floor, seen []int, wasDone bool, sawDone *bool) bool {
							switch r.status {
							case 200: // allowed only while the session is still active
								var rec map[string]any
								if err := json.Unmarshal(r.body, &rec); err != nil {
									t.Errorf("reviver, PATCH %d: %v", k, err)
									return false
								}
								return check("reviver", k, rec, floor, seen, wasDone, sawDone)
							case 422: // the session was completed: it stays so
								*sawDone = true
								return true
							}
							t.Errorf("reviver, PATCH %d = %d, want 200 or 422: %s", k, r.status, r.body)
							return false
						})
					}
					wg.Wait()

					final := into[map[string]any](t, l.as("GET", path, ""))
					for _, f := range tt.fields {
						if v := f.value(final); v != rounds {
							t.Errorf("finally %s = %d, want %d (its last PATCH)", f.name, v, rounds)
						}
					}
					if tt.done != nil && !tt.done(final) {
						t.Errorf("finally status %v, want completed", final["status"])
					}
					for _, s := range sent {
						if err := l.c.check(s.req, s.r.status, s.r.header, s.r.body); err != nil {
							t.Error(err)
						}
					}
				})
			}
		})
	}
}

// sentPatch is a request of TestConcurrentPatches and its answer, checked
// against the OpenAPI document once every goroutine is done.
type sentPatch struct {
	req *http.Request
	r   reply
}

// send is call with the admin key for other goroutines than the test's:
// it reports a failure to send instead of ending the test, and leaves the
// answer unchecked.
func (l *live) send(method, path, body string) (*http.Request, reply, error) {
	req, err := http.NewRequest(method, l.base+path, strings.NewReader(body))
	if err != nil {
		return nil, reply{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+l.admin)
	resp, err := l.client.Do(req)
	if err != nil {
		return nil, reply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, reply{}, err
	}
	return req, reply{status: resp.StatusCode, header: resp.Header, body: b}, nil
}
