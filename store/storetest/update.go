package storetest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/store"
)

// errRefused is what the update functions of the tests refuse with.
var errRefused = errors.New("storetest: refused by update")

// set returns an update that makes the record v (the store keeps its own
// ID, AccountID and CreatedAt, and sets UpdatedAt).
func set[T any](v T) func(*T) error {
	return func(p *T) error { *p = v; return nil }
}

// updatable adapts a resource to testUpdate.
type updatable[T any] struct {
	create func(t *testing.T, e *env, accountID string) T
	get    func(e *env, accountID, id string) (T, error)
	update func(e *env, accountID, id string, f func(*T) error) (T, error)
	// fields points at the fields of a record that the tests use.
	fields func(*T) fields
	// from and to are values of the state field: the tests' own rule
	// lets a record move from from to to, never back.
	from, to string
	// unknown is an ID of the resource's kind that is not stored.
	unknown string
}

// fields are the fields of a record that testUpdate uses: its keys and
// times, a text field that updates append to (log), and a status (state).
type fields struct {
	id, accountID, log, state *string
	createdAt, updatedAt      *time.Time
}

var sessionUpdates = updatable[store.Session]{
	create: func(t *testing.T, e *env, accountID string) store.Session {
		return e.session(t, store.Session{AccountID: accountID})
	},
	get: func(e *env, accountID, id string) (store.Session, error) {
		return e.s.SessionByID(e.ctx, accountID, id)
	},
	update: func(e *env, accountID, id string, f func(*store.Session) error) (store.Session, error) {
		return e.s.UpdateSession(e.ctx, accountID, id, f)
	},
	fields: func(s *store.Session) fields {
		return fields{&s.ID, &s.AccountID, &s.Title, &s.Status, &s.CreatedAt, &s.UpdatedAt}
	},
	from: store.SessionActive, to: store.SessionCompleted,
	unknown: "ses_01J00000000000000000000000",
}

var leadUpdates = updatable[store.Lead]{
	create: func(t *testing.T, e *env, accountID string) store.Lead {
		return e.lead(t, store.Lead{AccountID: accountID})
	},
	get: func(e *env, accountID, id string) (store.Lead, error) { return e.s.LeadByID(e.ctx, accountID, id) },
	update: func(e *env, accountID, id string, f func(*store.Lead) error) (store.Lead, error) {
		return e.s.UpdateLead(e.ctx, accountID, id, f)
	},
	fields: func(l *store.Lead) fields {
		return fields{&l.ID, &l.AccountID, &l.Notes, &l.Status, &l.CreatedAt, &l.UpdatedAt}
	},
	from: store.LeadNew, to: store.LeadLost,
	unknown: "lead_01J00000000000000000000000",
}

