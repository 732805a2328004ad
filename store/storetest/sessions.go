package storetest

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/store"
)

func (e *env) session(t *testing.T, s store.Session) store.Session {
	t.Helper()
	if s.Status == "" {
		s.Status = store.SessionActive
	}
	out, err := e.s.CreateSession(e.ctx, s)
	if err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	return out
}

func testSessions(t *testing.T, h Harness) {
	e := newEnv(t, h)
	acme, other := e.account(t, "acme"), e.account(t, "other")

	started := e.clock.Now().Add(-time.Hour)
	in := store.Session{
		AccountID:  acme.ID,
		ExternalID: "ext-1",
		Title:      "Checkout bot",
		Source:     "web",
		Model:      "gpt-x",
		Status:     store.SessionActive,
		StartedAt:  started,
		Tokens:     1 << 40,
		// Byte for byte: key order, spacing and unicode are kept.
		Metadata: json.RawMessage(`{"z": 1, "a": [true, null], "emoji": "é✓"}`),
	}
	s, err := e.s.CreateSession(e.ctx, in)
	wantErr(t, "CreateSession", err, nil)
	if !strings.HasPrefix(s.ID, store.PrefixSession) || len(s.ID) != len(store.PrefixSession)+26 {
		t.Errorf("CreateSession ID = %q, want ses_<ulid>", s.ID)
	}
	want := in
	want.ID, want.StartedAt, want.CreatedAt, want.UpdatedAt = s.ID, micro(started), e.now(), e.now()
	diff(t, "CreateSession", want, s)
	got, err := e.s.SessionByID(e.ctx, acme.ID, s.ID)
	wantErr(t, "SessionByID", err, nil)
	diff(t, "SessionByID", want, got)

	t.Run("nil metadata is {}", func(t *testing.T) {
		s := e.session(t, store.Session{AccountID: acme.ID, Title: "x"})
		got, err := e.s.SessionByID(e.ctx, acme.ID, s.ID)
		wantErr(t, "SessionByID", err, nil)
		diff(t, "Metadata", json.RawMessage(`{}`), got.Metadata)
		diff(t, "CreateSession Metadata", json.RawMessage(`{}`), s.Metadata)
	})

	t.Run("update", func(t *testing.T) {
		e.clock.Add(time.Minute)
		upd := got
		upd.Title, upd.Status, upd.Tokens = "Done", store.SessionCompleted, 7
		upd.EndedAt = microPtr(e.clock.Now())
		upd.ExternalID = ""
		upd.Metadata = json.RawMessage(`{"k":"v"}`)
		upd.CreatedAt = time.Unix(0, 0) // ignored
		out, err := e.s.UpdateSession(e.ctx, acme.ID, s.ID, set(upd))
		wantErr(t, "UpdateSession", err, nil)
		want := upd
		want.CreatedAt, want.UpdatedAt = got.CreatedAt, e.now()
		diff(t, "UpdateSession", want, out)
		stored, err := e.s.SessionByID(e.ctx, acme.ID, s.ID)
		wantErr(t, "SessionByID", err, nil)
		diff(t, "stored after UpdateSession", want, stored)
		got = stored
	})

	notFound := []struct {
		name string
		call func() error
	}{
		{"SessionByID of another account", func() error { _, err := e.s.SessionByID(e.ctx, other.ID, s.ID); return err }},
		{"SessionByID unknown", func() error { _, err := e.s.SessionByID(e.ctx, acme.ID, "ses_01J00000000000000000000000"); return err }},
		{"UpdateSession of another account", func() error {
			u := got
			u.AccountID, u.Title = other.ID, "hijacked"
			_, err := e.s.UpdateSession(e.ctx, other.ID, s.ID, set(u))
			return err
		}},
		{"UpdateSession unknown", func() error {
			_, err := e.s.UpdateSession(e.ctx, acme.ID, "ses_01J00000000000000000000000", set(got))
			return err
		}},
		{"DeleteSession of another account", func() error { return e.s.DeleteSession(e.ctx, other.ID, s.ID) }},
		{"DeleteSession unknown", func() error { return e.s.DeleteSession(e.ctx, acme.ID, "ses_01J00000000000000000000000") }},
		{"CreateSession unknown account", func() error {
			_, err := e.s.CreateSession(e.ctx, store.Session{AccountID: "acc_01J00000000000000000000000", Status: store.SessionActive})
			return err
		}},
	}
	for _, tt := range notFound {
		t.Run(tt.name, func(t *testing.T) { wantErr(t, tt.name, tt.call(), store.ErrNotFound) })
	}
	// Nothing above touched the session.
	stored, err := e.s.SessionByID(e.ctx, acme.ID, s.ID)
	wantErr(t, "SessionByID", err, nil)
	diff(t, "session after foreign writes", got, stored)

	wantErr(t, "DeleteSession", e.s.DeleteSession(e.ctx, acme.ID, s.ID), nil)
	_, err = e.s.SessionByID(e.ctx, acme.ID, s.ID)
	wantErr(t, "SessionByID after delete", err, store.ErrNotFound)
	wantErr(t, "DeleteSession again", e.s.DeleteSession(e.ctx, acme.ID, s.ID), store.ErrNotFound)
}