// testUpdate checks that UpdateSession and UpdateLead are atomic
// read-modify-writes: the update function gets the record as stored when
// the write happens, never an older one, so a write based on a stale
// read is impossible, a fresh one applies, and a rule the function judges
// still holds when its result is stored. The clock does not matter: the
// cases run with it advancing, frozen, and set back.
//
// The concurrent cases hold for a correct backend whatever the
// scheduling (an update started while another holds the record cannot
// read it before that one is stored), and nothing in them waits on
// timing. A backend that reads outside the write's lock fails them: the
// 16 concurrent updates lose some on every run we tried, and the nested
// cases catch it in most rounds.
func testUpdate[T any](t *testing.T, h Harness, r updatable[T]) {
	e := newEnv(t, h)
	acme, other := e.account(t, "acme"), e.account(t, "other")
	get := func(t *testing.T, id string) T {
		t.Helper()
		v, err := r.get(e, acme.ID, id)
		wantErr(t, "read back", err, nil)
		return v
	}
	id := func(v T) string { return *r.fields(&v).id }
	logOf := func(v T) string { return *r.fields(&v).log }
	// tick moves the clock as the running clock case says, between a
	// record's creation and its updates.
	var tick func()

	cases := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"a fresh update applies, to the record as stored", func(t *testing.T) {
			stored := get(t, id(r.create(t, e, acme.ID)))
			tick()
			out, err := r.update(e, acme.ID, id(stored), func(v *T) error {
				diff(t, "record given to update", stored, *v)
				f := r.fields(v)
				*f.log += "a"
				// Not the update's to change: ignored.
				*f.id, *f.accountID = r.unknown, other.ID
				*f.createdAt, *f.updatedAt = time.Unix(0, 0), time.Unix(1, 0)
				return nil
			})
			wantErr(t, "update", err, nil)
			want := stored
			f := r.fields(&want)
			*f.log, *f.updatedAt = "a", e.now()
			diff(t, "update's answer", want, out)
			diff(t, "stored after update", want, get(t, id(stored)))
		}},
		{"a refused update writes nothing", func(t *testing.T) {
			stored := get(t, id(r.create(t, e, acme.ID)))
			tick()
			_, err := r.update(e, acme.ID, id(stored), func(v *T) error {
				*r.fields(v).log = "refused"
				return fmt.Errorf("rule: %w", errRefused)
			})
			wantErr(t, "refused update", err, errRefused)
			diff(t, "stored after refused update", stored, get(t, id(stored)))
		}},
		{"no such record: update is not called", func(t *testing.T) {
			mine := r.create(t, e, acme.ID)
			for _, tt := range []struct{ name, accountID, id string }{
				{"unknown id", acme.ID, r.unknown},
				{"another account's", other.ID, id(mine)},
			} {
				t.Run(tt.name, func(t *testing.T) {
					_, err := r.update(e, tt.accountID, tt.id, func(*T) error {
						t.Error("update called")
						return nil
					})
					wantErr(t, "update", err, store.ErrNotFound)
				})
			}
			diff(t, "stored after foreign updates", mine, get(t, id(mine)))
		}},
		{"an update started during another sees its result", func(t *testing.T) {
			for round := range 5 {
				rec := r.create(t, e, acme.ID)
				tick()
				var (
					seen     string
					innerErr = make(chan error, 1)
				)
				_, err := r.update(e, acme.ID, id(rec), func(v *T) error {
					// The inner update is started while this one holds
					// the record; it must not read it before this one
					// is stored.
					go func() {
						_, err := r.update(e, acme.ID, id(rec), func(v *T) error {
							seen = *r.fields(v).log
							*r.fields(v).log += "+inner"
							return nil
						})
						innerErr <- err
					}()
					*r.fields(v).log += "outer"
					return nil
				})
				wantErr(t, "outer update", err, nil)
				wantErr(t, "inner update", <-innerErr, nil)
				if seen != "outer" {
					t.Fatalf("round %d: the inner update saw log %q, want %q: it read the record before the outer update was stored", round, seen, "outer")
				}
				if got := logOf(get(t, id(rec))); got != "outer+inner" {
					t.Fatalf("round %d: stored log %q, want %q", round, got, "outer+inner")
				}
			}
		}},
		{"a rule judged in update holds when its result is stored", func(t *testing.T) {
			for round := range 5 {
				rec := r.create(t, e, acme.ID)
				if s := *r.fields(&rec).state; s != r.from {
					t.Fatalf("new record in state %q, want %q", s, r.from)
				}
				tick()
				innerErr := make(chan error, 1)
				_, err := r.update(e, acme.ID, id(rec), func(v *T) error {
					// While the record moves to r.to, another update
					// that may change it only as long as it is not r.to
					// (and writes r.from back) starts.
					go func() {
						_, err := r.update(e, acme.ID, id(rec), func(v *T) error {
							f := r.fields(v)
							if *f.state == r.to {
								return errRefused
							}
							*f.state, *f.log = r.from, "inner"
							return nil
						})
						innerErr <- err
					}()
					*r.fields(v).state = r.to
					return nil
				})
				wantErr(t, "outer update", err, nil)
				if err := <-innerErr; !errors.Is(err, errRefused) {
					t.Fatalf("round %d: inner update error = %v, want the rule's refusal: it judged a record older than the stored one", round, err)
				}
				stored := get(t, id(rec))
				if f := r.fields(&stored); *f.state != r.to || *f.log != "" {
					t.Fatalf("round %d: stored state %q, log %q; want %q, \"\"", round, *f.state, *f.log, r.to)
				}
			}
		}},
		{"concurrent updates all apply, one after the other", func(t *testing.T) {
			const n = 16
			rec := r.create(t, e, acme.ID)
			tick()
			logs := make([]string, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					out, err := r.update(e, acme.ID, id(rec), func(v *T) error {
						*r.fields(v).log += fmt.Sprintf("%02d,", i)
						return nil
					})
					if err != nil {
						t.Errorf("update %d: %v", i, err)
						return
					}
					logs[i] = *r.fields(&out).log
				})
			}
			wg.Wait()
			final := logOf(get(t, id(rec)))
			marks := strings.Split(strings.TrimSuffix(final, ","), ",")
			slices.Sort(marks)
			want := make([]string, n)
			for i := range want {
				want[i] = fmt.Sprintf("%02d", i)
			}
			diff(t, "updates in the stored log (a missing one was lost)", want, marks)
			// Serial: each answer is the stored log as it was after that
			// update, so a prefix of the final log ending with its mark,
			// and no two of them the same length.
			// The first break is reported: the others follow from it.
			lengths := map[int]int{}
			for i, l := range logs {
				if !strings.HasPrefix(final, l) || !strings.HasSuffix(l, fmt.Sprintf("%02d,", i)) {
					t.Fatalf("update %d answered log %q: not a prefix of the final %q ending with its own mark", i, l, final)
				}
				if j, dup := lengths[len(l)]; dup {
					t.Fatalf("updates %d and %d both answered after %d updates: they read the same record", j, i, len(l)/3)
				}
				lengths[len(l)] = i
			}
		}},
	}
	clocks := []struct {
		name string
		tick func()
	}{
		{"clock advancing", func() { e.clock.Add(time.Second) }},
		{"clock frozen", func() {}},
		{"clock behind", func() { e.clock.Add(-time.Hour) }},
	}
	for _, c := range clocks {
		tick = c.tick
		t.Run(c.name, func(t *testing.T) {
			for _, tt := range cases {
				t.Run(tt.name, tt.run)
			}
		})
	}
}