func testSessionConflicts(t *testing.T, h Harness) {
	e := newEnv(t, h)
	acme, other := e.account(t, "acme"), e.account(t, "other")
	first := e.session(t, store.Session{AccountID: acme.ID, ExternalID: "ext-1"})
	second := e.session(t, store.Session{AccountID: acme.ID, ExternalID: "ext-2"})
	// Absent external IDs never conflict.
	e.session(t, store.Session{AccountID: acme.ID})
	e.session(t, store.Session{AccountID: acme.ID})
	// The same external ID in another account is fine.
	e.session(t, store.Session{AccountID: other.ID, ExternalID: "ext-1"})

	_, err := e.s.CreateSession(e.ctx, store.Session{AccountID: acme.ID, ExternalID: "ext-1", Status: store.SessionActive})
	wantConflict(t, "CreateSession(taken external id)", err, "sessionExternalId")

	upd := second
	upd.ExternalID = first.ExternalID
	_, err = e.s.UpdateSession(e.ctx, acme.ID, second.ID, set(upd))
	wantConflict(t, "UpdateSession(taken external id)", err, "sessionExternalId")
	stored, err := e.s.SessionByID(e.ctx, acme.ID, second.ID)
	wantErr(t, "SessionByID", err, nil)
	diff(t, "session after failed update", second, stored)

	// Keeping one's own external ID is not a conflict.
	upd = first
	upd.Title = "renamed"
	_, err = e.s.UpdateSession(e.ctx, acme.ID, first.ID, set(upd))
	wantErr(t, "UpdateSession(own external id)", err, nil)
}

func testListSessions(t *testing.T, h Harness) {
	e := newEnv(t, h)
	acme, other := e.account(t, "acme"), e.account(t, "other")
	var all []store.Session
	for i := range 7 {
		e.clock.Add(time.Millisecond)
		status := []string{store.SessionActive, store.SessionCompleted, store.SessionFailed}[i%3]
		source := []string{"web", "api"}[i%2]
		all = append(all, e.session(t, store.Session{AccountID: acme.ID, Title: fmt.Sprint("s", i), Status: status, Source: source}))
		e.session(t, store.Session{AccountID: other.ID, Status: status, Source: source})
	}
	pick := func(keep func(store.Session) bool) []store.Session {
		var out []store.Session
		for _, s := range all {
			if keep(s) {
				out = append(out, s)
			}
		}
		return out
	}

	tests := []struct {
		name   string
		filter store.SessionFilter
		limit  int
		want   []store.Session
	}{
		{name: "all, default limit", want: all},
		{name: "all, pages of 2", limit: 2, want: all},
		{name: "all, pages of 7", limit: 7, want: all},
		{name: "all, pages of 1", limit: 1, want: all},
		{name: "status", filter: store.SessionFilter{Status: store.SessionCompleted}, limit: 1,
			want: pick(func(s store.Session) bool { return s.Status == store.SessionCompleted })},
		{name: "source", filter: store.SessionFilter{Source: "api"}, limit: 2,
			want: pick(func(s store.Session) bool { return s.Source == "api" })},
		{name: "status and source", filter: store.SessionFilter{Status: store.SessionActive, Source: "web"},
			want: pick(func(s store.Session) bool { return s.Status == store.SessionActive && s.Source == "web" })},
		{name: "no match", filter: store.SessionFilter{Source: "none"}, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []store.Session
			after := ""
			for page := 0; ; page++ {
				if page > len(all) {
					t.Fatal("ListSessions: pages never end")
				}
				list, next, err := e.s.ListSessions(e.ctx, acme.ID, tt.filter, store.Page{After: after, Limit: tt.limit})
				wantErr(t, "ListSessions", err, nil)
				if max := (store.Page{Limit: tt.limit}).EffectiveLimit(); len(list) > max {
					t.Fatalf("ListSessions page of %d items, limit %d", len(list), max)
				}
				got = append(got, list...)
				if next == "" {
					break
				}
				if len(list) == 0 || next != list[len(list)-1].ID {
					t.Fatalf("ListSessions next = %q, want the last item's ID", next)
				}
				after = next
			}
			diff(t, "ListSessions, all pages", tt.want, got)
		})
	}

	t.Run("last full page has no next", func(t *testing.T) {
		list, next, err := e.s.ListSessions(e.ctx, acme.ID, store.SessionFilter{}, store.Page{After: all[4].ID, Limit: 2})
		wantErr(t, "ListSessions", err, nil)
		if len(list) != 2 || next != "" {
			t.Errorf("ListSessions(after 5th, limit 2) = %d items, next %q; want 2, \"\"", len(list), next)
		}
	})
}
